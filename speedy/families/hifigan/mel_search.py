"""Find the wheel's mel setting by measurement: resynthesise real speech with each candidate and score it.

The wheel ships no mel settings. Each candidate :class:`MelSettings` turns the input speech (16 kHz) into a
log-mel, the vocoder turns it back into a waveform, and the result is scored against the input: MCD
(:func:`speedy.quality.mel_cepstral_distortion`, frame-aligned) and DNSMOS OVRL of input and output.

Search: a coordinate sweep from the reference HiFi-GAN recipe (one field varied at a time, MCD on the
first ``screen`` clips), then the best few on every clip with DNSMOS. Run as
``python examples/hifigan_mel_search.py ARTIFACT WAV...`` (JSON rows on stdout).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from speedy.families.hifigan.mel import DEFAULT, MelSettings, log_mel

#: One field varied at a time from DEFAULT: FFT/window sizes, band edges, log base and floor, power.
AXES: dict[str, list[dict[str, Any]]] = {
    "window": [
        {"n_fft": 1024, "win_length": 1024},
        {"n_fft": 1024, "win_length": 640},
        {"n_fft": 1024, "win_length": 400},
        {"n_fft": 512, "win_length": 512},
        {"n_fft": 512, "win_length": 400},
        {"n_fft": 2048, "win_length": 1024},
    ],
    "fmin": [{"fmin": 0.0}, {"fmin": 55.0}, {"fmin": 80.0}],
    "fmax": [{"fmax": 8000.0}, {"fmax": 7600.0}],
    "log": [{"log": "ln", "floor": 1e-5}, {"log": "ln", "floor": 1e-10}, {"log": "log10", "floor": 1e-5}],
    "power": [{"power": 1}, {"power": 2}],
}


def load_speech(paths: Sequence[Path], sample_rate: int = 16000) -> list[np.ndarray]:
    """Mono float32 waveforms at ``sample_rate`` (soxr HQ resampling), in [-1, 1]."""
    import soundfile as sf
    import soxr

    out = []
    for p in paths:
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        out.append(x if sr == sample_rate else soxr.resample(x, sr, sample_rate, quality="HQ").astype(np.float32))
    return out


def resynthesise(vocoder: Callable[[np.ndarray], np.ndarray], clip: np.ndarray, settings: MelSettings) -> np.ndarray:
    """``clip`` → log-mel → vocoder → waveform ``(frames * hop,)`` float32."""
    return vocoder(log_mel(clip, settings)[None])[0]


def score(
    clips: Sequence[np.ndarray], outs: Sequence[np.ndarray], sample_rate: int, with_dnsmos: bool
) -> dict[str, float]:
    """Mean MCD (dB, frame-aligned) of each output against its input, and mean DNSMOS OVRL when asked."""
    from speedy.quality import dnsmos, dnsmos_segments, mel_cepstral_distortion

    row: dict[str, float] = {
        "mcd_db": float(np.mean([mel_cepstral_distortion(c[: o.size], o, sample_rate) for c, o in zip(clips, outs)]))
    }
    if with_dnsmos:

        def ovrl(x: np.ndarray) -> float:
            return float(np.mean([dnsmos(s, sample_rate)["ovrl"] for s in dnsmos_segments(x, sample_rate)]))

        row["dnsmos_out"] = float(np.mean([ovrl(o) for o in outs]))
    return row


def search(
    vocoder: Callable[[np.ndarray], np.ndarray],
    clips: Sequence[np.ndarray],
    *,
    screen: int = 2,
    keep: int = 5,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows {"settings", "mcd_db", "dnsmos_out", "dnsmos_in"} for the best ``keep`` settings on every clip,
    best MCD first (plus the input's DNSMOS on the same clips)."""
    from speedy.quality import dnsmos, dnsmos_segments

    say = progress or (lambda m: None)
    seen: dict[MelSettings, float] = {}
    best = DEFAULT
    for axis, values in AXES.items():
        for change in values:
            cand = replace(best, **change)
            if cand not in seen:
                outs = [resynthesise(vocoder, c, cand) for c in clips[:screen]]
                seen[cand] = score(clips[:screen], outs, cand.sample_rate, False)["mcd_db"]
                say(f"{axis} {change}: MCD {seen[cand]:.2f} dB on {screen} clips")
        best = min((replace(best, **c) for c in values), key=lambda s: seen[s])
    ranked = sorted(seen, key=lambda s: seen[s])[:keep]
    sr = DEFAULT.sample_rate
    dn_in = float(np.mean([np.mean([dnsmos(s, sr)["ovrl"] for s in dnsmos_segments(c, sr)]) for c in clips]))
    rows = []
    for cand in ranked:
        outs = [resynthesise(vocoder, c, cand) for c in clips]
        rows.append({"settings": cand.to_dict(), **score(clips, outs, sr, True), "dnsmos_in": dn_in})
        say(f"{cand.describe()}: {rows[-1]}")
    screened = [{"settings": s.to_dict(), "screen_mcd_db": v} for s, v in sorted(seen.items(), key=lambda kv: kv[1])]
    return rows + screened
