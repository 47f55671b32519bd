"""Per-component time and fidelity of the OpenVINO backend against ONNX Runtime FP32 on the default voice.

    python examples/openvino_probe.py [--threads 2] [--rounds 7] [--sentences 8] [--work /tmp/ov-probe]
        [--extra NAME=ARTIFACT ...]

Compiles the default voice's FP32 ONNX artifact with `--backend openvino` at fp32, bf16 (where the CPU has
AVX512_BF16 or AMX) and int8 into --work (reused when there), then on the last --sentences sentences of
calibration/eval.txt times each component (acoustic on their phone ids, vocoder on the FP32 acoustic
model's mels), all variants interleaved round by round, and reports the median seconds per pass, the
ratio to ORT FP32 and the per-component MCD against FP32 (speedy.fidelity.component_fidelity, as
`quantize --recipe auto` measures it; needs the `quality` extra). `--extra` adds more artifacts (e.g. an
ORT int8-static one) as rows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from speedy.controls import DEFAULT_CONTROLS


def cpu_extensions() -> str:
    from speedy.backends import cpu_isa

    return ", ".join(cpu_isa()) or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ov-probe"))
    ap.add_argument("--extra", action="append", default=[], help="NAME=ARTIFACT, another row")
    args = ap.parse_args()

    from speedy.backends import backend, missing_isa
    from speedy.corpus import load_corpus
    from speedy.stages.export import reference_artifact
    from speedy.fidelity import component_fidelity, utterance_ids
    from speedy.stages.compile import CompileConfig, compile_artifact
    from speedy.synth import Synthesizer

    src = reference_artifact()
    variants: dict[str, Path] = {"ORT fp32": src}
    precisions = [
        p for p in backend("openvino").precisions if not missing_isa(backend("openvino").precision_needs.get(p, ()))
    ]
    for p in precisions:
        out = args.work / f"openvino-{p}"
        if not (out / "manifest.json").is_file():
            t = time.perf_counter()
            compile_artifact(src, out, CompileConfig(backend="openvino", precision=p, threads=args.threads), force=True)
            print(f"compiled openvino {p} in {time.perf_counter() - t:.0f} s")
        variants[f"OV {p}"] = out
    for spec in args.extra:
        name, _, path = spec.partition("=")
        variants[name] = Path(path)

    synths = {k: Synthesizer.load(v, threads=args.threads) for k, v in variants.items()}
    ref = synths["ORT fp32"]
    texts = load_corpus("eval")[-args.sentences :]
    ids = utterance_ids(ref, texts)
    mels = [ref.acoustic(x, DEFAULT_CONTROLS)[0] for x in ids]
    calls: dict[tuple[str, str], Any] = {}
    for k, s in synths.items():
        calls[(k, "acoustic")] = lambda s=s: [s.acoustic(x, DEFAULT_CONTROLS) for x in ids]
        calls[(k, "vocoder")] = lambda s=s: [s.vocoder(m) for m in mels]
    for f in calls.values():  # warm-up: every length once (OpenVINO compiles shape-specific kernels lazily)
        f()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
    for _ in range(args.rounds):
        for k, f in calls.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    cache: dict = {}
    audio_s = sum(m.shape[1] for m in mels) * ref.manifest.audio.hop_size / ref.sample_rate
    print(
        f"default voice, {len(ids)} utterances ({audio_s:.1f} s of audio) from eval.txt, {args.threads} threads, "
        f"median of {args.rounds} interleaved rounds; CPU extensions: {cpu_extensions()}"
    )
    print(
        "| variant | acoustic ms | speed-up vs ORT | vocoder ms | speed-up vs ORT | acoustic MCD dB | durations same | vocoder MCD dB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for k, s in synths.items():
        f = component_fidelity(ref, s, ids, cache) if k != "ORT fp32" else None
        a, v = med[(k, "acoustic")], med[(k, "vocoder")]
        ra, rv = med[("ORT fp32", "acoustic")] / a, med[("ORT fp32", "vocoder")] / v
        fid = (
            f"{f.acoustic_mcd_db:.2f} | {100 * (f.duration_match or 0):.0f} % | {f.vocoder_mcd_db:.2f}"
            if f is not None and f.acoustic_mcd_db is not None
            else "0 | 100 % | 0"
        )
        print(f"| {k} | {a * 1000:.0f} | {ra:.2f}x | {v * 1000:.0f} | {rv:.2f}x | {fid} |")
    stream_table(synths, texts, args.rounds)


def stream_table(synths: dict[str, Any], texts: list[str], rounds: int) -> None:
    """Whole-pipeline streaming (Synthesizer.stream, chunked vocoding): first-chunk latency and whole-text
    time per text, medians over `rounds` passes after one pass that lets OpenVINO meet every shape."""
    first: dict[str, list[float]] = {k: [] for k in synths}
    total: dict[str, list[float]] = {k: [] for k in synths}
    for r in range(rounds + 1):
        for text in texts:
            for k, s in synths.items():
                t = time.perf_counter()
                it = s.stream(text)
                next(it)
                f = time.perf_counter() - t
                for _ in it:
                    pass
                if r:
                    first[k].append(f)
                    total[k].append(time.perf_counter() - t)
    print("\nstreaming (Synthesizer.stream), per text, median:")
    print("| variant | first chunk ms | whole text ms |")
    print("|---|---|---|")
    for k in synths:
        print(f"| {k} | {statistics.median(first[k]) * 1000:.0f} | {statistics.median(total[k]) * 1000:.0f} |")


if __name__ == "__main__":
    main()
