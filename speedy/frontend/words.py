"""The lexicon pass of G2P: a Han run cut into words, each read from the lexicon, then the polyphone rules.

It sits below both `g2p` (which adds the trained disambiguator, sandhi and erhua) and `polyphone_model`
(whose features are this pass's readings), so neither has to import the other.
"""

from __future__ import annotations

from functools import lru_cache

from speedy.frontend import lexicon, polyphones, segment

_COUNTING = set("第一二三四五六七八九十百千万两几每半")


@lru_cache(maxsize=1)
def _lexicon():  # noqa: ANN202 - (Segmenter, Lexicon)
    """The compiled lexicon (lexicon.py: sorted arrays, ~7 MB) and a segmenter over it."""
    lex = lexicon.load()
    return segment.Segmenter(lex), lex


def cut(text: str) -> list[str]:
    """Words of a Han run (most probable path over the lexicon's word counts)."""
    return _lexicon()[0].cut(text)


def _char_reading(ch: str) -> tuple[str, bool]:
    """(default TONE3 reading, has several readings) of one character; ('', False) if unknown."""
    readings = _lexicon()[1].char_readings(ch)
    return (readings[0], len(readings) > 1) if readings else ("", False)


def word_readings(word: str, own: bool = True) -> tuple[list[str], list[bool]]:
    """TONE3 readings of a word from the phrase lexicon; flags mark single-character guesses.

    ``own=False`` ignores this project's tables (used when rebuilding them).
    """
    lex = _lexicon()[1]
    extra = lex.own_readings(word) if own else None
    if extra is not None:
        return extra, [False] * len(word)
    known = lex.phrase_readings(word) if len(word) > 1 else None
    if known is not None:
        return known, [False] * len(word)
    readings: list[str] = []
    guesses: list[bool] = []
    parts = lex.mmseg(word) if len(word) > 1 else [word]
    for part in parts:
        known = lex.phrase_readings(part) if len(part) > 1 else None
        if known is not None:
            readings.extend(known)
            guesses.extend([False] * len(part))
        else:
            for ch in part:
                r, multi = _char_reading(ch)
                readings.append(r)
                guesses.append(multi)
    return readings, guesses


def lexicon_pass(text: str) -> tuple[list[str], list[tuple[int, int]], list[str], set[int], set[int]]:
    """A Han run -> (words, their spans, readings by lexicon + rules, indices the lexicon left open,
    indices among them a context rule decided); no trained model yet."""
    words = cut(text)
    readings: list[str] = []
    guesses: list[int] = []
    spans: list[tuple[int, int]] = []
    for w in words:
        r, g = word_readings(w)
        start = len(readings)
        if len(w) > 1 and w[-1] in polyphones.RULES and all(c in _COUNTING for c in w[:-1]):
            g[-1] = True  # numeral + measure (一行, 第三行, 两卷): let the rules look at the context
        guesses.extend(start + k for k, flag in enumerate(g) if flag)
        readings.extend(r)
        spans.append((start, start + len(w)))
    ruled = polyphones.resolve(text, readings, guesses, spans) if guesses else set()
    return words, spans, readings, set(guesses), ruled
