"""The calibration and evaluation corpora: sizes, separation, content and length variety."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speedy.corpus import CORPUS_DIR_ENV, load_corpus, parse_corpus
from speedy.errors import InputError

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def calib() -> list[str]:
    return load_corpus("calib")


@pytest.fixture(scope="module")
def evaluation() -> list[str]:
    return load_corpus("eval")


def test_counts(calib: list[str], evaluation: list[str]) -> None:
    """At least 220 calibration and 60 evaluation sentences, none repeated within a file."""
    assert len(calib) >= 220 and len(evaluation) >= 60
    assert len(set(calib)) == len(calib)
    assert len(set(evaluation)) == len(evaluation)


def test_no_overlap(calib: list[str], evaluation: list[str]) -> None:
    """Evaluation never reuses calibration text, not even a shared 12-character run."""
    assert not set(calib) & set(evaluation)
    runs = {s[i : i + 12] for s in calib for i in range(len(s) - 11)}
    shared = [s for s in evaluation if any(s[i : i + 12] in runs for i in range(len(s) - 11))]
    assert not shared


def test_every_line_has_han(calib: list[str], evaluation: list[str]) -> None:
    """Every sentence contains Chinese characters and no comment marker survives."""
    for line in calib + evaluation:
        assert HAN.search(line), line
        assert not line.startswith("#")


def test_length_variety(calib: list[str], evaluation: list[str]) -> None:
    """Both sets span short to long lines; eval has ~10, ~100 and ~500 character items."""
    lengths = [len(s) for s in calib]
    assert sum(3 <= n <= 8 for n in lengths) >= 10
    assert sum(60 <= n <= 120 for n in lengths) >= 10
    ev = [len(s) for s in evaluation]
    assert sum(8 <= n <= 12 for n in ev) >= 3
    assert sum(85 <= n <= 120 for n in ev) >= 3
    assert any(450 <= n <= 600 for n in ev)


def test_content_variety(calib: list[str]) -> None:
    """Calibration covers digits, percentages, acronyms, questions and exclamations."""
    text = "\n".join(calib)
    assert len(re.findall(r"\d", text)) >= 100
    assert "%" in text and "℃" in text
    assert "GPS" in text and "CEO" in text
    assert sum(s.endswith(("？", "?")) for s in calib) >= 10
    assert sum(s.endswith(("！", "!")) for s in calib) >= 10


def test_parse_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Comments and blanks are dropped; unknown, missing or empty corpora raise InputError."""
    assert parse_corpus("# c\n\n  你好  \n#x\n再见\n") == ["你好", "再见"]
    with pytest.raises(InputError, match="unknown corpus"):
        load_corpus("train")
    monkeypatch.setenv(CORPUS_DIR_ENV, str(tmp_path))
    with pytest.raises(InputError, match="not found"):
        load_corpus("calib")
    (tmp_path / "calib.txt").write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no sentences"):
        load_corpus("calib")
