"""The Baker FastSpeech2 symbol set and the pinyin -> (initial, final+tone) split it was trained with.

The table in ``data/pinyin_dict.tsv`` is the 417-syllable ``pinyin_dict`` of TensorFlowTTS's
``baker_mapper.json`` (Apache-2.0): ``wen -> (^, uen)``, ``ju -> (j, v)``, ``zhi -> (zh, iii)``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

PAD, SIL, EOS = "pad", "sil", "eos"
BREAKS = ("#0", "#1", "#2", "#3")
ERHUA = "er5"


@lru_cache(maxsize=1)
def symbols() -> tuple[str, ...]:
    """All 219 symbols in id order (``pad`` = 0, ``eos`` = 218)."""
    text = resources.files(__package__).joinpath("data/symbols.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


@lru_cache(maxsize=1)
def symbol_set() -> frozenset[str]:
    """The symbols as a set, for membership checks."""
    return frozenset(symbols())


@lru_cache(maxsize=1)
def pinyin_table() -> dict[str, tuple[str, str]]:
    """Toneless pinyin syllable (ü written v) -> (initial, final)."""
    text = resources.files(__package__).joinpath("data/pinyin_dict.tsv").read_text(encoding="utf-8")
    table: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            syllable, initial, final = line.split("\t")
            table[syllable] = (initial, final)
    return table


# Syllables pypinyin may produce that the Baker table lacks, mapped to the closest one it has.
_ALIASES = {
    "n": "en",
    "ng": "en",
    "m": "mu",
    "hm": "hen",
    "hng": "heng",
    "yo": "you",
    "lo": "luo",
    "ea": "ai",
    "eh": "ei",
    "ei": "ei",
    "o": "o",
    "kei": "ke",
    "den": "deng",
    "nun": "nen",
    "shei": "shui",
    "tei": "te",
    "lvan": "luan",
    "lve": "lve",
    "nve": "nve",
    "fiao": "diao",
    "cei": "ce",
    "sei": "se",
    "chua": "chuai",
    "nou": "nu",
    "zhei": "zhe",
    "rua": "ruo",
    "kiu": "qiu",
    "yai": "ya",
    "ri": "ri",
    "lun": "lun",
    "eng": "en",
    "dia": "dian",
    "pou": "pou",
    "biang": "bian",
    "tun": "tun",
    "bong": "beng",
    "din": "ding",
    "len": "leng",
    "wong": "weng",
    "ê": "ei",
}


def split_syllable(syllable: str) -> tuple[str, ...]:
    """``"zhong1"`` -> ``("zh", "ong1")``; erhua ``"huar1"`` -> ``("h", "ua1", "er5")``.

    Returns ``()`` for anything that is not a pinyin syllable with a tone digit 1-5.
    """
    if len(syllable) < 2 or syllable[-1] not in "12345":
        return ()
    base, tone = syllable[:-1].replace("ü", "v"), syllable[-1]
    table = pinyin_table()
    entry = table.get(base) or table.get(_ALIASES.get(base, ""))
    if entry is not None:
        return (entry[0], entry[1] + tone)
    if base.endswith("r") and base != "er":
        head = table.get(base[:-1]) or table.get(_ALIASES.get(base[:-1], ""))
        if head is not None:
            return (head[0], head[1] + tone, ERHUA)
    return ()
