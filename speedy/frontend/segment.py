"""Word segmentation: the most probable path through a word graph (jieba's method, without its HMM).

jieba's own 350k-word prefix dictionary takes 0.5-1.7 s to load, more than the frontend's whole
first-call budget, so a smaller table is shipped (``data/words.txt``: jieba's words of up to four
characters seen at least 20 times, with their counts) and completed by the pinyin lexicon's phrases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

_MAX_WORD = 6
_PHRASE_COUNT = 30  # a phrase of the pinyin lexicon that jieba's table lacks counts as a rare word


class Segmenter:
    """Unigram word-graph segmenter over counted words plus extra known words."""

    def __init__(self, counts: Mapping[str, str | int], extra: Iterable[Mapping[str, object]] = ()) -> None:
        logs = {w: float(c) for w, c in counts.items()}
        total = sum(logs.values()) or 1.0
        self.unknown = math.log(1.0 / total)
        self.logp: dict[str, float] = {w: math.log(max(c, 1.0) / total) for w, c in logs.items()}
        phrase = math.log(_PHRASE_COUNT / total)
        for table in extra:
            for w in table:
                if isinstance(w, str) and 1 < len(w) <= _MAX_WORD and w not in self.logp:
                    self.logp[w] = phrase

    def cut(self, text: str) -> list[str]:
        """Split a Han run into words: ``"他在乐队里弹吉他"`` -> ``["他", "在", "乐队", "里", "弹", "吉他"]``."""
        n = len(text)
        best = [0.0] * (n + 1)
        step = [1] * (n + 1)
        logp = self.logp
        for i in range(n - 1, -1, -1):
            top, top_len = logp.get(text[i], self.unknown) + best[i + 1], 1
            for size in range(2, min(_MAX_WORD, n - i) + 1):
                p = logp.get(text[i:i + size])
                if p is not None and p + best[i + size] > top:
                    top, top_len = p + best[i + size], size
            best[i], step[i] = top, top_len
        out, i = [], 0
        while i < n:
            out.append(text[i:i + step[i]])
            i += step[i]
        return out
