"""Search the hifigan wheel's mel setting by measurement (speedy.families.hifigan.mel_search) on real speech.

Usage: ``python examples/hifigan_mel_search.py ARTIFACT WAV...`` — ARTIFACT is a hifigan vocoder-only artifact
(``speedy export hifigan -o DIR``); JSON rows on stdout, progress on stderr (the table in
speedy/families/hifigan/README.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from speedy.artifacts import read_manifest
from speedy.families.hifigan.mel_search import load_speech, search
from speedy.runtime import RuntimeOptions, load_runner


def main(argv: list[str]) -> int:
    root, *wavs = (Path(a) for a in argv)
    runner = load_runner(read_manifest(root), "vocoder", root, RuntimeOptions(threads=2))
    rows = search(runner, load_speech(wavs), progress=lambda m: sys.stderr.write(m + "\n"))
    json.dump(rows, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
