"""Training pairs made by the teacher: text → frontend → FP32 acoustic model → mel → FP32 vocoder.

Text: the g2pL training split in `data/polyphones/g2pl_train.tsv.xz` (34,200 Chinese sentences, Apache-2.0;
see its README), never `calibration/eval.txt` nor the calibration text whose tail `--recipe auto` holds
out. A dev split for the run's own check comes from `g2pl_dev.tsv.xz`. Mels are cut into crops of a fixed
number of frames, and the teacher's float sub-band signals for each crop (what the vocoder computes on that
crop alone, so student and teacher see the same input) are cached beside them on disk, keyed by the
teacher's checksums, the text and the crop length: a second run converts nothing.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.errors import InputError, ModelError

_LOGGER = logging.getLogger(__name__)

#: Bump when what the cache holds changes.
CACHE_VERSION = 1


def corpus_path(split: str) -> Path:
    """data/polyphones/g2pl_<split>.tsv.xz of this checkout."""
    return Path(__file__).resolve().parents[2] / "data" / "polyphones" / f"g2pl_{split}.tsv.xz"


def read_sentences(split: str, count: int, exclude: Sequence[str] = ()) -> list[str]:
    """`count` distinct sentences of a g2pL split in a stable hash order, none of them in `exclude`."""
    path = corpus_path(split)
    try:
        with lzma.open(path, "rt", encoding="utf-8") as fh:
            lines = [line.split("\t", 1)[0].replace("\u2581", "").strip() for line in fh]
    except (OSError, lzma.LZMAError) as exc:
        raise ModelError(f"distill: cannot read the text corpus {path} ({exc})") from exc
    banned = set(exclude)
    unique = sorted({s for s in lines if s and s not in banned}, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    if len(unique) < count:
        raise InputError(f"distill: {path.name} has {len(unique)} usable sentences, fewer than the {count} asked for")
    return unique[:count]


@dataclass(frozen=True)
class Pairs:
    """Cached teacher pairs: mel crops (N, frames, n_mels) and the teacher's sub-bands (N, bands, frames·hop/bands)."""

    mels: np.ndarray
    bands: np.ndarray

    def __len__(self) -> int:
        return int(self.mels.shape[0])


def crops_of(mel: np.ndarray, frames: int) -> list[np.ndarray]:
    """Non-overlapping crops (frames, n_mels) of a mel (L, n_mels); the remainder is dropped."""
    return [mel[i : i + frames] for i in range(0, mel.shape[0] - frames + 1, frames)]


def teacher_pairs(
    acoustic: Any,
    vocoder: Any,
    ids: Sequence[np.ndarray],
    frames: int,
    cache: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> Pairs:
    """Teacher mels of `ids` (1, T) cut into `frames`-frame crops, with the teacher's sub-bands of each crop.

    `cache` (a .npz path) is read when it exists, else written atomically; None: computed, not cached.
    """
    import torch

    if cache is not None and cache.exists():
        try:
            with np.load(cache) as data:
                return Pairs(mels=data["mels"], bands=data["bands"])
        except (OSError, KeyError, ValueError) as exc:
            _LOGGER.warning("distill: %s is unreadable (%s); rebuilding it", cache, exc)
    mels: list[np.ndarray] = []
    bands: list[np.ndarray] = []
    with torch.no_grad():
        for i, x in enumerate(ids):
            mel = acoustic(torch.from_numpy(x), torch.ones(1), torch.zeros(1), torch.ones(1), torch.ones(1))[0]
            for crop in crops_of(mel[0].numpy(), frames):
                mels.append(crop)
                bands.append(vocoder.subbands(torch.from_numpy(crop)[None])[0].numpy())
            if progress is not None:
                progress(i + 1, len(ids))
    if not mels:
        raise InputError(f"distill: the text gave no utterance of {frames} frames or more")
    pairs = Pairs(mels=np.stack(mels).astype(np.float32), bands=np.stack(bands).astype(np.float32))
    if cache is None:
        return pairs
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}.npz")
    np.savez(tmp, mels=pairs.mels, bands=pairs.bands)
    os.replace(tmp, cache)
    return pairs


def cache_key(*parts: object) -> str:
    """A short stable key from the teacher's checksums and the data options."""
    return hashlib.sha256(repr((CACHE_VERSION, *parts)).encode()).hexdigest()[:20]
