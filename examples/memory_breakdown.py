"""Where the synthesis process's memory goes (default voice unless --artifact): resident memory after each
step of start-up, then, per stage, the live heap's peak against the pages the run touched.

    python examples/memory_breakdown.py [--artifact DIR] [--threads 2] [--json]

Issue 16 asked for ≤ 200 MB peak RSS in `speedy bench`; this script is how the gap was located. Linux and
glibc only (it reads /proc/self/status, resets the high-water mark through /proc/self/clear_refs, and
samples glibc's mallinfo2 from a second thread every 0.2 ms, so the live peak is a lower bound). Every
figure is MiB. A stage's "touched" is how far its run raised the peak RSS after malloc_trim(0) gave all
free heap back: on a fragmenting heap it is several times the live peak.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 2**20
LONG_PIECE = "我们在这里讨论的是一个相当长的句子，它包含了许多不同的汉字和词语，用来测试内存的使用情况。"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


_LIBC = ctypes.CDLL("libc.so.6")
_LIBC.mallinfo2.restype = _MallInfo2


def status() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process, MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def live_bytes() -> int:
    """Bytes glibc's allocator has handed out and not had back (heap chunks in use + mmapped chunks)."""
    info = _LIBC.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def stage(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run `fn` from a trimmed heap; its live-heap peak (sampled) and the peak RSS it added, MiB."""
    _LIBC.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before, live0 = status()["VmRSS"], live_bytes()
    peak, done = [live0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], live_bytes())
            time.sleep(0.0002)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        result = fn()
    finally:
        done.set()
        watcher.join()
    after = status()
    return result, {
        "live_peak": round((peak[0] - live0) / MIB, 1),
        "touched": round(after["VmHWM"] - before, 1),
        "kept": round(after["VmRSS"] - before, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default=None, help="artifact folder (default: the default voice's FP32 export)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    steps: dict[str, Any] = {"start": status()}
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    steps["numpy + onnxruntime imported"] = status()
    from speedy.controls import DEFAULT_CONTROLS
    from speedy.synth import Synthesizer

    steps["speedy.synth imported"] = status()
    synth = Synthesizer.load(args.artifact, threads=args.threads)
    steps["artifact loaded"] = status()
    synth.synthesize("你好。")
    steps["first synthesis (frontend tables, polyphone model)"] = status()

    frontend = synth._encoder or synth._frontend  # noqa: SLF001 - a diagnostic of the Synthesizer's parts
    utterance = next(iter(frontend.text_to_utterances(LONG_PIECE)))
    ids = synth.ids_for(utterance.phones)
    controls = DEFAULT_CONTROLS
    stages: dict[str, Any] = {}
    for i in range(3):
        (mel, _), stages[f"acoustic #{i + 1}"] = stage(lambda: synth.acoustic(ids, controls))
    stages["piece"] = {"characters": len(utterance.text), "tokens": int(ids.shape[1]), "frames": int(mel.shape[1])}
    context = synth.vocoder_context_frames or 0
    for frames in (384, 128):
        block = mel[:, : frames + 2 * context]
        for i in range(2):
            _, stages[f"vocoder {frames}+2x{context} frames #{i + 1}"] = stage(lambda b=block: synth.vocoder(b))
    report = {"mib": True, "threads": args.threads, "startup": steps, "stages": stages}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return
    for name, figures in steps.items():
        print(f"{name:<52} " + "  ".join(f"{k} {v:6.1f}" for k, v in figures.items()))
    print(f"long piece: {stages.pop('piece')}")
    for name, figures in stages.items():
        print(f"{name:<36} " + "  ".join(f"{k} +{v:5.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
