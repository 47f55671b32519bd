"""Text → ttskit symbol ids through the project's frontend (normalisation, pinyin with tone sandhi).

ttskit's model was trained on phkit's ``symbol_chinese`` table (145 symbols, restated in
:data:`SYMBOLS`): every syllable is an initial, a final and a tone digit followed by the ``-`` chain
symbol; zero-initial syllables take ``aa``/``ee``/``oo`` and ``y``/``w``/``yu`` become ``ii``/``uu``/``vv``;
``i`` after zh/ch/sh is ``ix``, after r ``iz``, after z/c/s ``iy``; ``u`` after j/q/x/y is ``v``;
``iu``/``ui``/``un`` stay abbreviated. Punctuation maps to one of ``! ? . , ; : " # ( )`` followed by
``-``; Latin letters are spelled (all-capital words by letter name, others as lower-case letters); an
utterance ends with a punctuation mark (``.`` added if it has none) and ``~ _``. Readings, sandhi (三声, 一, 不) and number reading come from
:mod:`speedy.frontend`, not from phkit (which the model's trainer used), so a few readings differ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from speedy.errors import InputError, ModelError

_LOGGER = logging.getLogger(__name__)

FRONTEND_NAME = "ttskit-phkit"
_SHENGMU = ("aa b c ch d ee f g h ii j k l m n oo p q r s sh t uu vv x z zh").split()
_YUNMU = (
    "a ai an ang ao e ei en eng er i ia ian iang iao ie in ing iong iu ix iy iz o ong ou u ua uai uan uang "
    "ueng ui un uo v van ve vn ng uong"
).split()
_LETTER_NAMES = [c + c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
_LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PUNCT = list('!?.,;:"#()')
#: phkit ``symbol_chinese`` in id order: pad, eos, chain, 27 initials, 41 finals, 5 tones, 26 letter
#: names, 26 letters, 10 punctuation marks, 7 others.
SYMBOLS: tuple[str, ...] = (
    "_",
    "~",
    "-",
    *_SHENGMU,
    *_YUNMU,
    *"12345",
    *_LETTER_NAMES,
    *_LETTERS,
    *_PUNCT,
    *"w y 0 6 7 8 9".split(),
)
PUNCT_MAP = {
    "!": "!",
    "！": "!",
    "?": "?",
    "？": "?",
    ".": ".",
    "。": ".",
    "…": ".",
    ",": ",",
    "，": ",",
    "、": ",",
    ";": ";",
    "；": ";",
    ":": ":",
    "：": ":",
    '"': '"',
    "“": '"',
    "”": '"',
    "'": '"',
    "‘": '"',
    "’": '"',
    "(": "(",
    "（": "(",
    "[": "(",
    "【": "(",
    "《": "(",
    "<": "(",
    ")": ")",
    "）": ")",
    "]": ")",
    "】": ")",
    "》": ")",
    ">": ")",
    "—": ",",
    "-": ",",
    "~": ",",
    "～": ",",
}
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s")
_FINAL_FIX = {"iou": "iu", "uei": "ui", "uen": "un"}
SENTENCE_PAUSE_S = 0.3  # ttskit joins sentences with 300 ms of silence
#: ttskit's sdk cuts text into pieces of at most 30 characters: attention drifts on long inputs.
MAX_CHARS = 30
_LATIN = re.compile(r"[A-Za-z]+")


def syllable_phones(syllable: str) -> tuple[str, ...]:
    """TONE3 pinyin (``"zhong1"``, ü as v, erhua ``"huar1"``) → phkit phones, e.g. ``("zh", "ong", "1")``.

    Returns ``()`` when it is not a Mandarin syllable this symbol set can spell.
    """
    if len(syllable) < 2 or syllable[-1] not in "12345":
        return ()
    base, tone = syllable[:-1].replace("ü", "v"), syllable[-1]
    if base.endswith("r") and base != "er" and len(base) > 1:
        head = syllable_phones(base[:-1] + tone)
        return (*head, "-", "ee", "er", "5") if head else ()
    if base in ("n", "ng", "m", "hm", "hng"):
        return ("n", "ng", tone) if base == "n" else ("ee", "ng", tone)
    initial = next((i for i in _INITIALS if base.startswith(i) and len(base) > len(i)), "")
    final = base[len(initial) :]
    if not initial:
        if base.startswith("yu"):
            initial, final = "vv", "v" + base[2:]
        elif base.startswith("y"):
            initial, final = "ii", ("i" + base[2:] if base.startswith("yi") else "i" + base[1:])
            final = {"io": "o"}.get(final, final)
        elif base.startswith("w"):
            initial, final = "uu", ("u" if base == "wu" else "u" + base[1:])
        else:
            initial = {"a": "aa", "e": "ee", "o": "oo"}.get(base[:1], "")
    elif initial in ("j", "q", "x") and final.startswith("u"):
        final = "v" + final[1:]
    elif final == "i" and initial in ("zh", "ch", "sh", "r", "z", "c", "s"):
        final = {"zh": "ix", "ch": "ix", "sh": "ix", "r": "iz"}.get(initial, "iy")
    final = _FINAL_FIX.get(final, final)
    if initial not in _SHENGMU or final not in _YUNMU:
        return ()
    return (initial, final, tone)


def _latin(word: str) -> list[str]:
    if word.isupper():
        return [p for c in word for p in (c + c.lower(), "-")]
    return [p for c in word.lower() for p in (c.upper(), "-")]


@dataclass(frozen=True)
class TtskitUtterance:
    """A piece of text ready for the model: its text, phkit phones (ending ``~ _``), the pause after it (s)."""

    text: str
    phones: tuple[str, ...]
    pause_after: float


def piece_phones(piece: str, dropped: list[str] | None = None) -> tuple[str, ...]:
    """A normalised piece → phkit phones ending ``~ _``, or ``()`` when nothing in it can be said."""
    from speedy.frontend.g2p import pinyin

    phones: list[str] = []
    spoken = False
    items = pinyin(piece)
    i = 0
    while i < len(items):
        item = items[i]
        if _LATIN.fullmatch(item):  # pinyin() passes Latin through one character at a time
            j = i
            while j < len(items) and _LATIN.fullmatch(items[j]):
                j += 1
            phones += _latin("".join(items[i:j]))
            spoken = True
            i = j
            continue
        i += 1
        syl = syllable_phones(item)
        if syl:
            phones += [*syl, "-"]
            spoken = True
        elif item in PUNCT_MAP:
            if phones and phones[-2:] != [PUNCT_MAP[item], "-"]:
                phones += [PUNCT_MAP[item], "-"]
        elif item.isspace():
            continue
        elif dropped is not None:
            dropped.append(item)
    if not spoken:
        return ()
    if phones[-2] not in _PUNCT:  # ttskit's pieces end in punctuation; without it some voices cut the last
        phones += [".", "-"]  # syllable short (Xiaowei on 你好: 0.24 s, on 你好。 0.59 s, measured)
    return (*phones, "~", "_")


def _pieces(text: str, max_chars: int, first_chars: int | None) -> Iterator[str]:
    from speedy.frontend import normalize
    from speedy.frontend.split import sentences, split_first, split_sentences

    first = first_chars is not None
    for raw in sentences(text):
        for piece in split_sentences(normalize(raw), max_chars=max_chars):
            if first and piece.strip():
                first = False
                yield from split_first(piece, first_chars or max_chars)
            else:
                yield piece


def text_to_utterances(
    text: str, first_chars: int | None = None, max_chars: int = MAX_CHARS
) -> Iterator[TtskitUtterance]:
    """Pieces of at most ``max_chars`` characters (the first cut to ``first_chars`` when streaming)."""
    from speedy.frontend.split import pause_after

    dropped: list[str] = []
    previous: TtskitUtterance | None = None
    for piece in _pieces(text, max_chars, first_chars):
        phones = piece_phones(piece, dropped)
        if not phones:
            continue
        if previous is not None:
            yield previous
        previous = TtskitUtterance(piece.strip(), phones, max(pause_after(piece), SENTENCE_PAUSE_S))
    if dropped:
        _LOGGER.warning("dropped %d unreadable character(s), e.g. %r", len(dropped), "".join(dropped[:20]))
    if previous is not None:
        yield TtskitUtterance(previous.text, previous.phones, 0.0)


@dataclass(frozen=True)
class TtskitInputs:
    """What the acoustic runner takes: ids ``(T,)`` int64 and the speaker vector ``(32,)`` float32."""

    ids: np.ndarray
    speaker: np.ndarray
    voice: str


class TtskitEncoder:
    """The Synthesizer's family hook: utterances, and ids + the requested voice's speaker vector."""

    def __init__(self, manifest: Any) -> None:
        from speedy.families.ttskit import DEFAULT_VOICE, speaker_vector

        self.table = {s: i for i, s in enumerate(manifest.frontend.symbols)}
        self.voices = tuple(manifest.controls.voices)
        self.default = DEFAULT_VOICE if DEFAULT_VOICE in self.voices else self.voices[0]
        self.max_ids = int(manifest.audio.max_ids)
        self._vectors = {v: speaker_vector(v) for v in self.voices}

    def text_to_utterances(self, text: str, first_chars: int | None = None) -> Iterator[TtskitUtterance]:
        """Pieces of at most :data:`MAX_CHARS`; ``first_chars`` (the Synthesizer's short first piece for
        streaming) is not applied: it cut 这家餐厅需要提前预约吗？ into …预约 + 吗？, and on one-character
        pieces some voices' attention lands on the end token at once."""
        return text_to_utterances(text)

    def voice(self, name: str | None) -> str:
        """The voice to use: ``name`` if it is one of the manifest's, the default for None/''."""
        if not name:
            return self.default
        if name not in self._vectors:
            raise InputError(f"unknown voice {name!r}; valid voices: {', '.join(self.voices)}")
        return name

    def encode(self, utt: TtskitUtterance, options: Any) -> TtskitInputs:
        """Utterance + SynthesisOptions (``voice``) → :class:`TtskitInputs`."""
        voice = self.voice(getattr(options, "voice", None))
        try:
            ids = np.asarray([self.table[p] for p in utt.phones], dtype=np.int64)
        except KeyError as e:
            raise ModelError(f"frontend produced symbol {e.args[0]!r} that this model does not know") from None
        if ids.size > self.max_ids:
            raise InputError(f"a sentence produced {ids.size} symbols; the model takes at most {self.max_ids}")
        return TtskitInputs(ids, self._vectors[voice], voice)


def encoder(manifest: Any) -> TtskitEncoder:
    """An encoder bound to ``manifest`` (looked up by the Synthesizer through the frontend name)."""
    return TtskitEncoder(manifest)
