"""Splitting long text into utterance-sized pieces at natural points, lazily."""

from __future__ import annotations

import re
from collections.abc import Iterator

#: seconds of silence after a piece, by the punctuation that ends it
PAUSES = {
    "。": 0.4,
    "！": 0.4,
    "？": 0.4,
    "!": 0.4,
    "?": 0.4,
    "…": 0.4,
    "\n": 0.4,
    ".": 0.4,
    "；": 0.3,
    ";": 0.3,
    "：": 0.25,
    ":": 0.25,
    "，": 0.2,
    ",": 0.2,
    "、": 0.15,
}
_SENTENCE = re.compile(r"[^。！？!?…；;\n]*(?:[。！？!?…；;\n]+[”’」』）)]*|$)")
_CLAUSE = re.compile(r"(?:[^，,、：:]|(?<=\d)[,:](?=\d))*(?:[，,、：:]+[”’」』）)]*|$)")
_CLOSING = "”’」』）)"
_SOFT = re.compile(r"[\s“”‘’「」『』（）()《》【】\-—]")


def _pieces(pattern: re.Pattern[str], text: str) -> Iterator[str]:
    for m in pattern.finditer(text):
        if m.group(0):
            yield m.group(0)


def _hard_cut(clause: str, max_chars: int) -> Iterator[str]:
    """A clause longer than ``max_chars`` cut at spaces/brackets when possible, else at word ends."""
    while len(clause) > max_chars:
        window = clause[:max_chars]
        cut = max((m.end() for m in _SOFT.finditer(window) if m.end() > max_chars // 2), default=0)
        if not cut:
            cut = _word_cut(clause, max_chars)
        yield clause[:cut]
        clause = clause[cut:]
    if clause:
        yield clause


def _word_cut(clause: str, max_chars: int) -> int:
    """The last word boundary within ``max_chars`` (at least half-way)."""
    from speedy.frontend.words import cut

    pos = 0
    best = max_chars
    for w in cut(clause[: max_chars + 8]):
        pos += len(w)
        if pos > max_chars:
            break
        if pos >= max_chars // 2:
            best = pos
    return best


def sentences(text: str) -> Iterator[str]:
    """Lazily yield the sentences of ``text`` (cut after 。！？!?…；; and newlines), blank ones skipped."""
    for sentence in _pieces(_SENTENCE, text):
        if sentence.strip():
            yield sentence


def split_sentences(text: str, max_chars: int = 60) -> Iterator[str]:
    """Lazily yield pieces of ``text`` of at most ``max_chars`` characters, each ending where a reader
    would pause: sentence ends first, then clauses (，、：) packed together, then spaces or word ends.
    Punctuation stays attached to the piece it ends; blank pieces are skipped."""
    max_chars = max(8, max_chars)
    for sentence in _pieces(_SENTENCE, text):
        if not sentence.strip():
            continue
        if len(sentence) <= max_chars:
            yield sentence
            continue
        buf = ""
        for clause in _pieces(_CLAUSE, sentence):
            if len(buf) + len(clause) <= max_chars:
                buf += clause
                continue
            if buf.strip():
                yield buf
            buf = ""
            if len(clause) <= max_chars:
                buf = clause
            else:
                *head, buf = list(_hard_cut(clause, max_chars))
                yield from (h for h in head if h.strip())
        if buf.strip():
            yield buf


#: spoken numbers (after normalisation): the first piece is never cut between two of these (二零二|六年)
_NUMERALS = set("零一二三四五六七八九十百千万亿两点")


def split_first(piece: str, max_chars: int) -> list[str]:
    """``piece`` as [head, rest] with a head of at most ``max_chars`` characters (final punctuation not
    counted), cut at its first clause end (，、：) when that is short enough, else at a prosodic boundary;
    [piece] if it is short."""
    if len(piece) <= max_chars:
        return [piece]
    clause = next(_pieces(_CLAUSE, piece), piece)
    spoken = len(clause.rstrip(_CLOSING + "".join(PAUSES)))  # its final punctuation does not count
    head = clause if spoken <= max_chars else clause[: _prosodic_cut(clause, max_chars)]
    rest = piece[len(head) :]
    return [head, rest] if head.strip() and rest.strip() else [piece]


def _joined(left: str, right: str) -> bool:
    """Two characters a cut must not separate: digits of a spoken number, letters of a Latin word."""
    return (left in _NUMERALS and right in _NUMERALS) or (
        left.isascii() and left.isalnum() and right.isascii() and right.isalnum()
    )


def _prosodic_cut(clause: str, max_chars: int) -> int:
    """Where to end a short head of ``clause`` (2..``max_chars`` characters): the last prosodic-phrase
    end (#2) there, else the last prosodic-word end (#1), never inside a spoken number; else a word end."""
    from speedy.frontend import prosody
    from speedy.frontend.words import cut

    words = cut(clause[: max_chars + 8])
    groups = prosody.prosodic_words(words)
    breaks = prosody.phrase_breaks(words, groups)
    phrase = word = 0
    pos = 0
    for k, group in enumerate(groups[:-1]):
        pos += sum(len(words[i]) for i in group)
        if pos > max_chars:
            break
        if pos < 2 or _joined(clause[pos - 1], clause[pos]):
            continue
        word = pos
        if breaks[k] == "#2":
            phrase = pos
    return phrase or word or _word_cut(clause, max_chars)


def pause_after(piece: str) -> float:
    """Seconds of silence after ``piece``, from its final punctuation (0.05 for a cut mid-clause)."""
    tail = piece.rstrip(" \t" + _CLOSING)
    return PAUSES.get(tail[-1], 0.05) if tail else 0.0
