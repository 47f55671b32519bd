"""A recording given as input (copy synthesis through a vocoder-only artifact): read, checked, resampled.

Torch-free (the runtime imports it). Every problem with the file is one InputError line (exit 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from speedy.errors import InputError

_LOGGER = logging.getLogger(__name__)

#: Longest recording accepted (seconds): copy synthesis vocodes it in one piece.
MAX_SECONDS = 600.0
#: Shortest recording accepted (seconds): one mel frame needs a few FFT windows of signal.
MIN_SECONDS = 0.1


def read_wav(path: Path, sample_rate: int, say: Callable[[str], None] | None = None) -> np.ndarray:
    """The recording at `path` as mono float32 ``(samples,)`` at `sample_rate`.

    Channels are averaged; another sample rate is resampled with soxr (HQ) and `say` is told so.

    Raises:
        InputError: no such file, a directory, not audio soundfile can read, empty, too short or too long,
            or non-finite samples.
    """
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a WAV file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise InputError(f"{path}: not an audio file soundfile can read ({first})") from None
    if audio.size == 0:
        raise InputError(f"{path}: the recording is empty (0 samples)")
    seconds = audio.shape[0] / rate
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise InputError(f"{path}: {seconds:.3f} s of audio; copy synthesis takes {MIN_SECONDS:g}–{MAX_SECONDS:g} s")
    mono = audio.mean(axis=1)
    if not np.isfinite(mono).all():
        raise InputError(f"{path}: the recording has NaN or infinite samples")
    if rate != sample_rate:
        import soxr

        message = f"{path.name}: {rate} Hz resampled to the vocoder's {sample_rate} Hz"
        (say or _LOGGER.info)(message)
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
