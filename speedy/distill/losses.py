"""Losses for distilling a vocoder from a deterministic teacher (the teacher's waveform is the target).

Shapes: waveforms (B, N) float32 in [-1, 1]; sub-band signals (B, bands, N / bands). All losses are
means over the batch, so their scale does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor
from torch.nn import functional as F

#: (n_fft, hop, window) of the full-band multi-resolution STFT loss at 24 kHz (Parallel WaveGAN's choice).
FULLBAND_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
#: The same for sub-band signals at a quarter of the rate (Multi-band MelGAN's choice for 4 bands).
SUBBAND_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((384, 30, 150), (683, 60, 300), (171, 10, 60))


def stft_magnitude(x: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
    """|STFT| of (B, N) -> (B, n_fft // 2 + 1, frames), floored at 1e-7 so its log is finite."""
    window = torch.hann_window(win, device=x.device)
    spec = torch.stft(x, n_fft, hop, win, window=window, return_complex=True)
    return spec.abs().clamp_min(1e-7)


def spectral_convergence(ref: Tensor, test: Tensor) -> Tensor:
    """‖|R| − |T|‖_F / ‖|R|‖_F per item, averaged over the batch (magnitudes (B, F, T))."""
    num = torch.linalg.vector_norm(ref - test, dim=(1, 2))
    return (num / torch.linalg.vector_norm(ref, dim=(1, 2)).clamp_min(1e-7)).mean()


def multi_resolution_stft(
    ref: Tensor, test: Tensor, resolutions: Sequence[tuple[int, int, int]] = FULLBAND_RESOLUTIONS
) -> Tensor:
    """Mean over resolutions of spectral convergence + L1 of log magnitudes; ref/test (B, N)."""
    total = ref.new_zeros(())
    for n_fft, hop, win in resolutions:
        r, t = stft_magnitude(ref, n_fft, hop, win), stft_magnitude(test, n_fft, hop, win)
        total = total + spectral_convergence(r, t) + F.l1_loss(t.log(), r.log())
    return total / len(resolutions)


def subband_stft(
    ref: Tensor, test: Tensor, resolutions: Sequence[tuple[int, int, int]] = SUBBAND_RESOLUTIONS
) -> Tensor:
    """Multi-resolution STFT loss over every sub-band; ref/test (B, bands, N)."""
    return multi_resolution_stft(ref.flatten(0, 1), test.flatten(0, 1), resolutions)


@lru_cache(maxsize=4)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """Slaney mel filterbank (n_mels, n_fft // 2 + 1) from librosa (float32, CPU)."""
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)).float()


def log_mel_l1(
    ref: Tensor, test: Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80
) -> Tensor:
    """L1 between log10 mel spectrograms of two waveforms (B, N) (HiFi-GAN's mel loss)."""
    basis = mel_basis(sample_rate, n_fft, n_mels).to(ref.device)
    r = torch.matmul(basis, stft_magnitude(ref, n_fft, hop, n_fft)).clamp_min(1e-5).log10()
    t = torch.matmul(basis, stft_magnitude(test, n_fft, hop, n_fft)).clamp_min(1e-5).log10()
    return F.l1_loss(t, r)


def feature_mse(ref: Tensor, test: Tensor) -> Tensor:
    """MSE between hidden activations (B, C, N), relative to the teacher's mean square (scale-free)."""
    return F.mse_loss(test, ref) / ref.pow(2).mean().clamp_min(1e-8)
