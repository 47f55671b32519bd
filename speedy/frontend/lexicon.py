"""The frontend's lexicon in a compact form: sorted numpy arrays in ``data/lexicon.npz`` instead of dicts.

Held as Python dicts and sets, the lexicon cost about 90 MB of resident memory in every serving process
(measured with /proc/self/status on the default voice): pypinyin's phrase and character tables 55 MB
(importing any pypinyin module loads both), its max-match prefix set, our 130k-word segmentation table
(24 MB) and our own phrase tables (10 MB). The same facts as sorted fixed-width arrays take about 7 MB,
load in milliseconds, and need no pypinyin at run time; lookups are ``np.searchsorted`` (one vectorised
call per Han run when segmenting).

Tables (``build`` writes them from the sources; ``python -m speedy.frontend.build_lexicon`` runs it):
- ``seg``: words of ``data/words.txt`` with their log probabilities, plus every phrase of up to
  ``MAX_WORD`` characters from the phrase tables at the rare-phrase probability (segment.py).
- ``phrase``: pypinyin's phrase table, first TONE3 reading per character; phrases longer than
  ``MAX_WORD`` only as their prefix (for the forward max-match of ``mmseg``, never looked up whole).
- ``own``: ``data/phrases.tsv`` then ``data/overrides.tsv`` (later rows win).
- ``char``: pypinyin's character table, all TONE3 readings, the default first.

Readings are stored once each as UTF-8 in one blob; a table's values index it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from speedy.errors import ModelError

DATA = Path(__file__).with_name("data")
LEXICON = DATA / "lexicon.npz"
#: text sources whose sha256 the compiled file records (a stale file fails tests/frontend/test_lexicon.py)
SOURCES = ("words.txt", "phrases.tsv", "overrides.tsv")
FORMAT = 1
MAX_WORD = 6
#: a phrase of the pinyin lexicon that jieba's table lacks counts as a rare word
PHRASE_COUNT = 30
#: recent lookups kept per process
CACHE_SIZE = 8192


@dataclass(frozen=True)
class Table:
    """Sorted unique keys (N,) (fixed-width unicode, or int32 code points) and int32 values (N,)."""

    keys: np.ndarray
    values: np.ndarray

    def find(self, key: str | int) -> int:
        """Position of ``key`` or -1."""
        i = int(self.keys.searchsorted(key))
        return i if i < len(self.keys) and self.keys[i] == key else -1

    def find_many(self, keys: list[str]) -> np.ndarray:
        """Positions (len(keys),) int64 of each key, -1 where absent (keys no wider than the table's)."""
        q = np.asarray(keys, dtype=self.keys.dtype)
        i = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        return np.where(self.keys[i] == q, i, -1)

    def has_prefix(self, prefix: str) -> bool:
        """Whether some key starts with ``prefix``."""
        i = int(self.keys.searchsorted(prefix))
        return i < len(self.keys) and str(self.keys[i]).startswith(prefix)


class Lexicon:
    """Lookups over the compiled tables (see the module docstring)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.seg = Table(arrays["seg_keys"], np.arange(len(arrays["seg_keys"]), dtype=np.int32))
        self.logp = arrays["seg_logp"]
        self.unknown = float(arrays["seg_unknown"])
        self.phrase = Table(arrays["phrase_keys"], arrays["phrase_values"])
        self.own = Table(arrays["own_keys"], arrays["own_values"])
        self.char = Table(arrays["char_keys"], arrays["char_values"])
        self._blob = arrays["blob"].tobytes()
        self._starts = arrays["starts"]
        #: a scalar searchsorted costs ~10 µs; words repeat, so recent answers are kept (bounded: ~1 MB)
        self._cached = lru_cache(maxsize=CACHE_SIZE)(self._lookup)

    def _text(self, value: int) -> str:
        return self._blob[self._starts[value] : self._starts[value + 1]].decode("utf-8")

    def _lookup(self, table: str, key: str | int) -> str | bool | None:
        if table == "prefix":
            return self.phrase.has_prefix(str(key))
        t: Table = getattr(self, table)
        i = t.find(key)
        if i < 0:
            return None
        v = int(t.values[i])
        return None if v < 0 else self._text(v)

    def _get(self, table: str, key: str | int) -> str | bool | None:
        return self._cached(table, key)

    def _reading(self, table: str, key: str | int) -> str | None:
        text = self._cached(table, key)
        assert not isinstance(text, bool), table  # only the "prefix" table answers with a bool
        return text

    def phrase_readings(self, word: str) -> list[str] | None:
        """TONE3 readings (one per character) of a pypinyin phrase, or None."""
        text = self._reading("phrase", word) if 1 < len(word) <= MAX_WORD else None
        return None if text is None else text.split()

    def own_readings(self, word: str) -> list[str] | None:
        """TONE3 readings from this project's tables (phrases.tsv, overrides.tsv), or None."""
        text = self._reading("own", word)
        return None if text is None else text.split()

    def char_readings(self, ch: str) -> tuple[str, ...]:
        """All TONE3 readings of one character, the default first; () if unknown."""
        text = self._reading("char", ord(ch))
        return () if text is None else tuple(text.split(","))

    def word_logps(self, text: str) -> list[float]:
        """Log P of every word ``text[i:i+s]`` (1 ≤ s ≤ MAX_WORD) at ``out[i * MAX_WORD + s - 1]``:
        -inf where it is not a word (or runs past the end), ``unknown`` for an unknown single character."""
        n = len(text)
        cands = [text[i : i + s] if i + s <= n else "" for i in range(n) for s in range(1, MAX_WORD + 1)]
        if not cands:
            return []
        pos = self.seg.find_many(cands)
        out = np.where(pos >= 0, self.logp[np.maximum(pos, 0)], -np.inf)
        singles = out[::MAX_WORD]
        singles[pos[::MAX_WORD] < 0] = self.unknown
        return out.tolist()

    def mmseg(self, text: str) -> list[str]:
        """Forward maximum matching over pypinyin's phrases (as ``pypinyin.seg.mmseg.seg``, strict mode):
        extend while the text so far starts some phrase, emit the longest phrase seen, else one character.
        For words of up to MAX_WORD characters (what the segmenter yields)."""
        out: list[str] = []
        remain = text
        while remain:
            last = ""
            for end in range(1, len(remain) + 1):
                word = remain[:end]
                if not self._get("prefix", word):
                    break
                if self.phrase_readings(word) is not None:
                    last = word
            else:
                if not last:
                    out.extend(remain)
                    break
            if last:
                out.append(last)
                remain = remain[len(last) :]
            else:
                out.append(remain[0])
                remain = remain[1:]
        return out


@lru_cache(maxsize=1)
def load(path: Path = LEXICON) -> Lexicon:
    """The compiled lexicon (cached); ModelError if the file is missing or of another format."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ModelError(
            f"{path}: cannot read the compiled lexicon ({e}); "
            "rebuild it with: python -m speedy.frontend.build_lexicon"
        ) from None
    if int(arrays.get("format", -1)) != FORMAT:
        raise ModelError(
            f"{path}: lexicon format {arrays.get('format')} is not {FORMAT}; "
            "rebuild it with: python -m speedy.frontend.build_lexicon"
        )
    return Lexicon(arrays)


def sources_digest(data: Path = DATA) -> str:
    """sha256 over the text sources (SOURCES) and the pypinyin version they were compiled with."""
    from importlib.metadata import version

    h = hashlib.sha256(f"pypinyin {version('pypinyin')}\n".encode())
    for name in SOURCES:
        h.update((data / name).read_bytes())
    return h.hexdigest()


def _tsv(name: str) -> list[tuple[str, str]]:
    text = resources.files(__package__).joinpath(f"data/{name}").read_text(encoding="utf-8")
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return [(a, b) for a, b in rows]


class _Strings:
    """Deduplicated strings → ids, then one UTF-8 blob with start offsets."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def id(self, s: str) -> int:
        return self.ids.setdefault(s, len(self.ids))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        encoded = [s.encode("utf-8") for s in self.ids]
        starts = np.zeros(len(encoded) + 1, dtype=np.int64)
        starts[1:] = np.cumsum([len(b) for b in encoded])
        return np.frombuffer(b"".join(encoded), dtype=np.uint8), starts


def _table(items: Iterable[tuple[str | int, int]], strings: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rows = sorted(dict(items).items())
    keys = [k for k, _ in rows]
    dtype = f"<U{max(len(str(k)) for k in keys)}" if strings else np.int32
    return np.asarray(keys, dtype=dtype), np.asarray([v for _, v in rows], dtype=np.int32)


def tone3(marked: str) -> str:
    """Tone-marked pinyin -> TONE3, neutral tone as 5 and ü as v (build time only: imports pypinyin)."""
    from pypinyin.contrib.tone_convert import to_tone3

    return to_tone3(marked, neutral_tone_with_five=True, v_to_u=False).replace("ü", "v")


def build(out: Path = LEXICON) -> dict[str, int]:
    """Compile the tables from pypinyin and ``data/*`` into ``out`` (temp file + rename); returns sizes.

    Build time only: imports pypinyin (its dicts, about 55 MB and 1 s)."""
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT

    strings = _Strings()
    own: dict[str, str] = {}
    for name in ("phrases.tsv", "overrides.tsv"):  # overrides last: they win
        own.update(_tsv(name))
    counts = {w: float(c) for w, c in _tsv("words.txt")}
    total = sum(counts.values()) or 1.0
    logp = {w: math.log(max(c, 1.0) / total) for w, c in counts.items()}
    phrase = math.log(PHRASE_COUNT / total)
    for table in (own, PHRASES_DICT):
        for w in table:
            if 1 < len(w) <= MAX_WORD and w not in logp:
                logp[w] = phrase
    seg = sorted(logp.items())
    phrases: dict[str, int] = {}
    for w, marked in PHRASES_DICT.items():
        if len(w) <= MAX_WORD:
            phrases[w] = strings.id(" ".join(tone3(p[0]) for p in marked))
    for w in PHRASES_DICT:  # prefixes of the long ones, for mmseg's prefix test only
        if len(w) > MAX_WORD:
            phrases.setdefault(w[:MAX_WORD], -1)
    chars = {cp: strings.id(",".join(tone3(r) for r in v.split(","))) for cp, v in PINYIN_DICT.items()}
    arrays: dict[str, np.ndarray] = {"format": np.asarray(FORMAT), "sources": np.asarray(sources_digest())}
    arrays["seg_keys"] = np.asarray([w for w, _ in seg], dtype=f"<U{MAX_WORD}")
    arrays["seg_logp"] = np.asarray([p for _, p in seg], dtype=np.float64)
    arrays["seg_unknown"] = np.asarray(math.log(1.0 / total))
    arrays["phrase_keys"], arrays["phrase_values"] = _table(phrases.items())
    arrays["own_keys"], arrays["own_values"] = _table((w, strings.id(r)) for w, r in own.items())
    arrays["char_keys"], arrays["char_values"] = _table(chars.items(), strings=False)
    arrays["blob"], arrays["starts"] = strings.arrays()
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez_compressed(tmp, allow_pickle=True, **arrays)  # the default, named: **arrays cannot fill it
    tmp.replace(out)
    load.cache_clear()
    return {"seg": len(seg), "phrase": len(phrases), "own": len(own), "char": len(chars)}
