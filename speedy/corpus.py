"""The Chinese text corpora written for this project (``calibration/`` at the repository root).

``calib``: sentences that feed the frontend and acoustic model to calibrate static INT8 quantization.
``eval``: different sentences for benchmarks and quality checks; evaluation never uses calibration text.

The folder sits next to the ``speedy`` package directory (no copies as package data); set
``SPEEDY_CORPUS_DIR`` to point elsewhere, e.g. for an installed wheel.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from speedy.errors import InputError

_LOGGER = logging.getLogger(__name__)

CorpusName = Literal["calib", "eval"]
CORPUS_FILES: dict[str, str] = {"calib": "calib.txt", "eval": "eval.txt"}
CORPUS_DIR_ENV = "SPEEDY_CORPUS_DIR"


def corpus_dir() -> Path:
    """The folder holding the corpora: ``$SPEEDY_CORPUS_DIR`` or ``calibration/`` beside ``speedy/``."""
    override = os.environ.get(CORPUS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "calibration"


def parse_corpus(text: str) -> list[str]:
    """Lines of ``text`` with surrounding whitespace stripped, blank lines and ``#`` comments dropped."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def load_corpus(name: CorpusName | str) -> list[str]:
    """Read one corpus as a list of sentences, in file order.

    Args:
        name: ``"calib"`` or ``"eval"``.

    Raises:
        InputError: unknown name, or the file is missing or holds no sentence.
    """
    if name not in CORPUS_FILES:
        raise InputError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPUS_FILES)}")
    path = corpus_dir() / CORPUS_FILES[name]
    if not path.is_file():
        raise InputError(f"corpus {name!r} not found at {path}; run from a source checkout or set {CORPUS_DIR_ENV}")
    sentences = parse_corpus(path.read_text(encoding="utf-8"))
    if not sentences:
        raise InputError(f"corpus {name!r} at {path} holds no sentences (only blanks or # comments)")
    _LOGGER.debug("loaded %d sentences from %s", len(sentences), path)
    return sentences


def read_corpus_file(path: str | os.PathLike[str], option: str) -> list[str]:
    """Sentences of a UTF-8 text file given as `option` (InputError naming the option: missing file, bad UTF-8)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{option} {p}: no such file")
    try:
        return parse_corpus(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise InputError(f"{option} {p}: invalid UTF-8 at byte offset {e.start}") from None
