"""Chinese text frontend for the Baker FastSpeech2 voice: normalisation, G2P, prosody, splitting.

``text_to_utterances`` = normalize -> split -> G2P (polyphones, sandhi, erhua, prosodic breaks) ->
Baker symbols. No torch here: this is run-time code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from speedy.frontend.g2p import clause_phones, pinyin
from speedy.frontend.normalize import normalize
from speedy.frontend.split import pause_after, sentences, split_first, split_sentences
from speedy.frontend.symbols import EOS, SIL, symbols

__all__ = ["Utterance", "normalize", "pinyin", "split_sentences", "symbols", "text_to_utterances"]

_LOG = logging.getLogger(__name__)
_CLAUSE_PUNCT = re.compile(r"[，,、：:；;。！？!?…—\-~“”‘’「」『』（）()《》【】\"'·/|]+")
MAX_CHARS = 60


@dataclass(frozen=True)
class Utterance:
    """One piece of speech for the acoustic model.

    Attributes:
        text: the normalised sentence it came from.
        phones: Baker symbols, ``("sil", ..., "sil", "eos")``.
        pause_after: seconds of silence after it, from its final punctuation; a consumer drops it
            after the last utterance (the frontend does not look ahead to know which that is).
    """

    text: str
    phones: tuple[str, ...]
    pause_after: float


def sentence_phones(text: str, dropped: list[str] | None = None) -> tuple[str, ...]:
    """A normalised sentence -> Baker phones, ``#3`` at inner punctuation; ``()`` if nothing is sayable.

    Unreadable characters are appended to ``dropped`` when given, else logged as a warning.
    """
    phones: list[str] = []
    for clause in _CLAUSE_PUNCT.split(text):
        part = clause_phones(clause, dropped)
        if part:
            if phones:
                phones.append("#3")
            phones.extend(part)
    if not phones:
        return ()
    return (SIL, *phones, SIL, EOS)


def _pieces(text: str, max_chars: int, first_chars: int | None) -> Iterator[str]:
    """Normalised pieces of ``text``; the first one cut to ``first_chars`` when given."""
    first = first_chars is not None
    for raw in sentences(text):
        spoken = normalize(raw)  # whole sentences, so that 12:30 or 1,000 are never cut apart
        for piece in split_sentences(spoken, max_chars=max_chars):
            if first and piece.strip():
                first = False
                yield from split_first(piece, first_chars or max_chars)
            else:
                yield piece


def text_to_utterances(text: str, max_chars: int = MAX_CHARS, first_chars: int | None = None) -> Iterator[Utterance]:
    """Lazily turn any text into utterances; yields nothing when nothing in it can be said.

    Each utterance is yielded as soon as its own piece is read (no look-ahead: streaming starts after the
    first piece's G2P, not the second's), so its ``pause_after`` is its punctuation's pause even when it
    turns out to be the last: the consumer drops the pause after the last utterance it speaks.
    ``first_chars``: cut the first piece to at most this many characters (at its first comma, else at
    a word end) so that streaming starts on a short acoustic-model input.
    """
    dropped: list[str] = []
    warned = 0
    for piece in _pieces(text, max_chars, first_chars):
        phones = sentence_phones(piece, dropped)
        if dropped and not warned:
            _LOG.warning("dropping unreadable characters, e.g. %r", "".join(dropped[:20]))
            warned = len(dropped)
        if phones:
            yield Utterance(text=piece.strip(), phones=phones, pause_after=pause_after(piece))
    if len(dropped) > warned:
        _LOG.warning("dropped %d unreadable characters in all", len(dropped))
