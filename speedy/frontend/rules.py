"""Hand-written context rules for frequent polyphones the classifier or the lexicon get wrong."""

from __future__ import annotations

_VERB_BU_LIAO = set("受吃走跑少免忘办做干完用睡喝拿搬看听说写记学去来管救改躲逃当瞒挡")
_NOUN_AFTER_DE = set("")


def rule_reading(text: str, i: int, word: tuple[int, int]) -> str | None:
    """A reading for ``text[i]`` decided by its neighbours, or None to let the classifier decide."""
    ch = text[i]
    prev = text[i - 1] if i > 0 else ""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    single = word[1] - word[0] == 1
    if ch == "了":
        if prev in "不得" and i >= 2 and text[i - 2] in _VERB_BU_LIAO:
            return "liao3"
        if single:
            return "le5"
    if ch == "的":
        if single:
            return "de5"
    if ch == "地" and single and prev and nxt:
        return None
    if ch == "着" and single:
        return "zhe5"
    if ch == "们":
        return "men5"
    return None
