"""Grapheme to phoneme: Han text -> TONE3 pinyin with polyphones, sandhi and erhua; -> Baker phones.

Lexicon: pypinyin's phrase dictionary plus this project's tables, compiled into sorted arrays
(lexicon.py), over the most probable segmentation (segment.py); characters outside any phrase with
several readings go to the polyphone rules, then the trained disambiguator (polyphone_model.py)
overrides where it is confident enough.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from speedy.frontend import polyphone_model, prosody, sandhi
from speedy.frontend.english import read_latin
from speedy.frontend.symbols import ERHUA, split_syllable
from speedy.frontend.words import lexicon_pass

_LOG = logging.getLogger(__name__)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]+")
_TOKEN = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]+)"
    r"|(?P<latin>[A-Za-z]+(?:['’][A-Za-z]+)*)|(?P<space>\s+)|(?P<other>.)",
    re.S,
)
#: 儿 after these is a real syllable (女儿, 儿子 ...), not the erhua suffix
_NOT_ERHUA = set("女婴幼孤健患男胎少孙侄产乳病托宠混犬花孩") | {"儿"}
_ERHUA_WORDS = {
    "哪儿",
    "这儿",
    "那儿",
    "一点儿",
    "一会儿",
    "玩儿",
    "事儿",
    "味儿",
    "好玩儿",
    "一块儿",
    "小孩儿",
    "聊天儿",
    "有点儿",
    "差点儿",
    "慢慢儿",
    "面条儿",
    "冰棍儿",
    "小曲儿",
    "大伙儿",
    "老头儿",
    "门儿",
    "劲儿",
    "空儿",
    "个儿",
    "头儿",
    "片儿",
    "法儿",
    "样儿",
    "款儿",
    "盖儿",
    "画儿",
    "花儿",
    "今儿",
    "明儿",
    "昨儿",
    "哥们儿",
    "爷们儿",
    "模样儿",
    "活儿",
    "伴儿",
    "词儿",
    "字儿",
}


def analyse_han(text: str, sandhi_on: bool = True) -> tuple[list[tuple[str, list[str]]], list[list[int]]]:
    """A run of Han characters -> (words as (text, TONE3 syllables), prosodic-word groups)."""
    words, spans, readings, guesses, ruled = lexicon_pass(text)
    polyphone_model.refine(text, readings, guesses, ruled)
    out = [(w, readings[a:b]) for w, (a, b) in zip(words, spans, strict=True)]
    groups = prosody.prosodic_words(words)
    if sandhi_on:
        sandhi.apply(out, groups)
    else:
        for w, syl in out:
            for k, ch in enumerate(w):
                if ch == "一" and syl[k].startswith("yi"):
                    syl[k] = "yi1"
                elif ch == "不" and syl[k].startswith("bu"):
                    syl[k] = "bu4"
    return out, groups


def pinyin(text: str, sandhi: bool = True) -> list[str]:
    """One item per character of ``text``: TONE3 pinyin for Han characters (neutral 5, ü as v),
    anything else unchanged. ``normalize`` is not applied, so digits come back as digits."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.lastgroup != "han":
            out.extend(m.group(0))
            continue
        words, _ = analyse_han(m.group(0), sandhi_on=sandhi)
        for w, syl in words:
            out.extend(s or c for s, c in zip(syl, w, strict=True))
    return out


def _is_erhua(word: str, k: int, syl: list[str]) -> bool:
    """Whether 儿 at ``word[k]`` is the erhua suffix of the syllable before it."""
    if k == 0 or word[k] != "儿" or word[k - 1] in _NOT_ERHUA:
        return False
    return word in _ERHUA_WORDS or word[k - 1 : k + 1] in _ERHUA_WORDS or (k == len(word) - 1 and len(word) >= 3)


def clause_phones(text: str, dropped: list[str] | None = None) -> list[str]:
    """One clause (no punctuation inside) -> Baker phones with #0/#1/#2 between syllables, no sil.

    Han runs and Latin words are read; anything else is dropped: appended to ``dropped`` when given
    (the caller warns), else logged here as a warning.
    """
    own = dropped is None
    units: list[list[tuple[str, ...]]] = []  # prosodic words, each a list of syllable phone groups
    dropped = [] if dropped is None else dropped
    breaks: list[str] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            continue
        if kind == "latin":
            groups = read_latin(m.group(0))
            if groups:
                if units:
                    breaks.append("#1")
                units.append(groups)
            continue
        if kind == "other":
            if not unicodedata.category(m.group(0)).startswith("P"):
                dropped.append(m.group(0))  # punctuation is a silent boundary, anything else is dropped
            continue
        words, pw = analyse_han(m.group(0))
        names = [w for w, _ in words]
        inner = prosody.phrase_breaks(names, pw)
        for gi, group in enumerate(pw):
            syllables: list[tuple[str, ...]] = []
            for wi in group:
                w, syl = words[wi]
                for k, ch in enumerate(w):
                    syl_phones = split_syllable(syl[k]) if syl[k] else ()
                    if _is_erhua(w, k, syl) and syllables:
                        syllables[-1] = syllables[-1] + (ERHUA,)
                    elif syl_phones:
                        syllables.append(syl_phones)
                    else:
                        dropped.append(ch)
            if not syllables:
                continue
            if units:
                breaks.append(inner[gi - 1] if gi > 0 else "#1")
            units.append(syllables)
    if own and dropped:
        _LOG.warning("dropping %d unreadable character(s): %r", len(dropped), "".join(dropped[:20]))
    phones: list[str] = []
    for u, syllables in enumerate(units):
        if u:
            phones.append(breaks[u - 1])
        for s, syllable in enumerate(syllables):
            if s:
                phones.append("#0")
            phones.extend(syllable)
    return phones
