"""Text normalisation: written Chinese with digits and symbols -> the words a reader would say.

Rules run in a fixed order, most specific first (phone numbers, dates, times, money, percentages,
units, ranges, math), then plain numbers. Latin words are kept for the English reader in the G2P.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache

from speedy.frontend.numbers import cardinal, digits, fraction, number
from speedy.frontend.units import MEASURE_WORDS, UNIT_RE, UNITS

_LOG = logging.getLogger(__name__)

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_FULLWIDTH: dict[int, int | str] = {i: i - 0xFEE0 for i in range(0xFF10, 0xFF1A)}
_FULLWIDTH.update({i: i - 0xFEE0 for i in range(0xFF21, 0xFF3B)})
_FULLWIDTH.update({i: i - 0xFEE0 for i in range(0xFF41, 0xFF5B)})
_FULLWIDTH.update({ord(a): b for a, b in zip("％＋－＝／．＄＜＞＆＠＃～〜", "%+-=/.$<>&@#~~", strict=True)})
_FULLWIDTH.update({0x3000: " ", 0x2212: "-", 0x2013: "-", 0xFFE5: "¥", 0x00A0: " "})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_CURRENCY = {"¥": "元", "$": "美元", "€": "欧元", "£": "英镑", "₩": "韩元", "US$": "美元", "HK$": "港元"}


@lru_cache(maxsize=1)
def _t2s():  # noqa: ANN202 - opencc.OpenCC, imported lazily
    from opencc import OpenCC

    return OpenCC("t2s")


def _clean(text: str) -> str:
    """Drop control characters and unpaired surrogates; full-width ASCII -> ASCII; traditional -> simplified."""
    if any("\ud800" <= c <= "\udfff" for c in text):
        _LOG.warning("dropping unpaired surrogates from the input text")
        text = "".join(c for c in text if not "\ud800" <= c <= "\udfff")
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n"))
    text = text.translate(_FULLWIDTH)
    text = re.sub(r"(?<=\d)：(?=\d)", ":", text)
    return _t2s().convert(text)


def _year(y: str) -> str:
    return digits(y)


def _date_ymd(m: re.Match) -> str:
    y, mo, d = m.group("y"), m.group("m"), m.group("d")
    out = _year(y) + "年" if y else ""
    out += cardinal(int(mo)) + "月"
    if d:
        out += cardinal(int(d)) + (m.group("suf") or "日")
    return out


def _time(m: re.Match) -> str:
    return _clock(int(m.group("h")), int(m.group("mi")), m.group("s"))


def _clock(h: int, mi: int, s: str | None) -> str:
    """12, 30, None -> 十二点三十分; 8, 5, None -> 八点零五分; seconds read after 分."""
    out = cardinal(h, liang=True) + "点"
    if s is not None:
        out += (digits("0") if mi < 10 and mi else "") + (cardinal(mi) + "分" if mi else "零分")
        return out + cardinal(int(s)) + "秒"
    if mi == 0:
        return out
    if mi == 30:
        return out + "半"
    if mi < 10:
        return out + "零" + cardinal(mi) + "分"
    return out + cardinal(mi) + "分"


def _hm(h: str, mi: str) -> str:
    return _clock(int(h), int(mi), None)


def _money(m: re.Match) -> str:
    amount = m.group("amt").replace(",", "")
    if "." in amount:
        amount = amount.rstrip("0").rstrip(".")
    unit = _CURRENCY[m.group("cur")]
    return number(amount, liang=True) + (m.group("scale") or "") + unit


def _pct(a: str) -> str:
    sign = "负" if a.startswith("-") else ""
    a = a.lstrip("-")
    return sign + "百分之" + ("百" if a == "100" else number(a, liang=True))


def _percent(m: re.Match) -> str:
    a, b = m.group("a"), m.group("b")
    out = _pct(a)
    if b:
        out += "到" + _pct(b)
    return out


def _unit(m: re.Match) -> str:
    a, b, unit = m.group("a"), m.group("b"), m.group("u")
    word = UNITS[unit]
    if unit == "s" and not b and re.fullmatch(r"(?:1[5-9]|20)\d0", a):
        return digits(a) + "年代"  # 1990s
    if word.endswith("摄氏度") and a.startswith("-") and not b:
        return "零下" + number(a[1:]) + word  # -3℃ -> 零下三摄氏度
    liang = word[:1] in "公千克米吨升斤小分秒瓦伏安平立天周年个"
    if b:
        return number(a, liang=liang) + "到" + number(b, liang=liang) + word
    return number(a, liang=liang) + word


def _dotted(m: re.Match) -> str:
    parts = m.group(0).split(".")
    return "点".join(cardinal(int(p)) if len(p) <= 2 and not p.startswith("0") else digits(p) for p in parts)


_MATH_OPS = {
    "+": "加",
    "-": "减",
    "×": "乘",
    "*": "乘",
    "x": "乘",
    "/": "除以",
    "÷": "除以",
    "=": "等于",
    "<": "小于",
    ">": "大于",
    "≤": "小于等于",
    "≥": "大于等于",
    "≈": "约等于",
    "≠": "不等于",
}


def _math(m: re.Match) -> str:
    tokens = re.findall(r"\d+(?:\.\d+)?|[-+×*x/÷=<>≤≥≈≠]", m.group(0))
    out = []
    for i, tok in enumerate(tokens):
        if tok == "-" and (i == 0 or tokens[i - 1] in _MATH_OPS):
            out.append("负")
        else:
            out.append(_MATH_OPS.get(tok) or number(tok))
    return "".join(out)


def _score_or_ratio(m: re.Match) -> str:
    return number(m.group(1)) + "比" + number(m.group(2))


def _phone(m: re.Match) -> str:
    return digits(re.sub(r"\D", "", m.group("n")), yao=True)


_CODE_WORDS = (
    "验证码|密码|编号|工号|学号|卡号|账号|帐号|单号|订单号|邮编|邮政编码|尾号|航班|车次|代码|编码|"
    "号码|型号|证号|身份证|QQ|qq|微信号|房间|房号|门牌|车牌|批号|序列号|股票代码|分机"
)
_LIANG_AFTER = "|".join(sorted(MEASURE_WORDS, key=len, reverse=True))


def _integer(m: re.Match) -> str:
    s = m.group(0)
    plain = s.replace(",", "")
    if "." not in plain and (len(plain) > 12 or (len(plain) > 1 and plain.startswith("0"))):
        return digits(plain)
    return number(s)


_RULES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    # phone numbers: mobile, landline with area code, 400/800 service numbers
    (
        r"(?<!\d)(?P<p>\+86[- ]?)?(?P<n>1[3-9]\d(?:[- ]?\d{4}){2})(?!\d)",
        lambda m: ("加八六" if m.group("p") else "") + _phone(m),
    ),
    (r"(?<!\d)(?P<n>0\d{2,3}-\d{7,8}|[48]00-?\d{3}-?\d{4})(?!\d)", _phone),
    (r"(?<![\d.])(?P<n>(?:12306|12315|12345|12348|10086|10010|10000|95\d{3}))(?![\d.年元个%])", _phone),
    (
        r"(?P<k>拨打|拨|打|报警|急救|火警|客服|热线|电话|求助|匪警)(?P<s>[：: ]*)(?P<n>11[0249]|12[02])(?!\d)",
        lambda m: m.group("k") + m.group("s") + _phone(m),
    ),
    # codes read digit by digit after a keyword
    (
        rf"(?P<k>(?:{_CODE_WORDS})(?:号|是|为|:|：| )*)(?P<c>[A-Za-z]*\d[\d\- ]*\d|\d)",
        lambda m: m.group("k") + digits(re.sub(r"[- ]", "", m.group("c"))),
    ),
    (r"(?<![\d.])(\d{3,5})(?=(?:号房|房间|室|次列车|次航班))", lambda m: digits(m.group(1))),
    # dates
    (r"(?<!\d)(?P<y>\d{4})[-/.](?P<m>0?[1-9]|1[0-2])[-/.](?P<d>0?[1-9]|[12]\d|3[01])(?P<suf>)(?![\d.])", _date_ymd),
    (r"(?<!\d)(?P<y>\d{4})年(?P<m>0?[1-9]|1[0-2])月(?:(?P<d>0?[1-9]|[12]\d|3[01])(?P<suf>[日号]))?", _date_ymd),
    (r"(?<!\d)(?P<y>)(?P<m>0?[1-9]|1[0-2])月(?P<d>0?[1-9]|[12]\d|3[01])(?P<suf>[日号])", _date_ymd),
    (r"(?<!\d)(\d{4})\s*[-~到至]\s*(\d{4})(?=年)", lambda m: _year(m.group(1)) + "到" + _year(m.group(2))),
    (r"(?<!\d)(\d{4})(?=年)", lambda m: _year(m.group(1))),
    (r"(?<!\d)(\d{2})(?=年代)", lambda m: cardinal(int(m.group(1)))),
    # scores and ratios (before times: 比分 3:2, 以2:1获胜)
    (
        r"(?<=比分|比赛|战胜|击败|比例|比率)(是|为|以)?(\d+):(\d+)",
        lambda m: (m.group(1) or "") + number(m.group(2)) + "比" + number(m.group(3)),
    ),
    (r"(?<=以)(\d+):(\d+)(?=[获战胜负取击赢输领落结])", _score_or_ratio),
    (r"(?<![\d:])(\d+):(\d+)(?=[获战胜负取击赢输领落])", _score_or_ratio),
    (
        r"(?<![\d.:])(?P<a>[01]?\d|2[0-4]):(?P<b>[0-5]\d)\s*[-~至到]\s*(?P<c>[01]?\d|2[0-4]):(?P<d>[0-5]\d)(?![\d:])",
        lambda m: _hm(m.group("a"), m.group("b")) + "到" + _hm(m.group("c"), m.group("d")),
    ),
    # times
    (r"(?<![\d.:])(?P<h>[01]?\d|2[0-4]):(?P<mi>[0-5]\d)(?::(?P<s>[0-5]\d))?(?![\d:])", _time),
    (r"(?<![\d.])(\d+):(\d+)(?![\d:])", _score_or_ratio),
    # money
    (rf"(?P<cur>US\$|HK\$|[¥$€£₩])\s?(?P<amt>{_NUM})\s?(?P<scale>万亿|[千万亿])?", _money),
    # percentages
    (rf"(?P<a>-?{_NUM})%?\s*[-~到至]\s*(?P<b>-?{_NUM})%", _percent),
    (rf"(?P<a>-?{_NUM})%(?P<b>)", _percent),
    (r"‰", "千分之"),
    # versions and IP-like strings: three or more dotted parts
    (r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.])", _dotted),
    # math expressions with an equals sign or an explicit operator between numbers
    (r"(?<![\d.])-?\d+(?:\.\d+)?(?:\s*[-+×*x/÷]\s*-?\d+(?:\.\d+)?)+\s*[=<>≤≥≈≠]\s*-?\d+(?:\.\d+)?", _math),
    (r"(?<![\d.])\d+(?:\.\d+)?(?:\s*[+×÷]\s*\d+(?:\.\d+)?)+(?![\d.])", _math),
    (r"(?<![\d.])\d+(?:\.\d+)?\s*[<>≤≥≈≠]\s*-?\d+(?:\.\d+)?", _math),
    # units and measures (3-5km, 2kg, 36.5℃, 100m²)
    (rf"(?P<a>-?{_NUM})(?:\s*[-~到至]\s*(?P<b>{_NUM}))?\s?(?P<u>{UNIT_RE})(?![A-Za-z])", _unit),
    # fractions (not dates: those were handled above)
    (r"(?<![\d/])(\d+)/(\d+)(?![\d/])", lambda m: fraction(m.group(1), m.group(2))),
    # ranges
    (
        rf"(?<![\d.])({_NUM})\s*[-~—]\s*({_NUM})(?![\d.])(?=(?P<mw>{_LIANG_AFTER})?)",
        lambda m: number(m.group(1), liang=bool(m.group("mw"))) + "到" + number(m.group(2), liang=bool(m.group("mw"))),
    ),
    # ranges with scale words: 5万-10万, 3千~5千
    (
        rf"({_NUM})([万亿千百])\s*[-~—到至]\s*({_NUM})(?=[万亿千百])",
        lambda m: number(m.group(1), liang=True) + m.group(2) + "到" + number(m.group(3), liang=True),
    ),
    # 100+家 -> 一百多家, ~100 -> 约一百
    (rf"({_NUM})\+(?=[\u4e00-\u9fff])", lambda m: number(m.group(1), liang=True) + "多"),
    (rf"(?<![\d.])[~～]({_NUM})", lambda m: "约" + number(m.group(1))),
    # COVID-19, iPhone-15: the hyphen after letters is not a minus
    (r"(?<=[A-Za-z])-(?=\d)", ""),
    # ordinals
    (r"第(\d+)", lambda m: "第" + cardinal(int(m.group(1)))),
    # alphanumeric codes: A380 -> A三八零, G20 -> G二十
    (r"(?<=[A-Za-z])(\d{3,})", lambda m: digits(m.group(1))),
    # negative numbers
    (rf"(?<![A-Za-z0-9.月日号年时点分秒万亿千百])-({_NUM})", lambda m: "负" + number(m.group(1))),
    # 2 before a measure word is 两
    (rf"(?<![\d.])2(?!年级|号|月|点\d)(?=(?:{_LIANG_AFTER}))", "两"),
    # everything else numeric
    (_NUM, _integer),
]
_SYMBOLS = {
    "+": "加",
    "=": "等于",
    "%": "百分之",
    "&": "和",
    "@": "艾特",
    "×": "乘",
    "÷": "除以",
    "℃": "摄氏度",
    "°": "度",
    "~": "到",
    "<": "小于",
    ">": "大于",
    "±": "正负",
    "№": "第",
    "〇": "零",
}  # U+3007 ideographic zero, as in 二〇二四年
_COMPILED = [(re.compile(p), r) for p, r in _RULES]
_LONG_DIGITS = re.compile(r"\d{19,}")


_AFTER = [
    # 5元/斤, 100次/分钟: a slash after a unit reads 每
    (re.compile(r"(?<=[元角克斤米升时天月年次人件个份台秒分])\s*/\s*(?=[\u4e00-\u9fff])"), "每"),
    # 12月25日-1月3日 (already spelled out): a dash between number words reads 到
    (
        re.compile(
            r"(?<=[零一二三四五六七八九十百千万亿两日号月年点分秒])\s*[-~～—]+\s*" r"(?=[零一二三四五六七八九十两])"
        ),
        "到",
    ),
]


def normalize(text: str) -> str:
    """Written text -> spoken-form Chinese ("2024年3月5日" -> "二零二四年三月五日").

    Latin words and acronyms are kept as they are (the G2P reads them); punctuation is kept.
    Never raises on odd input: control characters and unpaired surrogates are removed.
    """
    text = _clean(text)
    # runs too long to be a quantity are read digit by digit now (keeps the rules below linear)
    text = _LONG_DIGITS.sub(lambda m: digits(m.group(0)), text)
    for pattern, repl in _COMPILED:
        text = pattern.sub(repl, text)
    for pattern, repl in _AFTER:
        text = pattern.sub(repl, text)
    return "".join(_SYMBOLS.get(c, c) for c in text)
