"""Mandarin tone sandhi on TONE3 syllables: 一, 不, third-tone runs, neutral tones.

Works on one clause at a time as a list of words, each a (text, syllables) pair with one syllable per
character; syllables are rewritten in place.
"""

from __future__ import annotations

_NUMERALS = set("零一二三四五六七八九十百千万亿两幺")
_NUM_AFTER_YI = set("零一二三四五六七八九")  # 一 read as a digit: 一九九八, 一一零
_ORDINAL_BEFORE = set("第初周礼星")  # 第一, 初一, 周一, 礼拜一, 星期一
_PARTICLES = {
    "吧": "ba5",
    "吗": "ma5",
    "呢": "ne5",
    "啊": "a5",
    "呀": "ya5",
    "嘛": "ma5",
    "啦": "la5",
    "哦": "o5",
    "喽": "lou5",
    "呗": "bei5",
    "么": "me5",
}
_REDUP_NEUTRAL = set(
    "妈爸哥姐弟妹爷奶婆公叔婶舅姑姨娃宝星猩蝈看听说想试走坐聊问等尝写读找玩摸逛谈歇动" "转瞧笑练学跳唱洗擦揉捏敲拍抱亲"
)
_NEUTRAL_SUFFIX = {"们": "men5"}
#: common words whose last syllable is neutral in speech (dictionary tone with sandhi=False)
_NEUTRAL_LAST = set(
    """明白 衣服 朋友 事情 先生 意思 休息 关系 知道 告诉 认识 喜欢 商量 暖和 头发 漂亮 清楚 舒服
麻烦 客气 聪明 时候 多少 豆腐 月亮 打扮 收拾 学生 姑娘 丈夫 媳妇 眼睛 耳朵 嘴巴 尾巴 脑袋 屁股 窗户 玻璃 葡萄
萝卜 亲戚 生意 便宜 热闹 厉害 凉快 口袋 故事 结实 踏实 老实 马虎 糊涂 凑合 琢磨 折腾 打听 招呼 答应 吩咐 嘱咐
衣裳 云彩 队伍 风筝 规矩 闺女 钥匙 木头 骨头 石头 晚上 早上 认得 记得 觉得 晓得 喇叭 琵琶 芝麻 消息 困难 动静
东家 姐夫 妹夫 爱人 庄稼 粮食 名字 枕头 舌头 指头 馒头 畜生 算盘 苗条""".split()
)


def _tone(s: str) -> str:
    return s[-1] if s and s[-1] in "12345" else ""


def _set_tone(s: str, tone: str) -> str:
    return s[:-1] + tone if _tone(s) else s


def _flat(words: list[tuple[str, list[str]]]) -> tuple[str, list[tuple[int, int]]]:
    text = "".join(w for w, _ in words)
    pos: list[tuple[int, int]] = []
    for wi, (w, _) in enumerate(words):
        pos.extend((wi, ci) for ci in range(len(w)))
    return text, pos


def _yi_bu(words: list[tuple[str, list[str]]]) -> None:
    text, pos = _flat(words)
    syl = [words[wi][1][ci] for wi, ci in pos]
    for k, ch in enumerate(text):
        if ch not in "一不" or not syl[k].startswith(("yi", "bu")) or syl[k] in ("yi5", "bu5"):
            continue  # the lexicon's neutral tone (对不起, 看一看) stays
        prev = text[k - 1] if k else ""
        nxt = text[k + 1] if k + 1 < len(text) else ""
        nxt_tone = _tone(syl[k + 1]) if nxt else ""
        if ch == "一":
            if not nxt or nxt in _NUM_AFTER_YI or prev in _NUMERALS or prev in _ORDINAL_BEFORE:
                new = "yi1"
            elif prev and prev == nxt and k >= 1:  # 看一看
                new = "yi5"
            elif nxt == "号" or (nxt in "月日" and (not prev or prev == "月")):
                new = "yi1"  # dates: 一月一日, 一号
            elif nxt_tone == "4" or (nxt_tone == "5" and nxt in "个"):
                new = "yi2"
            elif nxt_tone in "123" and nxt_tone:
                new = "yi4"
            else:
                new = syl[k]
        else:
            wi, ci = pos[k]
            if (prev and prev == nxt) or (len(words[wi][0]) == 3 and ci == 1):  # 去不去, 对不起, 看不见
                new = "bu5"
            elif nxt_tone == "4":
                new = "bu2"
            else:
                new = "bu4"
        wi, ci = pos[k]
        words[wi][1][ci] = new


def _neutral(words: list[tuple[str, list[str]]]) -> None:
    for w, syl in words:
        if len(w) == 2 and w[0] == w[1] and w[0] in _REDUP_NEUTRAL:
            syl[1] = _set_tone(syl[1], "5")
        if w in _NEUTRAL_LAST:
            syl[-1] = _set_tone(syl[-1], "5")
        if len(w) >= 2 and w[-1] in _NEUTRAL_SUFFIX:
            syl[-1] = _NEUTRAL_SUFFIX[w[-1]]
        if len(w) == 1 and w in _PARTICLES and syl[0][:-1] == _PARTICLES[w][:-1]:
            syl[0] = _PARTICLES[w]


def _third(groups: list[list[list[str]]]) -> None:
    """3-3 -> 2-3 inside each prosodic word (a list of lexical words' syllable lists), in place.

    Inside a lexical word every third tone before a (dictionary) third tone becomes 2 (展览馆 -> 2 2 3);
    across word boundaries of one prosodic word it is applied right to left on the current tones, so
    我很好 -> 3 2 3.
    """
    for group in groups:
        for syl in group:
            tones = [_tone(s) for s in syl]
            for k in range(len(syl) - 1):
                if tones[k] == "3" and tones[k + 1] == "3":
                    syl[k] = _set_tone(syl[k], "2")
        for j in range(len(group) - 2, -1, -1):
            left, right = group[j], group[j + 1]
            if left and right and _tone(left[-1]) == "3" and _tone(right[0]) == "3":
                left[-1] = _set_tone(left[-1], "2")


def apply(words: list[tuple[str, list[str]]], prosodic_words: list[list[int]]) -> None:
    """All sandhi rules on a clause, in place.

    Args:
        words: (text, syllables) per lexical word, syllables in TONE3 with neutral 5.
        prosodic_words: groups of word indices that form one prosodic word (third-tone domain).
    """
    _neutral(words)
    _yi_bu(words)
    groups = [[words[wi][1] for wi in group] for group in prosodic_words]
    _third(groups)
    # a lone third-tone monosyllable before a third tone changes too (我 | 想吃 -> wo2)
    for left, right in zip(groups, groups[1:], strict=False):
        if len(left) == 1 and len(left[0]) == 1 and _tone(left[0][0]) == "3" and right and right[0]:
            if _tone(right[0][0]) == "3":
                left[0][0] = _set_tone(left[0][0], "2")
