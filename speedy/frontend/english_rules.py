"""Letter-to-sound approximation of English words with Mandarin initials and finals.

For words outside the small lexicon of english.py: the spelling is rewritten with a few digraph rules
(tion -> shen, ph -> f, ee -> i, ...), cut into onset + vowel (+ n/ng coda) syllables, and every
consonant left over becomes its own light syllable with a neutral schwa (``t`` -> ``t e5``), the way
Mandarin speakers break English clusters ("street" -> s ii5 t e5 r i1 t e5). Crude but always
sayable, and never silent.
"""

from __future__ import annotations

import re

_DIGRAPHS = [
    ("tion", "shen"),
    ("sion", "shen"),
    ("ture", "cher"),
    ("igh", "ai"),
    ("ph", "f"),
    ("ck", "k"),
    ("qu", "kw"),
    ("th", "s"),
    ("wh", "w"),
    ("ee", "i"),
    ("ea", "i"),
    ("oo", "u"),
    ("ou", "ao"),
    ("ow", "ao"),
    ("ai", "ei"),
    ("ay", "ei"),
    ("ey", "ei"),
    ("oa", "ou"),
    ("au", "ao"),
    ("aw", "ao"),
    ("oi", "ao"),
    ("oy", "ao"),
    ("x", "ks"),
    ("ce", "se"),
    ("ci", "si"),
    ("cy", "si"),
    ("ge", "je"),
    ("c", "k"),
]
_ONSETS = {
    "b": "b",
    "p": "p",
    "m": "m",
    "f": "f",
    "v": "f",
    "d": "d",
    "t": "t",
    "n": "n",
    "l": "l",
    "r": "r",
    "g": "g",
    "k": "k",
    "h": "h",
    "j": "zh",
    "s": "s",
    "z": "z",
    "sh": "sh",
    "ch": "ch",
    "w": "^",
    "y": "^",
    "": "^",
}
_SCHWA = {
    "b": ("b", "u5"),
    "p": ("p", "u5"),
    "m": ("m", "u5"),
    "f": ("f", "u5"),
    "v": ("f", "u5"),
    "d": ("d", "e5"),
    "t": ("t", "e5"),
    "n": ("n", "e5"),
    "l": ("^", "er5"),
    "r": ("^", "er5"),
    "g": ("g", "e5"),
    "k": ("k", "e5"),
    "s": ("s", "ii5"),
    "z": ("z", "ii5"),
    "sh": ("sh", "iii5"),
    "ch": ("q", "i5"),
    "j": ("zh", "iii5"),
}
_VOWELS = {
    "a": "a",
    "e": "ai",
    "i": "i",
    "o": "ou",
    "u": "u",
    "y": "i",
    "er": "er",
    "ao": "ao",
    "ei": "ei",
    "ou": "ou",
    "ai": "ai",
    "ie": "i",
    "ia": "ia",
    "io": "iou",
    "ua": "ua",
    "ue": "u",
    "ui": "uei",
    "eo": "iou",
    "ya": "ia",
    "yo": "iou",
    "oe": "ou",
    "ae": "ai",
    "eu": "iou",
}
_WITH_N = {"a": "an", "e": "en", "i": "in", "o": "ong", "u": "en", "y": "in"}
_WITH_NG = {"a": "ang", "e": "eng", "i": "ing", "o": "ong", "u": "ong", "y": "ing"}
_GLIDE = {
    ("^w", "a"): "ua",
    ("^w", "ai"): "uai",
    ("^w", "i"): "uei",
    ("^w", "ou"): "uo",
    ("^w", "u"): "u",
    ("^w", "an"): "uan",
    ("^w", "en"): "uen",
    ("^w", "in"): "uen",
    ("^w", "ang"): "uang",
    ("^y", "a"): "ia",
    ("^y", "ai"): "ie",
    ("^y", "ou"): "iou",
    ("^y", "u"): "iou",
    ("^y", "an"): "ian",
    ("^y", "ang"): "iang",
    ("^y", "ong"): "iong",
    ("^y", "en"): "in",
}
_UNIT = re.compile(r"sh|ch|ng|[bcdfghjklmnpqrstvwxyz]|[aeiouy]+")
_SIBILANT_I = {"s": "ii", "z": "ii", "sh": "iii", "ch": "iii", "zh": "iii", "r": "iii"}


def _spell_rules(word: str) -> str:
    w = word.lower()
    if len(w) > 3 and w.endswith("e") and w[-2] not in "aeiouy":
        w = w[:-1]  # silent final e
    w = re.sub(r"([bcdfghjklmnpqrstvwxz])\1", r"\1", w)  # ll -> l
    w = w.replace("ch", "\u0002")
    for a, b in _DIGRAPHS:
        w = w.replace(a, b)
    w = w.replace("\u0002", "ch")
    return w.replace("er", "\u0001")


def approximate(word: str) -> list[tuple[str, ...]]:
    """An English word -> syllables as (initial, final+tone) pairs: ``"tesla"`` -> t ai / s ii / l a."""
    units = _UNIT.findall(_spell_rules(word).replace("\u0001", "er")) if word else []
    out: list[tuple[str, ...]] = []
    k = 0
    first = True
    while k < len(units):
        u = units[k]
        if u[0] in "aeiouy" and not (u == "y" and k + 1 < len(units) and units[k + 1][0] in "aeiou"):
            onset = ""
        else:
            nxt = units[k + 1] if k + 1 < len(units) else ""
            if nxt and nxt[0] in "aeiouy" and u != "ng":
                onset, k = u, k + 1
                u = nxt
            else:
                if u in _SCHWA:
                    out.append(_SCHWA[u])
                elif u == "ng":
                    out.append(("^", "en5"))
                k += 1
                continue
        vowel = u if u in _VOWELS else u[0]
        if units[k : k + 2] == ["e", "r"] or (
            u == "e"
            and k + 1 < len(units)
            and units[k + 1] == "r"
            and (k + 2 == len(units) or units[k + 2][0] not in "aeiouy")
        ):
            vowel, k = "er", k + 1
        coda = units[k + 1] if k + 1 < len(units) else ""
        after = units[k + 2] if k + 2 < len(units) else ""
        final = _VOWELS.get(vowel, "a")
        if coda == "n" and not (after and after[0] in "aeiouy"):
            final, k = _WITH_N.get(vowel[-1], final), k + 1
        elif coda == "ng":
            final, k = _WITH_NG.get(vowel[-1], final), k + 1
        initial = _ONSETS.get(onset, "^")
        if initial == "^" and onset in ("w", "y"):
            final = _GLIDE.get(("^" + onset, final), final)
        if final == "i" and initial in _SIBILANT_I:
            final = _SIBILANT_I[initial]
        if final == "er" and initial != "^":
            out.append((initial, "e1" if first else "e5"))
            out.append(("^", "er5"))
        else:
            out.append((initial, final + ("1" if first else "5" if final in ("e", "er") else "1")))
        first = False
        k += 1
    return out
