"""Polyphone disambiguation by context rules, for characters the phrase lexicon leaves open.

Only characters outside any known word reach this module (the lexicon covers 银行, 长大, 了解 ...),
so the rules look at single-character words and their neighbours: 得 after a pronoun is dei3, 行
after a numeral is hang2, 长 before 得/满/大 is zhang3, and so on. Each rule returns a TONE3 reading
or None to keep the lexicon's default.

g2pM's packaged BiLSTM was evaluated for this and rejected: on this project's polyphone table it
scored 60 % against 90 % for pypinyin's defaults (confidently wrong on 得, 重, 长), see bench.py.
This project's own trained model (polyphone_model.py) runs after these rules and never overrides them.
"""

from __future__ import annotations

from collections.abc import Callable

_NUMERALS = set("一二三四五六七八九十百千万两几每第数半")
_PRONOUNS = set("我你他她它咱您谁")
_ADVERBS_DEI = set("还就都也总必须又可真非只便才却倒先得须") | _PRONOUNS
_DEGREE = set("很太真好最更挺超极蛮够多那这么")
_SURNAMES = {
    "曾": "zeng1",
    "解": "xie4",
    "单": "shan4",
    "仇": "qiu2",
    "任": "ren2",
    "朴": "piao2",
    "查": "zha1",
    "区": "ou1",
    "盖": "ge3",
    "乐": "yue4",
    "华": "hua4",
    "曲": "qu1",
    "尉": "yu4",
    "缪": "miao4",
    "种": "chong2",
    "繁": "po2",
    "秘": "bi4",
    "召": "shao4",
    "翟": "zhai2",
    "折": "she2",
    "员": "yun4",
}


def _in(ch: str, chars: str) -> bool:
    return bool(ch) and ch in chars


Rule = Callable[[str, str, str], "str | None"]


def _xing(prev: str, nxt: str, _: str) -> str | None:
    if prev in _NUMERALS:
        return "xing2" if nxt in _NUMERALS or nxt == "人" else "hang2"
    if _in(prev, "这那本同改转") and (not nxt or _in(nxt, "很都也的里业内规当")):
        return "hang2"
    return "xing2"


def _zhang_chang(prev: str, nxt: str, _: str) -> str | None:
    if _in(prev, "米尺寸丈公分间久") or prev in _DEGREE:
        return "chang2"
    if _in(nxt, "得着出满成高胖大起歪肉个") or (nxt == "了" and prev not in _DEGREE):
        return "zhang3"
    return None


def _de_dei(prev: str, nxt: str, _: str) -> str | None:
    if not prev or prev in _ADVERBS_DEI:
        return "de2" if _in(nxt, "了到奖分病知罪逞手益过") else "dei3"
    return "de5"


def _di_de(prev: str, nxt: str, word_before: str) -> str | None:
    if len(word_before) >= 2 and nxt and prev not in "块片土草田的在上遍满空各" and word_before[-1] != "的":
        return "de5"
    return "di4"


def _huan(prev: str, nxt: str, _: str) -> str | None:
    if _in(nxt, "给钱书回债款贷清账本上了"):
        return "huan2" if nxt else None
    if not nxt and _in(prev, "要不没得会来去就能"):
        return "huan2"
    return "hai2"


def _wei(prev: str, nxt: str, _: str) -> str | None:
    if _in(prev, "成作称认视命选评分改变化定列划立封奉尊推拜誉以"):
        return "wei2"
    if _in(nxt, "你我他她它大祖国此了谁何什人"):
        return "wei4"
    return None


def _zhong4_weight(prev: str, nxt: str, _: str) -> str | None:
    if _in(nxt, "新复叠逢申返温播建组修演蹈") or _in(prev, "一二两三四五六七八九十万千百几双"):
        return "chong2"
    return "zhong4"


def _zhong(prev: str, nxt: str, _: str) -> str | None:
    if _in(prev, "射考猜打选看击命说") and (not nxt or _in(nxt, "了过的")):
        return "zhong4"
    if _in(nxt, "了过奖彩签") and prev not in ("", "其", "之", "当", "空", "心", "手", "家", "眼", "水"):
        return "zhong4"
    return None


def _zhuan(prev: str, nxt: str, _: str) -> str | None:
    if _in(nxt, "得动着圈速盘个") or _in(prev, "绕旋打团直公自"):
        return "zhuan4"
    return None


def _shu(prev: str, nxt: str, _: str) -> str | None:
    if _in(nxt, "一数钱着过到清不") or prev == "数":
        return "shu3"
    return None


def _zhong_kind(prev: str, nxt: str, _: str) -> str | None:
    if _in(prev, "这那哪一各多几某每两三此该何") or _in(nxt, "类"):
        return "zhong3"
    if _in(nxt, "了树花菜地田下瓜豆麦稻") or (_in(prev, "里在去要来会能正们民他我你也都就还") and not _in(nxt, "子类")):
        return "zhong4"
    return None


def _tiao_diao(prev: str, nxt: str, _: str) -> str | None:
    if _in(nxt, "小大高低好匀皮"):
        return "tiao2"
    if _in(nxt, "到往走离任"):
        return "diao4"
    return None


def _cha(prev: str, nxt: str, _: str) -> str | None:
    if prev in _DEGREE or _in(prev, "较变") or _in(nxt, "点些不"):
        return "cha4"
    return None


def _simple(table: dict[str, tuple[str, str]]) -> Rule:
    """``{neighbour chars: (reading when next in it, ...)}`` helper: next-character cue."""

    def rule(prev: str, nxt: str, _: str) -> str | None:
        for cue, reading in table.items():
            if cue.startswith("<"):
                if prev and prev in cue[1:]:
                    return reading[0]
            elif nxt and nxt in cue:
                return reading[0]
        return None

    return rule


RULES: dict[str, Rule] = {
    "行": _xing,
    "长": _zhang_chang,
    "得": _de_dei,
    "地": _di_de,
    "还": _huan,
    "为": _wei,
    "重": _zhong4_weight,
    "中": _zhong,
    "转": _zhuan,
    "数": _shu,
    "种": _zhong_kind,
    "调": _tiao_diao,
    "差": _cha,
    "散": _simple({"着乱落装漫": ("san3", "")}),
    "切": _simple({"菜肉开断成片丝瓜": ("qie1", "")}),
    "削": _simple({"苹皮铅果": ("xiao1", "")}),
    "卷": _simple({"起成入进着": ("juan3", "")}),
    "背": _simple({"着起走上": ("bei1", "")}),
    "担": _simple({"<一两几": ("dan4", "")}),
    "缝": _simple({"好补衣上了": ("feng2", "")}),
    "卡": _simple({"在住着": ("qia3", "")}),
    "累": _simple({"<很太好真挺不": ("lei4", ""), "死坏了得": ("lei4", "")}),
    "蒙": _simple({"上住着": ("meng2", "")}),
    "挑": _simple({"水担着": ("tiao1", "")}),
    "通": _simple({"<一两几": ("tong4", "")}),
    "薄": _simple({"<很太真好挺": ("bao2", "")}),
    "教": _simple({"我你他她们人了书过着课": ("jiao1", "")}),
    "只": _simple({"<一二两三四五六七八九十几万千百每": ("zhi1", "")}),
    "的": _simple({"<打": ("di1", "")}),
    "着": _simple({"<一": ("zhao1", "")}),
    "弹": _simple({"吉钢琴琵古奏唱": ("tan2", ""), "<在会正来": ("tan2", "")}),
    "觉": _simple({"<一大睡午": ("jiao4", "")}),
    "朝": _simple({"着向东南西北前后外里上下左右": ("chao2", "")}),
    "扇": _simple({"扇": ("shan1", "")}),
    "干": _simple({"<晒烘吹擦风": ("gan1", ""), "燥净杯爽": ("gan1", "")}),
    "了": _simple({"<不": ("liao3", "")}),
    "和": _simple({"<麻": ("hu2", "")}),
    "量": _simple({"<商打思": ("liang2", "")}),
}

#: the reading of a character standing alone when no rule fires, where pypinyin's first reading is the
#: one used inside words rather than alone (削 xue1 in 削弱, but 削苹果 xiao1)
SINGLE_DEFAULTS = {
    "长": "chang2",
    "似": "si4",
    "弹": "tan2",
    "铺": "pu1",
    "曲": "qu3",
    "教": "jiao1",
    "泊": "bo2",
    "帖": "tie3",
    "削": "xiao1",
    "划": "hua2",
    "切": "qie1",
}
_LIAO_WORDS = {"了解", "了然", "了结", "了却", "了不", "了得", "了如", "了断", "了事", "了无"}
_VERB_BU_LIAO = set("受吃走跑少免忘办做干完用睡喝拿搬看听说写记学去来管救改躲逃当瞒挡")


def rule_reading(text: str, i: int, word: tuple[int, int]) -> str | None:
    """A reading for ``text[i]`` decided by its neighbours, or None to keep the lexicon's default.

    Args:
        text: the Han run the character is in.
        i: its index.
        word: (start, end) of the segmented word that holds it.
    """
    ch = text[i]
    prev = text[i - 1] if i > 0 else ""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if text[i + 1 : i + 3] in _LIAO_WORDS:
        nxt = "·"  # 过程中了解, 还了解: the next word is 了解, not the particle 了
    if prev == "姓" and ch in _SURNAMES:
        return _SURNAMES[ch]
    if ch == "着" and nxt == "了" and _in(prev, "找睡猜摸够见逮抓碰借买"):
        return "zhao2"
    if ch == "了":
        if _in(prev, "不得") and i >= 2 and text[i - 2] in _VERB_BU_LIAO:
            return "liao3"
        if word[1] - word[0] == 1 and prev != "不":
            return "le5"
    rule = RULES.get(ch)
    ruled = rule(prev, nxt, text[max(0, word[0] - 4) : word[0]]) if rule else None
    if ruled is None and ch == "似" and nxt == "的":
        return "shi4"
    if ruled is None and word[1] - word[0] == 1:
        return SINGLE_DEFAULTS.get(ch)
    return ruled


def resolve(text: str, readings: list[str], ambiguous: list[int], words: list[tuple[int, int]]) -> set[int]:
    """Replace ``readings[i]`` for each ambiguous index ``i`` of ``text`` in place, where a rule applies.

    Returns the indices where a rule chose the reading.

    Args:
        text: one Han run, one reading per character.
        readings: TONE3 readings from the lexicon (pypinyin defaults for single characters).
        ambiguous: indices whose reading is a single-character default.
        words: (start, end) spans of the segmentation.
    """
    word_of: dict[int, tuple[int, int]] = {}
    for start, end in words:
        for k in range(start, end):
            word_of[k] = (start, end)
    fired = set()
    for i in ambiguous:
        ruled = rule_reading(text, i, word_of.get(i, (i, i + 1)))
        if ruled:
            readings[i] = ruled
            fired.add(i)
    return fired
