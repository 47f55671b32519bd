"""Trained polyphone disambiguator on ONNX Runtime (no torch): a character BiLSTM over a Han run.

``data/polyphone_model.onnx`` maps ``chars``, ``prior`` and ``status`` ids ``(1, T)`` (see ``encode``) to
logits ``(1, T, classes)``; the JSON side-car holds the vocabulary, the classes (TONE3 readings) and each character's candidate readings.
Only characters with candidates are predicted, only among their candidates. The session is created on
first use (one thread), so importing the frontend stays cheap. Runs longer than ``WINDOW`` characters
are read in overlapping windows; characters outside the vocabulary are read as "unknown" context.

The model reads the characters and the dictionary's answer (``prior``: the lexicon pass's reading of
each polyphonic character; ``status``: inside a lexicon word, single-character guess, or rule).
How its prediction is combined with the dictionary and the rules (``refine``; chosen on CPP dev part B
and g2pL dev by ``train_polyphones.select_overrides``, checked on this project's own tables):

- monophonic characters, 一 and 不, characters the model has no candidates for, and readings a context
  rule chose: dictionary and rules;
- a character the lexicon left open (single-character default): the model's reading when its
  probability is at least ``Combination.guess`` and the character is one where overriding gained on
  the dev splits (``guess_chars``);
- a character inside a lexicon word (phrase-table hit): likewise with ``Combination.phrase`` and
  ``phrase_chars`` (the phrase table is usually right, so few characters qualify).
- runs with no such position are not run through the model at all.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable
    from pathlib import Path

    import numpy as np
    import onnxruntime as ort

_LOG = logging.getLogger(__name__)
WINDOW = 64
_STEP = 48
ENV_OFF = "SPEEDY_POLYPHONE_MODEL"  # "0" turns the model off (dictionary and rules only)


@dataclass(frozen=True)
class Combination:
    """When the model overrides the dictionary: probability thresholds (above 1.0 = never) and the
    characters it may override at lexicon guesses and inside lexicon words (chosen on the dev splits)."""

    guess: float = 0.7
    phrase: float = 0.9
    rule: float = 1.01
    guess_chars: frozenset[str] = frozenset()
    phrase_chars: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Model:
    session: ort.InferenceSession
    inputs: tuple[str, ...]
    vocab: dict[str, int]
    classes: tuple[str, ...]
    class_index: dict[str, int]
    candidates: dict[str, np.ndarray]
    combo: Combination


#: status ids of the ``status`` input: no candidates, inside a lexicon word, single-character guess, rule
NONE, PHRASE, GUESS, RULED = 0, 1, 2, 3


def encode(
    text: str,
    readings: list[str],
    guesses: set[int],
    ruled: set[int],
    vocab: dict[str, int],
    class_index: dict[str, int],
    candidates: dict,
) -> dict[str, np.ndarray]:
    """Model inputs for one Han run, each ``(1, T)`` int64: ``chars`` (0 pad, 1 unknown), ``prior`` (the
    lexicon's reading as class id + 1, 0 where none) and ``status`` (NONE/PHRASE/GUESS/RULED)."""
    import numpy as np

    chars = [vocab.get(c, 1) for c in text]
    prior = [0] * len(text)
    status = [NONE] * len(text)
    for i, ch in enumerate(text):
        if ch in candidates:
            prior[i] = class_index.get(readings[i], -1) + 1
            status[i] = RULED if i in ruled else GUESS if i in guesses else PHRASE
    return {
        name: np.asarray([v], dtype=np.int64) for name, v in (("chars", chars), ("prior", prior), ("status", status))
    }


def load_from(folder: Path | Traversable) -> _Model:
    """The ONNX session (one thread) and tables from ``folder`` (a Path or a resources Traversable)."""
    import numpy as np
    import onnxruntime as ort

    meta = json.loads(folder.joinpath("polyphone_model.json").read_text(encoding="utf-8"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False  # like the runtime's sessions: no per-request buffers kept
    opts.enable_mem_pattern = False
    session = ort.InferenceSession(
        folder.joinpath("polyphone_model.onnx").read_bytes(), opts, providers=["CPUExecutionProvider"]
    )
    vocab = {c: k + 2 for k, c in enumerate(meta["chars"])}
    cands = {ch: np.asarray(ids, dtype=np.int64) for ch, ids in meta["candidates"].items()}
    inputs = tuple(i.name for i in session.get_inputs())
    o = meta.get("override", {})
    combo = Combination(
        guess=o.get("guess", 1.01),
        phrase=o.get("phrase", 1.01),
        guess_chars=frozenset(o.get("guess_chars", "")),
        phrase_chars=frozenset(o.get("phrase_chars", "")),
    )
    return _Model(
        session, inputs, vocab, tuple(meta["classes"]), {c: k for k, c in enumerate(meta["classes"])}, cands, combo
    )


@lru_cache(maxsize=1)
def _load() -> _Model | None:
    """The packaged model, or None (logged once) when its files are missing or unreadable."""
    try:
        return load_from(resources.files(__package__).joinpath("data"))
    except Exception as exc:  # noqa: BLE001 - any failure means: dictionary only
        _LOG.warning("polyphone model unavailable (%s); using the dictionary and rules only", exc)
        return None


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


def predict(
    text: str,
    positions: list[int],
    readings: list[str] | None = None,
    guesses: set[int] | None = None,
    ruled: set[int] | None = None,
    model: _Model | None = None,
) -> dict[int, tuple[str, float]]:
    """``{i: (reading, probability)}`` for the positions of ``text`` (a Han run) the model can read.

    ``readings``/``guesses``/``ruled``: the lexicon pass of ``text`` (computed here when not given).
    Positions whose character has no candidates are left out; so is everything when the model is off.
    ``model``: another loaded model (``load_from``) instead of the packaged one.
    """
    if model is None:
        model = _load() if enabled() else None
    if model is None:
        return {}
    wanted = [i for i in positions if 0 <= i < len(text) and text[i] in model.candidates]
    if not wanted:
        return {}
    import numpy as np

    if readings is None:
        from speedy.frontend.words import lexicon_pass

        _, _, readings, guesses, ruled = lexicon_pass(text)
    feats = encode(text, readings, guesses or set(), ruled or set(), model.vocab, model.class_index, model.candidates)
    windows = _windows(len(text))
    cache: dict[tuple[int, int], np.ndarray] = {}
    result: dict[int, tuple[str, float]] = {}
    for i in wanted:
        a, b = min(windows, key=lambda w: abs((w[0] + w[1]) / 2 - i))  # where i is most central
        if (a, b) not in cache:
            cache[(a, b)] = model.session.run(None, {n: feats[n][:, a:b] for n in model.inputs})[0][0]
        cand = model.candidates[text[i]]
        logits = cache[(a, b)][i - a, cand]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = int(p.argmax())
        result[i] = (model.classes[int(cand[k])], float(p[k]))
    return result


def refine(
    text: str, readings: list[str], guesses: set[int], ruled: set[int], combo: Combination | None = None
) -> None:
    """Replace ``readings[i]`` in place where the model may and is confident enough (module docstring).

    Args:
        text: one Han run, one reading per character.
        readings: TONE3 readings from the lexicon and the rules.
        guesses: indices the lexicon left open (single-character defaults).
        ruled: indices among them where a context rule chose the reading.
        combo: thresholds and characters; default: the ones shipped with the model.
    """
    model = _load() if enabled() else None
    if model is None:
        return
    combo = combo or model.combo
    positions = []
    for i, ch in enumerate(text):
        if i in ruled:
            ok = combo.rule <= 1.0
        elif i in guesses:
            ok = ch in combo.guess_chars
        else:
            ok = ch in combo.phrase_chars
        if ok and ch in model.candidates:
            positions.append(i)
    if not positions:
        return  # nothing the model may change: no inference
    for i, (reading, p) in predict(text, positions, readings, guesses, ruled).items():
        limit = combo.rule if i in ruled else combo.guess if i in guesses else combo.phrase
        if p >= limit and readings[i]:
            readings[i] = reading
