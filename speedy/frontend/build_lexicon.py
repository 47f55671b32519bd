"""Developer tool: derive ``data/words.txt`` from jieba's dictionary and ``data/phrases.tsv`` from
pypinyin-dict's CC-CEDICT and zdic word lists, then compile them with pypinyin's tables and
``data/overrides.tsv`` into ``data/lexicon.npz`` (lexicon.py), which is all the run time reads.

Run ``python -m speedy.frontend.build_lexicon`` after changing pypinyin or pypinyin-dict;
``python -m speedy.frontend.build_lexicon --compile-only`` after editing ``overrides.tsv`` by hand. It keeps only
words of two to four characters that pypinyin's own phrase table lacks and whose polyphonic characters
the frontend would otherwise read differently, so the shipped table stays small and loads fast.
Both sources are MIT-licensed (pypinyin-dict, by mozillazg; CC-CEDICT data is CC BY-SA 4.0).
"""

from __future__ import annotations

import logging
from pathlib import Path

_LOG = logging.getLogger(__name__)
OUT = Path(__file__).with_name("data") / "phrases.tsv"
WORDS = Path(__file__).with_name("data") / "words.txt"


def build(out: Path = OUT) -> int:
    """Write the table; returns its number of entries."""
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
    from pypinyin_dict.phrase_pinyin_data import cc_cedict, zdic_cibs

    from speedy.frontend.lexicon import tone3
    from speedy.frontend.words import word_readings

    merged: dict[str, list[list[str]]] = dict(zdic_cibs.phrases_dict)
    merged.update(cc_cedict.phrases_dict)  # CC-CEDICT marks neutral tones; prefer it
    rows = []
    for word, marked in merged.items():
        if not 2 <= len(word) <= 4 or word in PHRASES_DICT or len(marked) != len(word):
            continue
        target = [tone3(p[0]) for p in marked]
        if not all(t[-1:].isdigit() for t in target):
            continue
        current, _ = word_readings(word, own=False)
        poly = [i for i, ch in enumerate(word) if ch not in "一不" and "," in PINYIN_DICT.get(ord(ch), "")]
        target = [current[i] if ch in "一不" else t for i, (ch, t) in enumerate(zip(word, target, strict=True))]
        # dictionary tones: a neutral tone on a full syllable (商量 liang5) keeps its citation tone;
        # the neutral tones of speech are sandhi's business (sandhi.py)
        target = [c if t.endswith("5") and t[:-1] == c[:-1] else t for t, c in zip(target, current, strict=True)]
        if any(target[i] != current[i] for i in poly):
            rows.append(f"{word}\t{' '.join(target)}")
    rows.sort()
    out.write_text(
        "# word<TAB>TONE3 readings; derived from pypinyin-dict (MIT) by build_lexicon.py\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    return len(rows)


def build_words(out: Path = WORDS, min_freq: int = 20) -> int:
    """Write the segmentation table ``word<TAB>count``: jieba's (MIT) Han words of up to four characters
    seen at least ``min_freq`` times (all single characters are kept)."""
    import re
    from importlib import resources as res

    text = res.files("jieba").joinpath("dict.txt").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or not re.fullmatch(r"[\u4e00-\u9fff]{1,4}", parts[0]):
            continue
        if len(parts[0]) == 1 or int(parts[1]) >= min_freq:
            rows.append(f"{parts[0]}\t{parts[1]}")
    out.write_text("\n".join(sorted(rows)) + "\n", encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Rebuild the text tables (unless --compile-only) and the compiled lexicon."""
    import argparse

    from speedy.frontend import lexicon

    ap = argparse.ArgumentParser(prog="python -m speedy.frontend.build_lexicon", description=__doc__.splitlines()[0])
    ap.add_argument("--compile-only", action="store_true", help="only recompile data/lexicon.npz from data/*")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if not args.compile_only:
        _LOG.info("wrote %d words to %s", build_words(), WORDS)
        lexicon.build()  # phrases.tsv is chosen against the lexicon without it
        _LOG.info("wrote %d entries to %s", build(), OUT)
    _LOG.info("compiled %s into %s", lexicon.build(), lexicon.LEXICON)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
