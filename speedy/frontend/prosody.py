"""Prosodic structure from word segmentation: prosodic words (#1) and prosodic phrases (#2).

Baker's labels mark prosodic words with #1, prosodic phrases with #2 and intonational phrases (at
commas) with #3; inside a prosodic word every character is followed by #0. Lexical words
are grouped the way Baker's annotators tend to: particles and suffixes lean on the word before,
a monosyllable joins the next word when the two stay within three syllables, and a phrase closes
once it holds about six syllables.
"""

from __future__ import annotations

_LEAN_LEFT = set("的了着过地得们吗呢吧啊呀嘛啦哦么似中里上时后前内外")
_CONJUNCTIONS = {
    "但是",
    "而且",
    "因为",
    "所以",
    "如果",
    "虽然",
    "然后",
    "并且",
    "或者",
    "还是",
    "以及",
    "不过",
    "可是",
    "于是",
    "因此",
    "而",
    "和",
    "与",
    "但",
    "却",
    "并",
    "就是",
    "只要",
    "只有",
    "即使",
}
_PHRASE_MIN, _PHRASE_MAX = 4, 7
_PW_MAX = 4


def prosodic_words(words: list[str]) -> list[list[int]]:
    """Group word indices into prosodic words: ``["我", "很", "好"]`` -> ``[[0], [1, 2]]``."""
    groups: list[list[int]] = []
    sizes: list[int] = []
    pending: list[int] = []  # monosyllables waiting to join the next word
    pending_size = 0
    for i, w in enumerate(words):
        n = len(w)
        if n == 1 and w in _LEAN_LEFT and groups and sizes[-1] + 1 <= _PW_MAX and not pending:
            groups[-1].append(i)
            sizes[-1] += 1
            continue
        if pending and n == 1 and w not in _LEAN_LEFT and i + 1 < len(words) and len(words[i + 1]) == 1:
            groups.append(pending)  # 我/很/好 -> [我] [很 好]
            sizes.append(pending_size)
            pending, pending_size = [i], 1
            continue
        if pending and pending_size + n <= 3:
            pending.append(i)
            pending_size += n
            groups.append(pending)
            sizes.append(pending_size)
            pending, pending_size = [], 0
            continue
        if pending:
            groups.append(pending)
            sizes.append(pending_size)
            pending, pending_size = [], 0
        if n == 1 and w not in _LEAN_LEFT and i + 1 < len(words):
            pending, pending_size = [i], 1
            continue
        groups.append([i])
        sizes.append(n)
    if pending:
        groups.append(pending)
        sizes.append(pending_size)
    return groups


def phrase_breaks(words: list[str], groups: list[list[int]]) -> list[str]:
    """The break symbol after each prosodic word but the last: ``#1`` or ``#2``."""
    sizes = [sum(len(words[i]) for i in g) for g in groups]
    total = sum(sizes)
    out: list[str] = []
    run = 0
    done = 0
    for k in range(len(groups) - 1):
        run += sizes[k]
        done += sizes[k]
        nxt = "".join(words[i] for i in groups[k + 1])
        rest = total - done
        starts_conj = any(nxt.startswith(c) for c in _CONJUNCTIONS) and len(words[groups[k + 1][0]]) > 1
        if rest >= 2 and (run >= _PHRASE_MAX or (run >= _PHRASE_MIN and (starts_conj or sizes[k + 1] >= 3))):
            out.append("#2")
            run = 0
        else:
            out.append("#1")
    return out
