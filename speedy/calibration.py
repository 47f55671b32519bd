"""Calibration data and the small numeric helpers that the stages, analyze and prune all use.

Low in the import order (it needs only the artifacts, the errors and, inside `calibration_ids`, the
frontend), so quantize, mixed precision, the parity checks, analyze and prune import it from below
instead of from each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from speedy.artifacts import Component, Manifest
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import InputError
from speedy.progress import report


def calibration_ids(manifest: Manifest, sentences: Sequence[str], limit: int) -> list[np.ndarray]:
    """Phone-id arrays (1, T) int64 from Chinese sentences through the real frontend."""
    from speedy.frontend import text_to_utterances

    if not sentences:
        raise InputError("calibration set is empty")
    han = sum(1 for s in sentences if any("\u4e00" <= ch <= "\u9fff" for ch in s))
    if han < max(1, len(sentences) // 2):
        raise InputError("calibration set is not Chinese text (fewer than half the lines have Han characters)")
    table = {s: i for i, s in enumerate(manifest.frontend.symbols)}
    out: list[np.ndarray] = []
    for text in sentences:
        for utt in text_to_utterances(text):
            out.append(np.asarray([[table[p] for p in utt.phones]], dtype=np.int64))
            if len(out) >= limit:
                return out
    if not out:
        raise InputError("calibration set produced no utterances")
    return out


class CalibrationReader:
    """onnxruntime.quantization.CalibrationDataReader over a list of feed dicts.

    Supports ORT's strided calibration (`set_range`): with a stride of 1 every utterance is collected
    on its own, which the histogram calibrators (entropy, percentile) need because TTS activations
    have a different length per utterance and cannot be stacked into one array.
    """

    def __init__(self, feeds: list[dict[str, np.ndarray]], label: str = "calibrating") -> None:
        self.feeds = feeds
        self.label = label
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)
        self._done = 0

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._it, None)
        report(self.label, self._done, len(self.feeds))  # ORT asks for the next input once the last one ran
        if feed is not None:
            self._done += 1
        return feed

    def rewind(self) -> None:
        self._it = iter(self.feeds)
        self._done = 0


def acoustic_feeds(comp: Component, ids: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Each id sequence at the default controls, as the acoustic graph's feed dict (inputs by name)."""
    ids_name, *control_names = comp.inputs
    return [{ids_name: x, **DEFAULT_CONTROLS.feeds(control_names)} for x in ids]


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """10·log10(Σref² / Σ(ref−test)²) in dB; inf when identical. Shapes must match."""
    noise = float(np.sum((ref.astype(np.float64) - test) ** 2))
    return float("inf") if noise == 0 else 10.0 * float(np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise))
