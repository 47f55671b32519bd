"""Text → KAN-TTS symbol streams for Sambert-HifiGan voices, without ttsfrd.

ModelScope feeds Sambert with the closed ``ttsfrd`` frontend, whose output is one token per phone or
prosodic break, ``{phone$tone$syllable_flag$word_segment$emotion$speaker}``, e.g. for 北京今天::

    {b_c$tone3$s_begin$word_begin$emotion_neutral$F7} {ei_c$tone3$s_end$word_middle$emotion_neutral$F7}
    {j_c$tone1$s_begin$word_middle$emotion_neutral$F7} {ing_c$tone1$s_end$word_end$emotion_neutral$F7}
    {#1$tone_none$s_none$word_none$emotion_none$F7} ...

This module builds the same streams from open parts: the project frontend's normalisation, word
segmentation, readings and prosodic grouping (jieba + pypinyin with tone sandhi when it is not
importable), and KAN-TTS's
pinyin → phone rules (``languages/PinYin/py2phoneMap.txt``), restated here as rules plus tables:

- every syllable is two phones: an initial (``x`` is spelled ``xx_c``; ``y`` and ``w`` are initials
  ``y_c``/``w_c``; a syllable with no initial takes ``ga``, ``ge`` or ``go`` after its first vowel) and
  a final (``iu`` → ``iou``, ``ui`` → ``uei``, ``un`` → ``uen``; ``u`` after j/q/x/y is ``v``; ``i``
  after zh/ch/sh/r is ``ih``, after z/c/s ``ii``); erhua finals add ``r`` (``dianr`` → ``ianr_c``);
- both phones carry the syllable's tone; the initial is ``s_begin`` and the final ``s_end``;
- ``word_begin``/``word_middle``/``word_end`` mark phones inside a prosodic word; breaks are
  ``#1``/``#2`` between prosodic words (the project frontend's grouping rules), ``#3`` at in-sentence
  punctuation and ``#4`` at the end, with ``tone_none``, ``s_none``, ``word_none`` and ``emotion_none``.

Prosody differs from ttsfrd's: ttsfrd predicts breaks (#1–#4) with a trained model; here they come
from word segmentation, grouping rules and punctuation, so phrasing and rhythm of real voices will not
match ModelScope's.

Ids index the voice's vocabularies: the symbol lists of the voice's ``dict/`` files when the folder
has them, else the built-in KAN-TTS lists below (same order), each followed by ``_``, ``~`` and
``@[MASK]``; the sizes must match the checkpoint's embedding tables (read from the weights).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.errors import InputError, ModelError

_LOGGER = logging.getLogger(__name__)

FRONTEND_NAME = "sambert-kantts"
SPECIALS = ("_", "~", "@[MASK]")
# Symbol tables stay packed (one item per line would triple them).
# fmt: off
_INITIALS_C = ("a", "ai", "an", "ang", "ao", "b", "c", "ch", "d", "e", "ei", "en", "eng", "er", "f", "g", "h", "i",
               "ia", "ian", "iang", "iao", "ie", "ih", "ii", "in", "ing", "io", "iong", "iou", "j", "k", "l", "m", "n",
               "o", "ong", "ou", "p", "q", "r", "s", "sh", "t", "u", "ua", "uai", "uan", "uang", "uei", "uen", "ueng",
               "uo", "v", "van", "ve", "vn", "xx", "z", "zh", "w", "y")
_ENGLISH = ("aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih", "iy",
            "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y", "z",
            "zh")
_ERHUA = ("air", "angr", "anr", "aor", "ar", "eir", "engr", "enr", "iangr", "ianr", "iaor", "iar", "ier", "ihr", "iir",
          "ingr", "inr", "iongr", "iour", "ir", "ongr", "or", "our", "uair", "uangr", "uanr", "uar", "ueir", "uenr",
          "uor", "ur", "vanr", "ver", "vnr", "vr")
#: KAN-TTS PinYin phone set in id order (PhoneSet.xml): 62 Mandarin, ga/ge/go, 39 English, 35 erhua, pau.
PHONES: tuple[str, ...] = (*(f"{p}_c" for p in _INITIALS_C), "ga", "ge", "go", *_ENGLISH,
                           *(f"{p}_c" for p in _ERHUA), "pau")
BREAKS = ("#1", "#2", "#3", "#4")
#: Tone list in id order (KAN-TTS ``tonelist.txt``; a blank line is ``tone_none``).
TONES = ("tone1", "tone_none", "tone4", "tone2", "tone3", "tone5", "tone0")
SYLLABLE_FLAGS = ("s_begin", "s_end", "s_none", "s_both", "s_middle")
WORD_SEGMENTS = ("word_begin", "word_end", "word_middle", "word_both", "word_none")
#: KAN-TTS ``emotion_types`` in id order (``emotion_`` prefix dropped); 24–32 are placeholders.
EMOTIONS = ("none", "neutral", "angry", "disgust", "fear", "happy", "sad", "surprise", "calm", "gentle", "relax",
            "lyrical", "serious", "disgruntled", "satisfied", "disappointed", "excited", "anxiety", "jealousy", "hate",
            "pity", "pleasure", "arousal", "dominance", *(f"placeholder{i}" for i in range(1, 10)))
#: The four labels the rest of the toolkit uses (speedy.controls) and the native emotion each maps to.
LABELS = {"中性": "neutral", "喜悦": "happy", "悲伤": "sad", "愤怒": "angry"}

_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s",
             "y", "w")
# fmt: on
_ODD_SYLLABLES = {"n": "en", "ng": "en", "hng": "en", "m": "mu", "hm": "mu", "ê": "ei", "ea": "ei", "eh": "ei"}
_NOT_ERHUA = frozenset(
    "女儿 儿女 幼儿 婴儿 孤儿 男儿 健儿 少儿 胎儿 患儿 宠儿 孩儿 新生儿 混血儿 托儿 儿童 儿子".split()
)
_PARTICLES = frozenset("的了吗呢吧啊呀着过们地得么嘛哦啦")
_PHRASE_PUNCT = "，,、：:；;—"
_SENTENCE_RE = re.compile(r"[^。！？!?…\n]*[。！？!?…\n]*")
_HAN = re.compile(r"[\u4e00-\u9fff]")
SENTENCE_PAUSE_S = 0.25
DEFAULT_MAX_SYMBOLS = 400


@dataclass(frozen=True)
class KanToken:
    """One encoder position: phone or break, tone, syllable flag and word segment (KAN-TTS names)."""

    phone: str
    tone: str
    syllable_flag: str
    word_segment: str

    @property
    def is_break(self) -> bool:
        return self.phone in BREAKS


@dataclass(frozen=True)
class SambertUtterance:
    """A sentence ready for encoding: its text, tokens, and the silence (s) to insert after it."""

    text: str
    tokens: tuple[KanToken, ...]
    pause_after: float

    @property
    def phones(self) -> tuple[str, ...]:
        return tuple(t.phone for t in self.tokens)

    def symbols(self, emotion: str = "neutral", speaker: str = "F7") -> str:
        """The ttsfrd-style line ``{phone$tone$flag$ws$emotion$speaker} ...`` (for inspection and tests)."""
        return " ".join(
            f"{{{t.phone}${t.tone}${t.syllable_flag}${t.word_segment}$emotion_{'none' if t.is_break else emotion}"
            f"${speaker}}}"
            for t in self.tokens
        )


# ---- pinyin → phones -----------------------------------------------------------------------------
def syllable_phones(syllable: str, erhua: bool = False) -> tuple[str, str]:
    """A TONE3 pinyin syllable without its tone digit (ü as ``v``) → (initial phone, final phone)."""
    s = _ODD_SYLLABLES.get(syllable, syllable).replace("ü", "v")
    initial = next((i for i in _INITIALS if s.startswith(i) and len(s) > len(i)), "")
    final = s[len(initial) :]
    if not initial:
        lead = {"a": "ga", "e": "ge", "o": "go"}.get(final[:1])
        if lead is None:
            raise InputError(f"pinyin {syllable!r} has no KAN-TTS phones")
        init_phone = lead
    else:
        init_phone = "xx_c" if initial == "x" else f"{initial}_c"
        if initial in ("j", "q", "x", "y") and final.startswith("u"):
            final = "v" + final[1:]
        if final == "i" and initial in ("zh", "ch", "sh", "r"):
            final = "ih"
        elif final == "i" and initial in ("z", "c", "s"):
            final = "ii"
        final = {"iu": "iou", "ui": "uei", "un": "uen"}.get(final, final)
    if erhua:
        r = "er" if final == "e" else final + "r"
        if f"{r}_c" in _PHONE_SET:
            final = r
    if f"{final}_c" not in _PHONE_SET:
        raise InputError(f"pinyin {syllable!r} has no KAN-TTS final {final!r}")
    return init_phone, f"{final}_c"


_PHONE_SET = frozenset(PHONES)


def _split_tone(item: str) -> tuple[str, str]:
    if item and item[-1] in "012345":
        return item[:-1], "tone5" if item[-1] == "0" else f"tone{item[-1]}"
    return item, "tone5"


# ---- text → tokens ----------------------------------------------------------------------------------
def _pinyin(text: str) -> list[str]:
    """One TONE3 item per character of ``text`` (the project frontend's, else pypinyin with sandhi)."""
    try:
        from speedy.frontend import pinyin as frontend_pinyin

        out = list(frontend_pinyin(text, sandhi=True))
        if len(out) == len(text):
            return out
        _LOGGER.debug("speedy.frontend.pinyin gave %d items for %d characters; using pypinyin", len(out), len(text))
    except (ImportError, AttributeError, TypeError):
        pass
    from pypinyin import Style, lazy_pinyin

    # pypinyin's stubs type `errors` as returning str; its converter also takes a list (one item per char)
    out = lazy_pinyin(
        text,
        style=Style.TONE3,
        neutral_tone_with_five=True,
        tone_sandhi=True,
        errors=lambda chars: list(chars),  # type: ignore[arg-type,return-value]
    )
    return (
        out
        if len(out) == len(text)
        else [lazy_pinyin(ch, style=Style.TONE3, neutral_tone_with_five=True)[0] for ch in text]
    )


def _words(phrase: str) -> list[str]:
    """jieba words of a Han-only phrase, with particles joined to the word before (fallback path)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    words: list[str] = []
    for w in jieba.cut(phrase, HMM=True):
        if words and len(w) == 1 and w in _PARTICLES:
            words[-1] += w
        else:
            words.append(w)
    return words


def prosodic_words(han: str) -> list[tuple[str, list[str], str]]:
    """A Han-only run → [(prosodic word, TONE3 item per character, break after it: #1 or #2)].

    Uses the project frontend's segmentation, readings and prosodic grouping (the same structure its
    Baker voices get); without it, jieba words and pypinyin with #1 after every word.
    """
    try:
        from speedy.frontend.g2p import analyse_han
        from speedy.frontend.prosody import phrase_breaks
    except ImportError:
        items, out, pos = _pinyin(han), [], 0
        for w in _words(han):
            out.append((w, items[pos : pos + len(w)], "#1"))
            pos += len(w)
        return out
    words, groups = analyse_han(han, sandhi_on=True)
    texts = [w for w, _ in words]
    breaks = [*phrase_breaks(texts, groups), "#1"]
    return [
        ("".join(texts[i] for i in g), [s or words[i][0][k] for i in g for k, s in enumerate(words[i][1])], b)
        for g, b in zip(groups, breaks)
    ]


def _word_tokens(word: str, items: Sequence[str]) -> list[KanToken]:
    """Tokens of one prosodic word from its per-character pinyin."""
    sylls: list[tuple[str, str, bool]] = []
    for i, (ch, item) in enumerate(zip(word, items)):
        base, tone = _split_tone(item)
        if ch == "儿" and i and i == len(word) - 1 and base == "er" and word not in _NOT_ERHUA:
            prev = sylls.pop()
            sylls.append((prev[0], prev[1], True))
            continue
        sylls.append((base, tone, False))
    phones: list[tuple[str, str, str]] = []
    for base, tone, er in sylls:
        try:
            init, fin = syllable_phones(base, er)
        except InputError:
            _LOGGER.warning("skipping %r in %r: no KAN-TTS phones for it", base, word)
            continue
        phones += [(init, tone, "s_begin"), (fin, tone, "s_end")]
    n = len(phones)
    if not n:
        return []
    seg = ["word_both"] if n == 1 else ["word_begin", *["word_middle"] * (n - 2), "word_end"]
    return [KanToken(p, t, f, s) for (p, t, f), s in zip(phones, seg)]


def brk(label: str) -> KanToken:
    """A prosodic-break token (#1…#4)."""
    return KanToken(label, "tone_none", "s_none", "word_none")


def sentence_tokens(sentence: str) -> list[KanToken]:
    """Tokens of one normalised sentence: #1/#2 between prosodic words, #3 at in-sentence punctuation, #4 at
    the end.

    Characters other than Han are skipped (the normaliser has already spelled digits and symbols out).
    """
    phrases = [p for p in re.split(f"[{re.escape(_PHRASE_PUNCT)}]", sentence)]
    tokens: list[KanToken] = []
    for phrase in phrases:
        han = "".join(_HAN.findall(phrase))
        if not han:
            continue
        if tokens:
            tokens[-1] = brk("#3")
        for word, items, after in prosodic_words(han):
            word_tokens = _word_tokens(word, items)
            if word_tokens:
                tokens += [*word_tokens, brk(after)]
    if tokens:
        tokens[-1] = brk("#4")
    return tokens


def _normalize(text: str) -> str:
    try:
        from speedy.frontend.normalize import normalize
    except ImportError:
        return text
    return normalize(text)


def text_to_utterances(text: str, max_symbols: int = DEFAULT_MAX_SYMBOLS) -> Iterator[SambertUtterance]:
    """Normalise and split ``text`` into sentences of at most ``max_symbols`` tokens, lazily.

    A sentence longer than the model takes is cut at its #3 breaks, then at #1 breaks.
    """
    for raw in _SENTENCE_RE.findall(_normalize(text)):
        if not raw.strip():
            continue
        tokens = sentence_tokens(raw)
        for part in _fit(tokens, max_symbols):
            yield SambertUtterance(raw.strip(), tuple(part), SENTENCE_PAUSE_S)


def _fit(tokens: list[KanToken], limit: int) -> Iterator[list[KanToken]]:
    """Cut a token list at the strongest breaks so that each piece has ≤ ``limit`` tokens."""
    if not tokens:
        return
    if len(tokens) <= limit:
        yield tokens
        return
    for level in ("#3", "#1"):
        cuts = [i for i, t in enumerate(tokens[:limit]) if t.phone == level]
        if cuts:
            cut = cuts[-1] + 1
            head = [*tokens[: cut - 1], brk("#4")]
            yield head
            yield from _fit(tokens[cut:], limit)
            return
    raise InputError(f"a word produced more than {limit} symbols; the model cannot take it")


# ---- vocabularies and emotions --------------------------------------------------------------------
@dataclass(frozen=True)
class SambertVocab:
    """Symbol lists in id order, specials included, per stream (KAN-TTS names)."""

    sy: tuple[str, ...]
    tone: tuple[str, ...]
    syllable_flag: tuple[str, ...]
    word_segment: tuple[str, ...]
    emotion: tuple[str, ...]
    speaker: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {
            k: list(getattr(self, k)) for k in ("sy", "tone", "syllable_flag", "word_segment", "emotion", "speaker")
        }


def read_vocab(voice_folder: Path, speakers: Sequence[str], sizes: Mapping[str, int]) -> tuple[SambertVocab, str]:
    """The voice's vocabularies, fitted to the checkpoint's table ``sizes``; returns (vocab, where from).

    Reads ``dict/<stream>_dict.txt`` (one symbol a line) or ``dict/PinYin/{PhoneSet.xml,tonelist.txt}``
    when present, else the built-in KAN-TTS lists. A checkpoint without the mask row (ModelScope's
    ``ignore_mask``) gets the lists without ``@[MASK]``. Raises ModelError when a size cannot match.
    """
    lists: dict[str, tuple[str, ...]] = {
        "sy": (*PHONES, *BREAKS),
        "tone": TONES,
        "syllable_flag": SYLLABLE_FLAGS,
        "word_segment": WORD_SEGMENTS,
        "emotion": tuple(f"emotion_{e}" for e in EMOTIONS),
        "speaker": tuple(speakers) or ("F7",),
    }
    origin = "built-in KAN-TTS PinYin lists"
    d = voice_folder / "dict"
    files = {
        "sy": "sy_dict.txt",
        "tone": "tone_dict.txt",
        "syllable_flag": "syllable_flag_dict.txt",
        "word_segment": "word_segment_dict.txt",
        "emotion": "emo_category_dict.txt",
        "speaker": "speaker_dict.txt",
    }
    if (d / "sy_dict.txt").is_file():
        for key, name in files.items():
            if (d / name).is_file():
                lines = [ln.strip() for ln in (d / name).read_text(encoding="utf-8").splitlines() if ln.strip()]
                lists[key] = tuple(
                    s[1:] if s.startswith("@") and s != "@[MASK]" else s for s in lines if s not in SPECIALS
                )
        origin = f"{d}/*_dict.txt"
    elif (d / "PinYin" / "PhoneSet.xml").is_file():
        lists["sy"] = (*_parse_phoneset(d / "PinYin" / "PhoneSet.xml"), *BREAKS)
        tl = d / "PinYin" / "tonelist.txt"
        if tl.is_file():
            lists["tone"] = tuple(
                f"tone{ln.strip()}" if ln.strip() else "tone_none" for ln in tl.read_text(encoding="utf-8").splitlines()
            )
        origin = f"{d}/PinYin"
    fitted: dict[str, tuple[str, ...]] = {}
    for key, items in lists.items():
        size = sizes.get("word_segment" if key == "word_segment" else key)
        full = (*items, *SPECIALS)
        if size is None or size == len(full):
            fitted[key] = full
        elif size == len(full) - 1:
            fitted[key] = full[:-1]
        else:
            raise ModelError(
                f"{voice_folder.name}: the checkpoint's {key} table has {size} rows but the "
                f"{origin} give {len(full)} symbols; this voice's symbol set is not supported"
            )
    return SambertVocab(**fitted), origin


def _parse_phoneset(path: Path) -> list[str]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ModelError(f"{path}: cannot parse ({e})") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return [(p.findtext(f"{ns}name") or "").strip() for p in root.findall(f"{ns}phone")]


def native_emotion_names(emotions: Sequence[str]) -> dict[str, int]:
    """Emotion label → id for a native manifest: the four toolkit labels first, then KAN-TTS names.

    ``emotions`` is the voice's emotion vocabulary (``emotion_<name>`` in id order, specials included).
    Placeholders, ``none`` and specials are left out.
    """
    ids = {e.removeprefix("emotion_"): i for i, e in enumerate(emotions) if e.startswith("emotion_")}
    names = {label: ids[e] for label, e in LABELS.items() if e in ids}
    taken = set(LABELS.values())
    names.update({e: i for e, i in ids.items() if e not in taken and e != "none" and not e.startswith("placeholder")})
    return names


def is_native_emotion(name: str | None) -> bool:
    """True if ``name`` is a KAN-TTS emotion (``surprise``, ``emotion_fear``…), for option validation."""
    if not name:
        return False
    key = name.strip().lower().removeprefix("emotion_")
    return key in EMOTIONS and key != "none" and not key.startswith("placeholder")


def resolve_native_emotion(names: Mapping[str, int], name: str | None) -> int:
    """The emotion id of ``name`` in a native manifest's ``names`` (None = 中性 / neutral)."""
    if not name:
        name = "中性"
    key = name.strip()
    low = key.lower().removeprefix("emotion_")
    english = {v: k for k, v in LABELS.items()}
    for cand in (key, low, english.get(low, "")):
        if cand in names:
            return int(names[cand])
    raise InputError(f"unknown emotion {name!r} for this voice; valid emotions: {', '.join(names)}")


# ---- the family encoder the Synthesizer uses --------------------------------------------------------
class SambertEncoder:
    """Binds a Sambert manifest's vocabularies: text → utterances → :class:`SambertInputs`."""

    def __init__(self, manifest: Any) -> None:
        vocab = manifest.extra.get("vocab")
        if not isinstance(vocab, Mapping):
            raise ModelError("sambert manifest: extra['vocab'] is missing")
        self.tables = {k: {s: i for i, s in enumerate(v)} for k, v in vocab.items()}
        self.tables["sy"] = {s: i for i, s in enumerate(manifest.frontend.symbols)}
        self.max_symbols = int(manifest.audio.max_ids)
        self.emotions = dict(manifest.controls.emotions.get("names", {}))
        self.speaker_id = int(manifest.extra.get("speaker", {}).get("id", 0))
        self.none_emotion = self.tables["emotion"].get("emotion_none", 0)

    def text_to_utterances(self, text: str, first_chars: int | None = None) -> Iterator[SambertUtterance]:
        """Sentences of at most max_symbols tokens; `first_chars` (a short first piece when streaming)
        is accepted for the Synthesizer's sake but not applied yet: Sambert cuts at its own breaks."""
        return text_to_utterances(text, self.max_symbols)

    def encode(self, utt: SambertUtterance, options: Any) -> Any:
        """Utterance + SynthesisOptions (emotion) → ``SambertInputs`` (each stream ``(T,)`` int64)."""
        from speedy.families.sambert.loop import SambertInputs

        emotion = resolve_native_emotion(self.emotions, getattr(options, "emotion", None))
        t = self.tables
        try:
            cols = [
                (
                    t["sy"][k.phone],
                    t["tone"][k.tone],
                    t["syllable_flag"][k.syllable_flag],
                    t["word_segment"][k.word_segment],
                    self.none_emotion if k.is_break else emotion,
                )
                for k in utt.tokens
            ]
        except KeyError as e:
            raise ModelError(f"frontend produced symbol {e.args[0]!r} that this voice does not know") from None
        if len(cols) > self.max_symbols:
            raise InputError(f"a sentence produced {len(cols)} symbols; the model takes at most {self.max_symbols}")
        arr = np.asarray(cols, dtype=np.int64).reshape(-1, 5)
        return SambertInputs(
            arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], np.full(len(arr), self.speaker_id, np.int64)
        )


def encoder(manifest: Any) -> SambertEncoder:
    """The Synthesizer's family hook: an encoder bound to ``manifest``."""
    return SambertEncoder(manifest)
