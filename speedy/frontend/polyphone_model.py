"""Trained polyphone disambiguator on ONNX Runtime (no torch): a character BiLSTM over a Han run.

``data/polyphone_model.onnx`` maps character ids ``(1, T)`` to logits ``(1, T, classes)``; the JSON
side-car holds the vocabulary, the classes (TONE3 readings) and each character's candidate readings.
Only characters with candidates are predicted, only among their candidates. The session is created on
first use (one thread), so importing the frontend stays cheap. Runs longer than ``WINDOW`` characters
are read in overlapping windows; characters outside the vocabulary are read as "unknown" context.

How the prediction is combined with the dictionary and the rules (``refine``; thresholds chosen on
CPP dev part B, g2pL dev and this project's own tables, see data/README.md):

- monophonic characters, 一 and 不, and characters the model has no candidates for: dictionary;
- a character the lexicon left open (single-character default, or a context rule fired): the model's
  reading when its probability is at least ``Combination.guess``;
- a character inside a lexicon word (phrase-table hit): the model's reading only when its probability
  is at least ``Combination.phrase`` (the phrase table is usually right).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

_LOG = logging.getLogger(__name__)
WINDOW = 64
_STEP = 48
ENV_OFF = "SPEEDY_POLYPHONE_MODEL"  # "0" turns the model off (dictionary and rules only)


@dataclass(frozen=True)
class Combination:
    """Probability thresholds at which the model overrides the dictionary (above 1.0 = never)."""

    guess: float = 0.5
    phrase: float = 1.01
    rule: float = 1.01


DEFAULT = Combination()


@dataclass(frozen=True)
class _Model:
    session: object
    vocab: dict[str, int]
    classes: tuple[str, ...]
    candidates: dict[str, np.ndarray]


@lru_cache(maxsize=1)
def _load() -> _Model | None:
    """The ONNX session and tables, or None (logged once) when the files are missing or unreadable."""
    try:
        import onnxruntime as ort

        base = resources.files(__package__).joinpath("data")
        meta = json.loads(base.joinpath("polyphone_model.json").read_text(encoding="utf-8"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(base.joinpath("polyphone_model.onnx").read_bytes(), opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure means: dictionary only
        _LOG.warning("polyphone model unavailable (%s); using the dictionary and rules only", exc)
        return None
    vocab = {c: k + 2 for k, c in enumerate(meta["chars"])}
    cands = {ch: np.asarray(ids, dtype=np.int64) for ch, ids in meta["candidates"].items()}
    return _Model(session, vocab, tuple(meta["classes"]), cands)


def enabled() -> bool:
    """Whether the model is used (files present and not turned off by SPEEDY_POLYPHONE_MODEL=0)."""
    return os.environ.get(ENV_OFF, "1") != "0" and _load() is not None


def has_candidates(ch: str) -> bool:
    """Whether the model predicts ``ch`` (cheap once loaded; False when the model is off)."""
    model = _load() if enabled() else None
    return model is not None and ch in model.candidates


def _windows(length: int) -> list[tuple[int, int]]:
    if length <= WINDOW:
        return [(0, length)]
    starts = list(range(0, length - WINDOW, _STEP)) + [length - WINDOW]
    return [(s, s + WINDOW) for s in starts]


def predict(text: str, positions: list[int]) -> dict[int, tuple[str, float]]:
    """``{i: (reading, probability)}`` for the positions of ``text`` (a Han run) the model can read.

    Positions whose character has no candidates are left out; so is everything when the model is off.
    """
    model = _load() if enabled() else None
    if model is None:
        return {}
    wanted = [i for i in positions if 0 <= i < len(text) and text[i] in model.candidates]
    if not wanted:
        return {}
    ids = np.asarray([[model.vocab.get(c, 1) for c in text]], dtype=np.int64)
    windows = _windows(len(text))
    cache: dict[tuple[int, int], np.ndarray] = {}
    result: dict[int, tuple[str, float]] = {}
    for i in wanted:
        a, b = min(windows, key=lambda w: abs((w[0] + w[1]) / 2 - i))  # where i is most central
        if (a, b) not in cache:
            cache[(a, b)] = model.session.run(None, {"chars": ids[:, a:b]})[0][0]
        cand = model.candidates[text[i]]
        logits = cache[(a, b)][i - a, cand]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = int(p.argmax())
        result[i] = (model.classes[int(cand[k])], float(p[k]))
    return result


def refine(text: str, readings: list[str], guesses: set[int], ruled: set[int],
           combo: Combination = DEFAULT) -> None:
    """Replace ``readings[i]`` in place where the model is confident enough (see the module docstring).

    Args:
        text: one Han run, one reading per character.
        readings: TONE3 readings from the lexicon and the rules.
        guesses: indices the lexicon left open (single-character defaults).
        ruled: indices among them where a context rule chose the reading.
        combo: the thresholds.
    """
    if not enabled():
        return
    positions = [i for i, ch in enumerate(text) if ch in _load().candidates]  # type: ignore[union-attr]
    for i, (reading, p) in predict(text, positions).items():
        if i in ruled:
            limit = combo.rule
        elif i in guesses:
            limit = combo.guess
        else:
            limit = combo.phrase
        if p >= limit and readings[i]:
            readings[i] = reading
