"""``speedy train-polyphones`` (`make train-polyphones`): train the polyphone disambiguator and export it to ONNX.

Build-time only (imports torch). Trains a character BiLSTM on g2pL train + CPP dev part A; besides the
characters it reads the dictionary's answer (the lexicon pass's reading of each polyphonic character and
whether it came from a lexicon word, a single-character default or a rule), so it learns when to trust
the dictionary. Keeps the epoch with the best accuracy on the selection splits (CPP dev part B + g2pL
dev; never a test split), writes ``data/polyphone_model.onnx`` (inputs ``chars``, ``prior``, ``status``
int64 ``(1, T)``, output ``logits`` float32 ``(1, T, classes)``) and ``data/polyphone_model.json``
(vocabulary, classes, candidate readings per character, checksum, training history) into the package,
then chooses on the same selection splits which characters the model may override
(``select_overrides``). The features come from the frontend's lexicon tables: retrain after changing them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speedy.errors import InputError, MissingExtraError
from speedy.frontend.polyphone_corpus import CORPUS, Example, han_run, split

_LOG = logging.getLogger(__name__)
OUT = Path(__file__).resolve().parent / "data"
OPSET = 17
TRAIN_SPLITS = ("g2pl_train", "cpp_dev_a")
SELECT_SPLITS = ("cpp_dev_b", "g2pl_dev")
SKIP = set("一不")  # tone sandhi decides these


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (chosen on the selection splits)."""

    embed: int = 64
    hidden: int = 96
    layers: int = 1
    dropout: float = 0.2
    epochs: int = 8
    batch: int = 128
    lr: float = 3e-3
    min_char_count: int = 2
    prior_dropout: float = 0.1
    seed: int = 0
    threads: int = 1


def _pypinyin_readings(ch: str) -> list[str]:
    from pypinyin import Style, pinyin

    out = pinyin(ch, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True)[0]
    return [r.replace("ü", "v") for r in out if r and r[-1].isdigit()]


def build_tables(train: list[Example], min_count: int) -> tuple[str, list[str], dict[str, list[int]]]:
    """(vocabulary chars (id = position + 2; 0 pad, 1 unknown), classes, candidate class ids per char)."""
    counts = Counter(ch for e in train for ch in e.text)
    chars = "".join(sorted(ch for ch, n in counts.items() if n >= min_count))
    labels: dict[str, set[str]] = {}
    for e in train:
        labels.setdefault(e.text[e.index], set()).add(e.label)
    cands = {ch: sorted(seen | set(_pypinyin_readings(ch))) for ch, seen in labels.items() if ch not in SKIP}
    cands = {ch: r for ch, r in cands.items() if len(r) > 1}
    classes = sorted({r for rs in cands.values() for r in rs})
    index = {c: k for k, c in enumerate(classes)}
    return chars, classes, {ch: [index[r] for r in rs] for ch, rs in sorted(cands.items())}


def _encode(
    examples: list[Example], vocab: dict[str, int], classes: dict[str, int], cands: dict[str, list[int]]
) -> list[tuple[list[int], int, int, list[int], list[int], list[int]]]:
    """(chars, position, gold class, candidates, prior, status) per usable example (see polyphone_model.encode)."""
    from speedy.frontend.polyphone_model import encode
    from speedy.frontend.words import lexicon_pass

    out = []
    for e in examples:
        ch = e.text[e.index]
        if ch not in cands or e.label not in classes or classes[e.label] not in cands[ch]:
            continue
        _, _, readings, guesses, ruled = lexicon_pass(e.text)
        f = encode(e.text, readings, guesses, ruled, vocab, classes, cands)
        out.append(
            (
                f["chars"][0].tolist(),
                e.index,
                classes[e.label],
                cands[ch],
                f["prior"][0].tolist(),
                f["status"][0].tolist(),
            )
        )
    return out


def _model(n_vocab: int, n_classes: int, cfg: TrainConfig):  # noqa: ANN202 - torch module
    import torch
    from torch import nn

    class Disambiguator(nn.Module):
        """chars, prior, status (B, T) int64 -> logits (B, T, classes)."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(n_vocab, cfg.embed, padding_idx=0)
            self.prior = nn.Embedding(n_classes + 1, cfg.embed, padding_idx=0)
            self.status = nn.Embedding(4, cfg.embed)
            self.lstm = nn.LSTM(cfg.embed, cfg.hidden, num_layers=cfg.layers, batch_first=True, bidirectional=True)
            self.drop = nn.Dropout(cfg.dropout)
            self.out = nn.Linear(2 * cfg.hidden, n_classes)

        def encode(self, chars: torch.Tensor, prior: torch.Tensor, status: torch.Tensor) -> torch.Tensor:
            """(B, T) x 3 -> (B, T, 2 * hidden)."""
            x = self.embed(chars) + self.prior(prior) + self.status(status)
            return self.drop(self.lstm(self.drop(x))[0])

        def at(self, pos: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
            """Logits (B, classes) at one position per row (training: only the labelled one)."""
            return self.out(self.encode(*inputs)[torch.arange(len(pos)), pos])

        def forward(self, chars: torch.Tensor, prior: torch.Tensor, status: torch.Tensor) -> torch.Tensor:
            return self.out(self.encode(chars, prior, status))

    return Disambiguator()


def _batches(data: list, size: int, rng: random.Random) -> list[list]:
    order = sorted(range(len(data)), key=lambda k: (len(data[k][0]), rng.random()))
    groups = [[data[k] for k in order[i : i + size]] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


def _tensors(batch: list, n_classes: int, prior_dropout: float = 0.0):  # noqa: ANN202
    """(chars, prior, status) (B, T), positions (B,), gold (B,), candidate mask (B, classes)."""
    import torch

    width = max(len(b[0]) for b in batch)
    ids, prior, status = (torch.zeros(len(batch), width, dtype=torch.long) for _ in range(3))
    mask = torch.full((len(batch), n_classes), float("-inf"))
    for r, (seq, _, _, cand, pri, sta) in enumerate(batch):
        ids[r, : len(seq)] = torch.tensor(seq)
        prior[r, : len(seq)] = torch.tensor(pri)
        status[r, : len(seq)] = torch.tensor(sta)
        mask[r, cand] = 0.0
    if prior_dropout:
        prior = prior * (torch.rand(prior.shape) >= prior_dropout)
    pos = torch.tensor([b[1] for b in batch])
    gold = torch.tensor([b[2] for b in batch])
    return (ids, prior, status), pos, gold, mask


def accuracy(model, data: list, n_classes: int) -> float:  # noqa: ANN001
    """Share of ``data`` (encoded examples) whose masked argmax is the label, in percent."""
    import torch

    model.eval()
    good = 0
    with torch.no_grad():
        for batch in _batches(data, 256, random.Random(0)):
            inputs, pos, gold, mask = _tensors(batch, n_classes)
            logits = model.at(pos, *inputs) + mask
            good += int((logits.argmax(-1) == gold).sum())
    return 100.0 * good / max(1, len(data))


def train(cfg: TrainConfig, out_dir: Path = OUT, corpus: Path = CORPUS) -> dict:
    """Train, select the best epoch on the selection splits, export; returns the figures written."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    train_ex = [han_run(e) for name in TRAIN_SPLITS for e in split(name, corpus)]
    chars, classes, cands = build_tables(train_ex, cfg.min_char_count)
    vocab = {c: k + 2 for k, c in enumerate(chars)}
    cls = {c: k for k, c in enumerate(classes)}
    data = _encode(train_ex, vocab, cls, cands)
    select = {name: _encode([han_run(e) for e in split(name, corpus)], vocab, cls, cands) for name in SELECT_SPLITS}
    model = _model(len(chars) + 2, len(classes), cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * len(_batches(data, cfg.batch, rng))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    best, best_state, history = -1.0, None, []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        for batch in _batches(data, cfg.batch, rng):
            inputs, pos, gold, mask = _tensors(batch, len(classes), cfg.prior_dropout)
            logits = model.at(pos, *inputs) + mask
            loss = torch.nn.functional.cross_entropy(logits, gold)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        scores = {name: round(accuracy(model, d, len(classes)), 2) for name, d in select.items()}
        mean = sum(scores.values()) / len(scores)
        history.append({"epoch": epoch + 1, **scores, "seconds": round(time.perf_counter() - t0, 1)})
        _LOG.info("epoch %d %s", epoch + 1, json.dumps(history[-1]))
        if mean > best:
            best, best_state = mean, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    best_epoch = max(history, key=lambda h: sum(h[n] for n in SELECT_SPLITS))
    meta = {
        "chars": chars,
        "classes": classes,
        "candidates": {ch: c for ch, c in cands.items()},
        "config": asdict(cfg),
        "train_splits": list(TRAIN_SPLITS),
        "train_examples": len(data),
        "select_splits": list(SELECT_SPLITS),
        "history": history,
        "selected_epoch": best_epoch,
    }
    _export(model, meta, out_dir)
    return meta


def _export(model, meta: dict, out_dir: Path) -> None:  # noqa: ANN001
    """Write the ONNX graph and its JSON side-car (temp folder, then rename); checks ORT against torch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        onnx_path = Path(tmp) / "polyphone_model.onnx"

        def sample(length: int) -> tuple:
            return (
                torch.randint(0, len(meta["chars"]) + 2, (1, length)),
                torch.randint(0, len(meta["classes"]) + 1, (1, length)),
                torch.randint(0, 4, (1, length)),
            )

        names = ["chars", "prior", "status"]
        torch.onnx.export(
            model,
            sample(23),
            str(onnx_path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={n: {1: "time"} for n in [*names, "logits"]},
            opset_version=OPSET,
            dynamo=False,
        )
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        for length in (1, 7, 64):
            inputs = sample(length)
            with torch.no_grad():
                ref = model(*inputs).numpy()
            got = sess.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})[0]
            if not np.allclose(ref, got, atol=1e-4):
                raise RuntimeError(f"ONNX export differs from torch by {np.abs(ref - got).max():.2e} (T={length})")
        data = onnx_path.read_bytes()
        meta["onnx_sha256"] = hashlib.sha256(data).hexdigest()
        meta["onnx_bytes"] = len(data)
        (Path(tmp) / "polyphone_model.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        for name in ("polyphone_model.onnx", "polyphone_model.json"):
            os.replace(Path(tmp) / name, out_dir / name)


def select_overrides(
    out_dir: Path = OUT, corpus: Path = CORPUS, guess: float = 0.7, phrase: float = 0.9, min_gain: int = 2
) -> dict:
    """Choose, on the selection splits only, the characters whose reading the model may override.

    For each character: at lexicon guesses where the model's probability is at least ``guess`` (inside
    lexicon words: ``phrase``), count sentences it fixes minus sentences it breaks; keep the characters
    that gain at least ``min_gain``. Writes the choice into ``polyphone_model.json`` (``override``).
    """
    from speedy.frontend import polyphone_model
    from speedy.frontend.words import lexicon_pass

    limits = {polyphone_model.GUESS: guess, polyphone_model.PHRASE: phrase}
    gain: dict[int, Counter] = {polyphone_model.GUESS: Counter(), polyphone_model.PHRASE: Counter()}
    session = polyphone_model.load_from(out_dir)
    for name in SELECT_SPLITS:
        for e in (han_run(x) for x in split(name, corpus)):
            _, _, readings, guesses, ruled = lexicon_pass(e.text)
            status = (
                polyphone_model.RULED
                if e.index in ruled
                else (polyphone_model.GUESS if e.index in guesses else polyphone_model.PHRASE)
            )
            got = polyphone_model.predict(e.text, [e.index], readings, guesses, ruled, model=session)
            if status in limits and e.index in got and got[e.index][1] >= limits[status]:
                reading, base = got[e.index][0], readings[e.index]
                if reading != base:
                    gain[status][e.text[e.index]] += (reading == e.label) - (base == e.label)
    override = {
        "guess": guess,
        "phrase": phrase,
        "min_gain": min_gain,
        "guess_chars": "".join(sorted(c for c, g in gain[polyphone_model.GUESS].items() if g >= min_gain)),
        "phrase_chars": "".join(sorted(c for c, g in gain[polyphone_model.PHRASE].items() if g >= min_gain)),
    }
    path = out_dir / "polyphone_model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["override"] = override
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return override


def train_and_select(config: TrainConfig, out: Path = OUT, overrides_only: bool = False) -> dict[str, Any]:
    """Train and export (unless `overrides_only`: keep the model, re-choose its override characters); returns
    the per-epoch selection accuracies, the chosen epoch, the ONNX size and the override. InputError outside
    a source checkout, MissingExtraError without torch."""
    if not CORPUS.is_dir():
        raise InputError(f"train-polyphones: the corpora are not here ({CORPUS}); run it from a source checkout")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtraError("torch", "export", "train-polyphones") from None
    if overrides_only:
        return {"override": select_overrides(out)}
    meta = train(config, out)
    return {
        "history": meta["history"],
        "selected": meta["selected_epoch"],
        "bytes": meta["onnx_bytes"],
        "override": select_overrides(out),
    }
