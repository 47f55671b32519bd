"""Quality metrics pinned on constructed signals: zero on identity, known values on known changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter, resample_poly

from speedy import quality
from speedy.errors import InputError
from speedy.quality import QualityReport

SR = 16_000
FORMANTS_HZ = {"a": (800, 1200, 2500), "i": (300, 2300, 3000), "u": (350, 800, 2400)}


def vowel(sr: int, seconds: float, f0: float = 200.0, v: str = "a", vibrato: float = 0.03) -> np.ndarray:
    """A vowel-like waveform: harmonics (1/k) at `f0` with 5 Hz vibrato, three formant resonators, lip
    radiation and breath noise 50 dB down (so the spectrum's range is speech-like); peak 0.5."""
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + vibrato * np.sin(2 * np.pi * 5 * t))) / sr
    top = int(0.45 * sr / (f0 * (1 + vibrato)))
    y = sum(np.sin(k * phase) / k for k in range(1, top + 1))
    for fc in FORMANTS_HZ[v]:
        r = np.exp(-np.pi * 100 / sr)  # 100 Hz bandwidth
        y = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], y)
    y = np.diff(y, prepend=0.0)
    noise = np.random.default_rng(len(t)).standard_normal(len(t))
    y = y + 10 ** (-50 / 20) * np.sqrt(np.mean(y**2)) * noise
    return 0.5 * y / np.max(np.abs(y))


def with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """`x` plus white noise at `snr_db` (dB, against the mean power of `x`)."""
    noise = np.random.default_rng(seed).standard_normal(len(x))
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return np.clip(x + noise, -1.0, 1.0)


def warped(w: np.ndarray, alpha: float) -> np.ndarray:
    """Frequency warping of the all-pass z̃⁻¹ = (z⁻¹ − α)/(1 − αz⁻¹): radians to mel-warped radians."""
    return w + 2 * np.arctan(alpha * np.sin(w) / (1 - alpha * np.cos(w)))


def test_identical_signals_score_zero() -> None:
    """The same waveform as reference and test gives MCD 0 dB, F0 RMSE 0 Hz, V/UV error 0, GPE 0, FPE 0."""
    x = vowel(SR, 0.6)
    assert quality.compare(x, x.copy(), SR) == QualityReport(mcd_db=0.0, f0_rmse_hz=0.0, vuv_error=0.0,
                                                             f0_gpe=0.0, f0_fpe_cents=0.0)


def test_pitch_errors_split_gross_from_fine() -> None:
    """Four frames voiced in both: one an octave off (gross), three off by +100, −100 and 0 cents (fine).
    GPE = 1/4; FPE = RMS(100, −100, 0) = √(20000/3) ≈ 81.65 cents. Unvoiced frames are left out; no frame
    voiced in both gives NaN."""
    ref = np.array([200.0, 200.0, 200.0, 200.0, 0.0, 150.0])
    test = np.array([400.0, 200.0 * 2 ** (1 / 12), 200.0 * 2 ** (-1 / 12), 200.0, 180.0, 0.0])
    gpe, fpe = quality.pitch_errors(ref, test)
    assert gpe == pytest.approx(0.25)
    assert fpe == pytest.approx(np.sqrt(20000 / 3), rel=1e-9)
    assert all(np.isnan(v) for v in quality.pitch_errors(np.zeros(3), np.ones(3)))


def test_pitch_errors_of_a_shifted_voice() -> None:
    """A waveform whose F0 is 3 % higher: almost no gross error (3 % < 20 %; Harvest misses at most an edge
    frame, < 2 %) and FPE near 1200·log2(1.03) ≈ 51 cents, as Harvest measures it (within 10 cents)."""
    ref, test = vowel(SR, 0.6, f0=200.0), vowel(SR, 0.6, f0=206.0)
    report = quality.compare(ref, test, SR)
    assert report.f0_gpe < 0.02
    assert report.f0_fpe_cents == pytest.approx(1200 * np.log2(1.03), abs=10)


@pytest.mark.parametrize("sr", [16_000, 24_000])
def test_known_cepstral_filter_gives_known_mcd(sr: int) -> None:
    """A zero-phase filter with mel-cepstrum Δc gives MCD = 10·√2/ln10·‖Δc‖ at 16 and 24 kHz."""
    _, alpha = quality.mcep_params(sr)
    x = vowel(sr, 0.6)
    delta = {1: 0.3, 2: -0.2, 3: 0.1}  # c1..c3 of log|H|, one-sided SPTK convention
    spectrum = np.fft.rfft(x)
    w = warped(np.linspace(0, np.pi, len(spectrum)), alpha)
    gain = np.exp(sum(c * np.cos(m * w) for m, c in delta.items()))
    y = np.fft.irfft(spectrum * gain, n=len(x))
    expected = 10 * math.sqrt(2) / math.log(10) * math.sqrt(sum(c * c for c in delta.values()))
    assert quality.mel_cepstral_distortion(x, y, sr) == pytest.approx(expected, rel=0.05)


def test_gain_change_costs_no_mcd() -> None:
    """Halving the level changes only c0, which MCD leaves out: MCD stays ~0 dB."""
    x = vowel(SR, 0.6)
    assert quality.mel_cepstral_distortion(x, 0.5 * x, SR) < 0.01


def test_f0_shift_gives_known_rmse() -> None:
    """A harmonic signal at 200 Hz against the same at 220 Hz (×1.1) gives F0 RMSE ≈ 20 Hz, no V/UV error."""
    f0_rmse, vuv = quality.f0_metrics(vowel(SR, 0.6, f0=200, vibrato=0), vowel(SR, 0.6, f0=220, vibrato=0), SR)
    assert f0_rmse == pytest.approx(20.0, abs=1.0)
    assert vuv == 0.0


def test_mcd_grows_with_noise_level() -> None:
    """MCD increases strictly as the SNR of added white noise falls from 40 to 0 dB."""
    x = vowel(SR, 0.6)
    mcds = [quality.mel_cepstral_distortion(x, with_noise(x, snr), SR) for snr in (40, 20, 10, 0)]
    assert all(a < b for a, b in zip(mcds, mcds[1:])), mcds
    assert mcds[0] > 0.5


def test_dtw_aligns_a_delayed_copy() -> None:
    """A copy delayed by 150 ms of extra leading silence: DTW gives ~0 dB (silence pairs skipped), frames do not."""
    speech = np.concatenate([vowel(SR, 0.2, v=v) for v in "aiu"])
    silence = lambda seconds: np.zeros(int(SR * seconds))  # noqa: E731
    ref = np.concatenate([silence(0.1), speech, silence(0.1)])
    test = np.concatenate([silence(0.25), speech, silence(0.1)])
    assert quality.mel_cepstral_distortion(ref, test, SR) < 0.01  # "auto": lengths differ, so DTW
    assert quality.mel_cepstral_distortion(ref, test, SR, align="frames") > 5.0


def test_dtw_aligns_a_time_stretched_copy() -> None:
    """/a i u/ against the same vowels held longer/shorter: DTW's MCD is well under frame pairing's."""
    ref = np.concatenate([vowel(SR, d, v=v) for v, d in zip("aiu", (0.3, 0.3, 0.3))])
    test = np.concatenate([vowel(SR, d, v=v) for v, d in zip("aiu", (0.2, 0.45, 0.3))])
    dtw = quality.mel_cepstral_distortion(ref, test, SR, align="dtw")
    assert dtw < 2.0
    assert 2.5 * dtw < quality.mel_cepstral_distortion(ref, test, SR, align="frames")


def test_auto_alignment_pairs_frames_for_equal_lengths() -> None:
    """With equal lengths "auto" pairs frame i with frame i, exactly as align="frames"."""
    x = vowel(SR, 0.6)
    y = with_noise(x, 20)
    assert quality.mel_cepstral_distortion(x, y, SR) == quality.mel_cepstral_distortion(x, y, SR, align="frames")


@pytest.mark.parametrize("voiced_fraction", [0.5, 0.0])
def test_vuv_error_voiced_against_silence(voiced_fraction: float) -> None:
    """A vowel against a copy silenced after `voiced_fraction` of it: V/UV error ≈ the silenced share."""
    ref = vowel(SR, 0.8, vibrato=0)
    test = ref.copy()
    test[int(voiced_fraction * len(ref)) :] = 0.0
    report = quality.compare(ref, test, SR)
    assert report.vuv_error == pytest.approx(1 - voiced_fraction, abs=0.05)
    assert math.isnan(report.f0_rmse_hz) == (voiced_fraction == 0.0)  # NaN: no frame voiced in both


def test_silence_in_both_is_skipped() -> None:
    """Padding both signals with the same long silence does not dilute the V/UV error."""
    ref = vowel(SR, 0.6, vibrato=0)
    test = ref.copy()
    test[len(ref) // 2 :] = 0.0
    pad = np.zeros(SR)
    padded = quality.compare(np.concatenate([ref, pad]), np.concatenate([test, pad]), SR)
    assert padded.vuv_error == pytest.approx(quality.compare(ref, test, SR).vuv_error, abs=0.02)


def test_summarize_means_and_skips_nan_f0() -> None:
    """summarize averages each metric; an utterance without a common voiced frame is left out of the F0 mean."""
    reports = [QualityReport(2.0, 10.0, 0.1), QualityReport(4.0, math.nan, 0.3), QualityReport(6.0, 20.0, 0.2)]
    mean = quality.summarize(reports)
    assert mean.mcd_db == pytest.approx(4.0)
    assert mean.f0_rmse_hz == pytest.approx(15.0)
    assert mean.vuv_error == pytest.approx(0.2)
    with pytest.raises(InputError):
        quality.summarize([])


def test_dnsmos_scores_clean_above_noisy() -> None:
    """DNSMOS of a vowel is finite in [1, 5] and its overall score beats the same under 0 dB noise."""
    x = vowel(SR, 1.2)  # 1.2 s: speechmos tiles it to 9.6 s, one 9.01 s window (the test stays fast)
    clean, noisy = quality.dnsmos(x, SR), quality.dnsmos(with_noise(x, 0), SR)
    for scores in (clean, noisy):
        assert set(scores) == {"ovrl", "sig", "bak"}
        assert all(1.0 <= s <= 5.0 for s in scores.values()), scores
    assert clean["ovrl"] > noisy["ovrl"] + 0.3
    assert clean["bak"] > noisy["bak"] + 0.3


def test_dnsmos_resamples_to_16k() -> None:
    """A 24 kHz clip scores as its 16 kHz polyphase resampling does (DNSMOS runs at 16 kHz)."""
    x = vowel(24_000, 1.2)
    at_16k = resample_poly(x, 2, 3)
    assert quality.dnsmos(x, 24_000) == pytest.approx(quality.dnsmos(at_16k, SR), abs=0.05)


GOOD = vowel(SR, 0.3)


@pytest.mark.parametrize(
    "ref, test, sr, align, needle",
    [
        (GOOD, np.array([], dtype=np.float64), SR, "auto", "empty"),
        (GOOD, np.where(np.arange(len(GOOD)) == 7, np.nan, GOOD), SR, "auto", "NaN"),
        (GOOD, (GOOD * 32767).astype(np.int16), SR, "auto", "int16"),
        (GOOD, np.stack([GOOD, GOOD], axis=1), SR, "auto", "mono"),
        (GOOD, GOOD, 0, "auto", "sample_rate"),
        (GOOD, GOOD, SR, "nearest", "align"),
        (np.zeros_like(GOOD), GOOD, SR, "auto", "all zeros"),
        (vowel(24_000, 0.3), GOOD, 24_000, "auto", "sample rate"),  # the 16 kHz copy as if 24 kHz
    ],
    ids=["empty", "nan", "int16", "stereo", "rate", "align", "silent-ref", "rate-mismatch"],
)
def test_bad_input_raises_input_error(ref: np.ndarray, test: np.ndarray, sr: int, align: str, needle: str) -> None:
    """Empty, NaN, integer, stereo, zero reference, a bad rate or align, a rate mismatch: InputError naming it."""
    with pytest.raises(InputError, match=needle):
        quality.mel_cepstral_distortion(ref, test, sr, align=align)


def test_dnsmos_rejects_nan() -> None:
    """dnsmos refuses NaN audio with an InputError instead of scoring it."""
    with pytest.raises(InputError, match="NaN"):
        quality.dnsmos(np.full(SR, np.nan), SR)


@pytest.mark.parametrize(("bins", "order", "alpha"), [(513, 34, 0.466), (257, 24, 0.41)])
def test_vectorised_sp2mc_equals_pysptk(bins: int, order: int, alpha: float) -> None:
    """The one-matrix mel-cepstrum equals pysptk's frame-by-frame sp2mc on random positive envelopes."""
    pysptk = quality._import_world()[1]
    power = np.exp(np.random.default_rng(bins).normal(size=(40, bins)))
    want = pysptk.sp2mc(power, order, alpha)
    got = quality.sp2mc(power, order, alpha)
    assert got.shape == want.shape == (40, order + 1)
    assert np.abs(got - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("align", ["auto", "frames", "dtw"])
def test_mcd_against_an_analysed_reference_equals_the_plain_mcd(align: str) -> None:
    """Scoring against `reference_features` gives `mel_cepstral_distortion`'s figure, for equal lengths (noise)
    and for a time-stretched copy ("auto" then takes the DTW path, as the plain call does)."""
    ref = np.concatenate([vowel(SR, d, v=v) for v, d in zip("aiu", (0.3, 0.3, 0.3))])
    feats = quality.reference_features(ref, SR)
    stretched = np.concatenate([vowel(SR, d, v=v) for v, d in zip("aiu", (0.2, 0.45, 0.3))])
    for test in (with_noise(ref, 20), stretched):
        if align == "frames" and test.size != ref.size:
            continue
        want = quality.mel_cepstral_distortion(ref, test, SR, align=align)
        assert quality.mcd_against(feats, test, SR, align=align) == pytest.approx(want, rel=1e-12)
