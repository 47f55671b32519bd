"""Reading Latin letters and English words with the Baker (Mandarin) phone set.

The Baker voice only knows Mandarin initials and finals, so English is approximated the way Chinese
speakers often say it: letters by their common Mandarin-ised names (GPS -> 吉 披 艾斯: ``j i4 p i4 ^ ai4
s ii1``), a small lexicon of frequent English words as Mandarin-like syllables (hello -> 哈喽), other
lower-case words by letter-to-sound rules (english_rules.py), and acronyms (all capitals, or short
mixed-case words) spelt letter by letter. Phones are given directly as (initial, final+tone) pairs, so
non-pinyin combinations such as ``k ei4`` (K) are allowed: each is in the symbol set.
"""

from __future__ import annotations

import re

from speedy.frontend.english_rules import approximate
from speedy.frontend.symbols import pinyin_table, split_syllable, symbol_set

#: letter -> phones (pairs of initial, final+tone)
LETTERS: dict[str, tuple[str, ...]] = {
    "A": ("^", "ei1"),
    "B": ("b", "i4"),
    "C": ("s", "ei1"),
    "D": ("d", "i4"),
    "E": ("^", "i4"),
    "F": ("^", "ai2", "f", "u5"),
    "G": ("j", "i4"),
    "H": ("^", "ei2", "q", "i1"),
    "I": ("^", "ai4"),
    "J": ("j", "ie4"),
    "K": ("k", "ei4"),
    "L": ("^", "ai2", "l", "ou5"),
    "M": ("^", "ai2", "m", "u5"),
    "N": ("^", "en1"),
    "O": ("^", "ou1"),
    "P": ("p", "i4"),
    "Q": ("k", "iou1"),
    "R": ("^", "a4", "er5"),
    "S": ("^", "ai4", "s", "ii1"),
    "T": ("t", "i4"),
    "U": ("^", "iou1"),
    "V": ("^", "uei1"),
    "W": ("d", "a2", "b", "u5", "l", "iou1"),
    "X": ("^", "ai2", "k", "e4", "s", "ii1"),
    "Y": ("^", "uai1"),
    "Z": ("z", "ei4"),
}

#: frequent English words -> Mandarin-like syllables (TONE3)
WORDS: dict[str, str] = {
    "hello": "ha1 lou2",
    "hi": "hai1",
    "ok": "ou1 kei4",
    "okay": "ou1 kei4",
    "bye": "bai1",
    "yes": "ye1 si5",
    "no": "nou1",
    "wifi": "wai4 fei1",
    "wi-fi": "wai4 fei1",
    "app": "ai4 pu5",
    "iphone": "ai4 feng4",
    "ipad": "ai4 pai4",
    "email": "yi1 mei2 er5",
    "google": "gu3 ge1",
    "apple": "ai4 pou5",
    "microsoft": "mai4 ke4 ruan3",
    "windows": "wen1 dou1 si5",
    "android": "an1 zhuo2",
    "python": "pai4 sen1",
    "java": "jia1 wa3",
    "linux": "li2 nu2 ke4 si5",
    "office": "ao4 fei3 si5",
    "word": "wo4 de5",
    "excel": "yi1 ke4 sai4 er5",
    "online": "wang3 shang4",
    "cool": "ku4",
    "party": "pai4 dui4",
    "thank": "san1 ke4",
    "thanks": "san1 ke4 si5",
    "you": "you1",
    "sorry": "suo3 rui4",
    "baby": "bei4 bi3",
    "happy": "hai1 pi2",
    "nice": "nai4 si5",
    "good": "gu2 de5",
    "bug": "ba1 ge5",
    "chat": "qie4 te5",
    "tiktok": "ti1 ke4 tuo1 ke4",
    "facebook": "fei1 si5 bu4 ke4",
    "twitter": "tui1 te4",
    "nba": "",
    "taxi": "de1 shi4",
    "coffee": "ka1 fei1",
    "pizza": "pi1 sa4",
    "logo": "lou2 gou1",
    "show": "xiu4",
    "mini": "mi1 ni3",
    "pro": "pu5 rou1",
    "max": "mai4 ke4 si5",
    "plus": "pu5 la1 si5",
    "air": "ai4 er5",
    "home": "hou1 mu5",
    "love": "la1 fu5",
    "world": "wo4 de5",
    "mac": "mai4 ke4",
    "book": "bu4 ke4",
    "team": "ti1 mu5",
    "vip": "",
    "diy": "",
    "ai": "",
    "ceo": "",
    "usb": "",
    "gps": "",
    "cpu": "",
    "gpu": "",
}

_LATIN = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


def _syllables(text: str) -> tuple[str, ...]:
    phones: list[str] = []
    for syllable in text.split():
        phones.extend(split_syllable(syllable))
    return tuple(phones)


def _syllable_groups(phones: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``(^, ai4, s, ii1)`` -> ``[(^, ai4), (s, ii1)]``: one group per syllable (erhua stays attached)."""
    groups: list[tuple[str, ...]] = []
    k = 0
    while k < len(phones):
        if phones[k] == "er5" and groups:
            groups[-1] += ("er5",)
            k += 1
        else:
            groups.append(phones[k : k + 2])
            k += 2
    return groups


def spell(word: str) -> list[tuple[str, ...]]:
    """Letters of ``word``, one phone group per spoken syllable: ``"GPS"`` -> j i4 / p i4 / ^ ai4 / s ii1."""
    out: list[tuple[str, ...]] = []
    for c in word.upper():
        if c in LETTERS:
            out.extend(_syllable_groups(LETTERS[c]))
    return out


def _as_pinyin(key: str) -> list[str] | None:
    """``"beijing"`` -> ``["bei", "jing"]`` when the word is a run of toneless pinyin syllables."""
    table = pinyin_table()
    best: list[list[str] | None] = [None] * (len(key) + 1)
    best[len(key)] = []
    for i in range(len(key) - 1, -1, -1):
        for size in range(min(6, len(key) - i), 0, -1):
            rest = best[i + size]
            if rest is not None and key[i : i + size] in table and (size > 1 or key[i] in "aeo"):
                best[i] = [key[i : i + size], *rest]
                break
    return best[0]


def _read_part(part: str) -> list[tuple[str, ...]]:
    key = part.lower()
    reading = WORDS.get(key)
    if reading:
        return [_syllables(s) for s in reading.split()]
    if (part.isupper() and len(part) > 1) or len(part) == 1 or not re.search(r"[aeiouy]", key):
        return spell(part)  # acronyms, single letters and vowel-less strings
    syllables = _as_pinyin(key) if len(key) > 3 else None
    if syllables and len(syllables) <= len(key) // 2:
        return [_syllables(s + "1") for s in syllables]
    groups = approximate(key)
    valid = symbol_set()
    if groups and all(p in valid for g in groups for p in g):
        return groups
    return spell(part)


def read_latin(word: str) -> list[tuple[str, ...]]:
    """A Latin word -> phone groups, one per spoken syllable (joined by ``#0`` later).

    Lexicon words are read as Mandarin-like syllables, pinyin (Beijing) as pinyin, acronyms spelt,
    other words approximated by letter-to-sound rules; camelCase parts separately (ChatGPT).
    """
    key = word.lower().replace("’", "'")
    if key in WORDS and WORDS[key]:
        return _read_part(key)
    out: list[tuple[str, ...]] = []
    for part in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", word.replace("'", "").replace("’", "")):
        out.extend(_read_part(part))
    return out


def latin_tokens(text: str) -> list[str]:
    """The Latin words in ``text`` in order."""
    return _LATIN.findall(text)
