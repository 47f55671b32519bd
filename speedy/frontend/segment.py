"""Word segmentation: the most probable path through a word graph (jieba's method, without its HMM).

jieba's own 350k-word prefix dictionary takes 0.5-1.7 s to load, more than the frontend's whole
first-call budget, so a smaller table is shipped (``data/words.txt``: jieba's words of up to four
characters seen at least 20 times, with their counts) and completed by the pinyin lexicon's phrases.
Both are compiled into ``data/lexicon.npz`` (lexicon.py), which holds each word's log probability.
"""

from __future__ import annotations

from speedy.frontend.lexicon import MAX_WORD, Lexicon


class Segmenter:
    """Unigram word-graph segmenter over the compiled lexicon's word log probabilities."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    def cut(self, text: str) -> list[str]:
        """Split a Han run into words: ``"他在乐队里弹吉他"`` -> ``["他", "在", "乐队", "里", "弹", "吉他"]``."""
        n = len(text)
        best = [0.0] * (n + 1)
        step = [1] * (n + 1)
        logp = self.lexicon.word_logps(text)  # logp[i * MAX_WORD + size - 1]; -inf: not a word
        for i in range(n - 1, -1, -1):
            base = i * MAX_WORD
            top, top_len = logp[base] + best[i + 1], 1
            for size in range(2, min(MAX_WORD, n - i) + 1):
                p = logp[base + size - 1] + best[i + size]
                if p > top:
                    top, top_len = p, size
            best[i], step[i] = top, top_len
        out, i = [], 0
        while i < n:
            out.append(text[i : i + step[i]])
            i += step[i]
        return out
