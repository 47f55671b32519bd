"""Unit symbols and measure words used by the normaliser."""

from __future__ import annotations

import re

#: unit symbol as written after a number -> how it is read
UNITS: dict[str, str] = {
    "km/h": "千米每小时",
    "m/s": "米每秒",
    "km²": "平方千米",
    "m²": "平方米",
    "cm²": "平方厘米",
    "m³": "立方米",
    "cm³": "立方厘米",
    "m2": "平方米",
    "m3": "立方米",
    "km2": "平方千米",
    "km": "千米",
    "cm": "厘米",
    "mm": "毫米",
    "nm": "纳米",
    "μm": "微米",
    "m": "米",
    "kg": "千克",
    "mg": "毫克",
    "g": "克",
    "t": "吨",
    "lb": "磅",
    "ml": "毫升",
    "mL": "毫升",
    "L": "升",
    "l": "升",
    "℃": "摄氏度",
    "°C": "摄氏度",
    "°F": "华氏度",
    "°": "度",
    "℉": "华氏度",
    "kWh": "千瓦时",
    "kW": "千瓦",
    "W": "瓦",
    "kV": "千伏",
    "V": "伏",
    "mA": "毫安",
    "mAh": "毫安时",
    "A": "安",
    "GHz": "吉赫兹",
    "MHz": "兆赫兹",
    "kHz": "千赫兹",
    "Hz": "赫兹",
    "dB": "分贝",
    "ms": "毫秒",
    "min": "分钟",
    "h": "小时",
    "s": "秒",
    "KB": "KB",
    "MB": "MB",
    "GB": "GB",
    "TB": "TB",
    "Mbps": "兆比特每秒",
    "mmHg": "毫米汞柱",
    "亩": "亩",
    "cc": "毫升",
    "kcal": "千卡",
    "cal": "卡",
}
UNIT_RE = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))

#: words after which a bare 2 is read 两 (2个 -> 两个)
MEASURE_WORDS: tuple[str, ...] = tuple(
    "个 位 只 本 张 条 件 次 天 年 岁 名 人 辆 台 块 斤 两 公里 千米 千克 公斤 米 吨 升 小时 分钟 秒钟 周 星期 种 "
    "份 家 所 座 层楼 倍 万 亿 千 百 口 头 匹 棵 朵 片 杯 瓶 碗 盘 双 对 套 把 支 枝 根 节 间 门 首 句 篇 "
    "部 场 遍 趟 顿 下 回 步 段 组 批 架 艘 颗 粒 滴 封 项 笔 元 块钱 毛 角 分钱 亩 顷 里 尺 寸 级 届 期 章 "
    "集 季 代 方面 点钟 道 扇 幅 副 辈子 样 款 类 排 行 列 声 眼 圈 轮 拳 脚 点".split()
)
