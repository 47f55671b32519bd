"""Polyphone disambiguation: context rules first, then g2pM's BiLSTM classifier.

g2pM (Kakao Brain, Apache-2.0, PyPI ``g2pM``) ships a 1-layer BiLSTM (64-d embeddings, 2x32 hidden)
trained on the CPP polyphone corpus inside its 2 MB wheel. Its pickled weights are read here and run
with a leaner numpy forward pass (input projections precomputed per character, float32, only over the
clause that holds the polyphone) so that it fits the frontend's time budget; its predictions are
restricted to the character's own readings.
"""

from __future__ import annotations

import logging
import pickle
from functools import lru_cache
from importlib import util as importlib_util
from pathlib import Path

import numpy as np

from speedy.frontend.rules import rule_reading

_LOG = logging.getLogger(__name__)
_BOS, _EOS, _UNK = "시", "끝", "<UNK>"
_WINDOW = 24  # characters of context on each side


class _BiLstm:
    """g2pM's classifier with the input projection folded into a per-character table."""

    def __init__(self, folder: Path) -> None:
        def load(name: str):  # noqa: ANN202 - pickled dicts from the g2pM wheel
            with open(folder / name, "rb") as fh:
                return pickle.load(fh)

        self.cedict: dict[str, list[str]] = load("digest_cedict.pkl")
        self.char2idx: dict[str, int] = load("char2idx.pkl")
        idx2class = {i: c for c, i in load("class2idx.pkl").items()}
        self.classes = [idx2class[i] for i in range(len(idx2class))]
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        s = {k: np.asarray(v, dtype=np.float32) for k, v in load("np_ckpt.pkl").items()}
        emb = s["embedding.weight"]
        self.fw_in = emb @ s["lstm.weight_ih_l0"].T + s["lstm.bias_ih_l0"] + s["lstm.bias_hh_l0"]
        self.bw_in = (emb @ s["lstm.weight_ih_l0_reverse"].T + s["lstm.bias_ih_l0_reverse"]
                      + s["lstm.bias_hh_l0_reverse"])
        self.fw_hh = s["lstm.weight_hh_l0"].T.copy()
        self.bw_hh = s["lstm.weight_hh_l0_reverse"].T.copy()
        self.w0, self.b0 = s["logit_layer.0.weight"].T.copy(), s["logit_layer.0.bias"]
        self.w1, self.b1 = s["logit_layer.2.weight"], s["logit_layer.2.bias"]
        self.hidden = self.fw_hh.shape[0]

    def _run(self, table: np.ndarray, w_hh: np.ndarray, ids: list[int]) -> np.ndarray:
        n = self.hidden
        h = np.zeros(n, dtype=np.float32)
        c = np.zeros(n, dtype=np.float32)
        out = np.empty((len(ids), n), dtype=np.float32)
        x_all = table[ids]
        for t in range(len(ids)):
            z = x_all[t] + h @ w_hh
            ifo = 1.0 / (1.0 + np.exp(-z))
            g = np.tanh(z[2 * n:3 * n])
            c = ifo[n:2 * n] * c + ifo[:n] * g
            h = ifo[3 * n:] * np.tanh(c)
            out[t] = h
        return out

    def predict(self, text: str, targets: list[int], candidates: list[list[str]]) -> list[str | None]:
        """Best reading (TONE3, neutral 5) for each target index of ``text``, among its candidates."""
        unk = self.char2idx[_UNK]
        lo = max(0, min(targets) - _WINDOW)
        hi = min(len(text), max(targets) + _WINDOW + 1)
        ids = [self.char2idx[_BOS]] + [self.char2idx.get(ch, unk) for ch in text[lo:hi]] + [self.char2idx[_EOS]]
        fw = self._run(self.fw_in, self.fw_hh, ids)
        bw = self._run(self.bw_in, self.bw_hh, ids[::-1])[::-1]
        rows = [t - lo + 1 for t in targets]
        hidden = np.concatenate([fw[rows], bw[rows]], axis=1)
        logits = np.maximum(hidden @ self.w0 + self.b0, 0.0) @ self.w1.T + self.b1
        out: list[str | None] = []
        for row, cands in zip(logits, candidates):
            idx = [self.class_index[c] for c in cands if c in self.class_index]
            out.append(self.classes[max(idx, key=lambda i: row[i])] if idx else None)
        return out


@lru_cache(maxsize=1)
def _model() -> _BiLstm | None:
    spec = importlib_util.find_spec("g2pM")
    if spec is None or not spec.submodule_search_locations:
        _LOG.warning("g2pM is not installed: polyphones fall back to pypinyin's defaults")
        return None
    return _BiLstm(Path(list(spec.submodule_search_locations)[0]))


def _norm(reading: str) -> str:
    """g2pM writes ü as u: and neutral tone as 5."""
    return reading.replace("u:", "v")


def is_polyphone(char: str) -> bool:
    """Whether the classifier knows several readings for ``char``."""
    model = _model()
    return model is not None and len(model.cedict.get(char, ())) > 1


def resolve(text: str, readings: list[str], ambiguous: list[int], words: list[tuple[int, int]]) -> None:
    """Replace ``readings[i]`` for each ambiguous index ``i`` of ``text`` in place.

    Args:
        text: the Han text of one clause, one reading per character.
        readings: TONE3 readings from the lexicon (pypinyin defaults for single characters).
        ambiguous: indices whose reading came from a single-character default.
        words: (start, end) spans of the segmentation, for the context rules.
    """
    model = _model()
    pending: list[int] = []
    cands: list[list[str]] = []
    word_of = {}
    for start, end in words:
        for i in range(start, end):
            word_of[i] = (start, end)
    for i in ambiguous:
        ruled = rule_reading(text, i, word_of.get(i, (i, i + 1)))
        if ruled:
            readings[i] = ruled
        elif model is not None and len(model.cedict.get(text[i], ())) > 1:
            pending.append(i)
            cands.append([_norm(r) for r in model.cedict[text[i]]])
    if pending and model is not None:
        # the model was trained on the classes' own spelling (u: for ü)
        raw = [[c.replace("v", "u:") for c in cs] for cs in cands]
        for i, best in zip(pending, model.predict(text, pending, raw)):
            if best:
                readings[i] = _norm(best)
