"""The public polyphone corpora in ``data/polyphones`` (CPP dev/test, g2pL train/dev/test) and their splits.

Each example is one sentence with one labelled character. The model and the frontend read Han runs
(the text between punctuation, digits and Latin), so ``han_run`` cuts a sentence to the run that holds
the labelled character, exactly as ``g2p.pinyin`` will see it at run time. No torch here.
"""

from __future__ import annotations

import lzma
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "data" / "polyphones"
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]+")
#: share of CPP dev (by a stable hash of the sentence) that trains; the rest (part B) selects
CPP_DEV_TRAIN_SHARE = 6
MARK = "\u2581"


@dataclass(frozen=True)
class Example:
    """One labelled character: ``text[index]`` reads ``label`` (TONE3, neutral 5, ü as v)."""

    text: str
    index: int
    label: str


def load(name: str, folder: Path = CORPUS) -> list[Example]:
    """Examples of ``folder/<name>.tsv.xz`` (e.g. ``cpp_dev``, ``g2pl_test``), whole sentences."""
    path = folder / f"{name}.tsv.xz"
    out = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            marked, label = line.rstrip("\n").split("\t")
            i = marked.index(MARK)
            text = marked.replace(MARK, "")
            out.append(Example(text, i, label.replace("u:", "v")))
    return out


def is_train_part(text: str) -> bool:
    """Whether a CPP dev sentence is in part A (trains) rather than part B (selects); stable across runs."""
    return zlib.crc32(text.encode("utf-8")) % 10 < CPP_DEV_TRAIN_SHARE


def split(name: str, folder: Path = CORPUS) -> list[Example]:
    """A named split: ``cpp_dev_a``/``cpp_dev_b`` (the two parts of CPP dev) or a file name."""
    if name in ("cpp_dev_a", "cpp_dev_b"):
        want = name == "cpp_dev_a"
        return [e for e in load("cpp_dev", folder) if is_train_part(e.text) == want]
    return load(name, folder)


def han_run(example: Example) -> Example:
    """The example cut to the run of Han characters around its labelled character."""
    for m in _HAN_RUN.finditer(example.text):
        if m.start() <= example.index < m.end():
            return Example(m.group(0), example.index - m.start(), example.label)
    return Example(example.text[example.index], 0, example.label)
