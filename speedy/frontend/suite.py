"""Loading and scoring the frontend's own test tables (tests/frontend/data/*.tsv)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "tests" / "frontend" / "data"


@dataclass(frozen=True)
class Score:
    """Correct / total on one table, and the failing rows."""

    correct: int
    total: int
    failures: tuple[str, ...]

    @property
    def percent(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0


def rows(name: str, folder: Path = DATA) -> list[list[str]]:
    """Tab-separated rows of ``folder/name``, comments and blank lines skipped."""
    out = []
    for line in (folder / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split("\t"))
    return out


def polyphone_case(marked: str) -> tuple[str, int]:
    """``"他在银[行]工作"`` -> (``"他在银行工作"``, 3)."""
    i = marked.index("[")
    return marked.replace("[", "", 1).replace("]", "", 1), i


def score_polyphones(folder: Path = DATA, name: str = "polyphones.tsv") -> Score:
    """Share of target characters read as labelled (dictionary tones: ``sandhi=False``)."""
    from speedy.frontend import pinyin

    good, fails = 0, []
    table = rows(name, folder)
    for marked, expected in table:
        text, i = polyphone_case(marked)
        got = pinyin(text, sandhi=False)[i]
        if got == expected:
            good += 1
        else:
            fails.append(f"{marked}\t{expected}\tgot {got}")
    return Score(good, len(table), tuple(fails))


def score_tn(folder: Path = DATA) -> Score:
    """Exact-match share of ``normalize`` on tn.tsv."""
    from speedy.frontend import normalize

    good, fails = 0, []
    table = rows("tn.tsv", folder)
    for row in table:
        src, expected = row[0], row[1]
        got = normalize(src)
        if got == expected:
            good += 1
        else:
            fails.append(f"{src}\t{expected}\tgot {got}")
    return Score(good, len(table), tuple(fails))


def score_examples(examples: list, pinyin_fn=None) -> Score:  # noqa: ANN001 - polyphone_corpus.Example list
    """Share of corpus examples (``text``, ``index``, ``label``) read as labelled, ``sandhi=False``."""
    if pinyin_fn is None:
        from speedy.frontend import pinyin as pinyin_fn
    good, fails = 0, []
    for e in examples:
        got = pinyin_fn(e.text, sandhi=False)[e.index]
        if got == e.label:
            good += 1
        else:
            fails.append(f"{e.text[:e.index]}[{e.text[e.index]}]{e.text[e.index + 1:]}\t{e.label}\tgot {got}")
    return Score(good, len(examples), tuple(fails))
