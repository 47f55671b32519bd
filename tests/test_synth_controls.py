"""Controls and emotions measured on real audio from the default voice (pyworld pitch tracker)."""

from __future__ import annotations

import numpy as np
import pytest

from speedy.controls import GraphControls, SynthesisOptions

pytestmark = pytest.mark.integration
TEXT = "今天天气很好，我们一起去公园散步吧。"


def median_f0(audio: np.ndarray, sr: int) -> float:
    """Median F0 (Hz) over voiced frames, pyworld DIO + StoneMask."""
    import pyworld

    x = audio.astype(np.float64)
    f0, t = pyworld.dio(x, sr, f0_floor=60.0, f0_ceil=800.0)
    f0 = pyworld.stonemask(x, f0, t, sr)
    return float(np.median(f0[f0 > 0]))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def neutral(synthesizer):  # -> np.ndarray
    return synthesizer.synthesize(TEXT).audio


def test_speed_halves_duration(synthesizer, neutral: np.ndarray) -> None:
    """speed 2.0 ≈ half the duration, 0.5 ≈ double (pauses included)."""
    fast = synthesizer.synthesize(TEXT, SynthesisOptions(speed=2.0)).audio
    slow = synthesizer.synthesize(TEXT, SynthesisOptions(speed=0.5)).audio
    assert 0.45 < len(fast) / len(neutral) < 0.62
    assert 1.7 < len(slow) / len(neutral) < 2.2


@pytest.mark.parametrize("semitones, lo, hi", [(12, 1.8, 2.2), (-12, 0.43, 0.57), (2, 1.06, 1.19), (-2, 0.84, 0.94)])
def test_pitch_semitones(synthesizer, neutral: np.ndarray, semitones: float, lo: float, hi: float) -> None:
    """±12 semitones ≈ ×2 / ×0.5 median F0; ±2 ≈ ×1.12 / ×0.89; duration is kept."""
    sr = synthesizer.sample_rate
    shifted = synthesizer.synthesize(TEXT, SynthesisOptions(pitch=semitones)).audio
    ratio = median_f0(shifted, sr) / median_f0(neutral, sr)
    assert lo < ratio < hi, ratio
    assert 0.9 < len(shifted) / len(neutral) < 1.1


def token_f0_spread(synthesizer, text: str, pitch_range: float) -> float:
    """Std over tokens of each token's median log2 F0 (octaves): robust to frame-level octave errors."""
    import pyworld

    sr, hop = synthesizer.sample_rate, synthesizer.manifest.audio.hop_size
    medians = []
    for utt in synthesizer._frontend.text_to_utterances(text):
        mel, dur = synthesizer.acoustic(synthesizer.ids_for(utt.phones), GraphControls(pitch_range=pitch_range))
        x = synthesizer.vocode(mel).astype(np.float64)
        f0, t = pyworld.dio(x, sr, f0_floor=60.0, f0_ceil=800.0, frame_period=5.0)
        f0 = pyworld.stonemask(x, f0, t, sr)
        edges = np.concatenate([[0], np.cumsum(dur[0])]) * hop / sr  # token boundaries in seconds
        for a, b in zip(edges[:-1], edges[1:]):
            seg = f0[(t >= a) & (t < b)]
            if (seg > 0).sum() >= 3:
                medians.append(np.median(np.log2(seg[seg > 0])))
    return float(np.std(medians))


def test_pitch_range_flattens(synthesizer) -> None:
    """pitch_range 0 narrows the token-to-token F0 movement.

    The effect is weak on this voice (measured: 0 → about −10 %, 2 → no reliable widening): its
    lexical tones come from the tone-marked phone symbols, and the z-scored F0 input that the range
    control scales only modulates them. README states this.
    """
    texts = "今天天气很好，我们一起去公园散步吧。请在三点以前把报告发给我。"
    flat, base = (token_f0_spread(synthesizer, texts, r) for r in (0.0, 1.0))
    assert flat < 0.97 * base, (flat, base)


def test_energy_changes_rms(synthesizer, neutral: np.ndarray) -> None:
    """energy 2.0 is louder and 0.5 softer, roughly in proportion."""
    loud = synthesizer.synthesize(TEXT, SynthesisOptions(energy=2.0)).audio
    soft = synthesizer.synthesize(TEXT, SynthesisOptions(energy=0.5)).audio
    assert 1.5 < rms(loud) / rms(neutral) < 2.5
    assert 0.35 < rms(soft) / rms(neutral) < 0.7


def test_emotions_differ_in_stated_directions(synthesizer, neutral: np.ndarray) -> None:
    """喜悦/愤怒: higher F0, faster; 悲伤: lower, slower, softer; 愤怒 loudest (range: see pitch_range test)."""
    sr = synthesizer.sample_rate
    out = {e: synthesizer.synthesize(TEXT, SynthesisOptions(emotion=e)).audio for e in ("喜悦", "悲伤", "愤怒")}
    f0n, rn = median_f0(neutral, sr), rms(neutral)
    happy, sad, angry = out["喜悦"], out["悲伤"], out["愤怒"]
    assert median_f0(happy, sr) > f0n * 1.05 and len(happy) < len(neutral)
    assert median_f0(sad, sr) < f0n * 0.95 and len(sad) > len(neutral)
    assert rms(sad) < rn < rms(angry)
    assert median_f0(angry, sr) > f0n and len(angry) < len(neutral)
    assert rms(angry) > rms(happy)


def test_latin_words_are_read(synthesizer) -> None:
    """GPS / CEO / hello produce speech rather than being dropped."""
    for word in ("GPS", "CEO", "hello"):
        audio = synthesizer.synthesize(word).audio
        assert len(audio) / synthesizer.sample_rate > 0.3 and rms(audio) > 0.01, word


def test_stream_yields_before_the_whole_text_is_processed(synthesizer) -> None:
    """stream() is lazy: the first chunk is a short piece of the first sentence (a few words, part vocoded)."""
    from speedy.synth import FIRST_PIECE_CHARS

    text = "这是一个用来测试流式合成的句子。" * 40
    chunks = synthesizer.stream(text)
    first = next(chunks)
    assert first.index == 0 and 0.05 < first.duration_s < 0.5
    assert 0 < len(first.text) <= FIRST_PIECE_CHARS
    chunks.close()
