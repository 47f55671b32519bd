"""Export stage for Sambert-HifiGan (ModelScope / KAN-TTS) artifacts.

A Sambert artifact holds seven ONNX graphs as components (``encoder``, ``variance``, ``duration_step``,
``decoder_memory``, ``decoder_step``, ``postnet``, ``vocoder``); ``extra["graphs"]`` says how the host
loop chains them, and :mod:`speedy.families.sambert.runtime` builds the ``acoustic`` runner from them.
The frontend is ``sambert-kantts`` (:mod:`speedy.families.sambert.frontend`) with the voice's symbol tables;
emotions are the voice's native emotion ids.

Quantization works per graph (speedy.stages.int8_graphs, from the family's declared ``int8`` data).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import (
    Audio,
    Component,
    Controls,
    Frontend,
    Manifest,
    Source,
    atomic_artifact,
    lineage_step,
    sha256_file,
    write_manifest,
)
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import InputError, ModelError

_LOGGER = logging.getLogger(__name__)

FAMILY = "sambert-hifigan"
#: Check sentence for the whole-loop parity (ONNX host loop vs the PyTorch reference forward).
CHECK_TEXT = "今天天气很好，我们一起去公园散步吧。"


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda m: _LOGGER.info(m))


# ---- export ----------------------------------------------------------------------------------------
def export_modelscope(
    model_dir: Path,
    out: Path,
    *,
    voice: str | None = None,
    config: Any = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Export one voice of a ModelScope Sambert-HifiGan folder to an ONNX artifact at ``out``.

    The folder is read (and refused with a one-line ModelError: not a model folder, missing voice,
    unsupported variant) before anything is written. Every graph is checked in ONNX Runtime against
    PyTorch, then the whole ONNX loop against the PyTorch reference on a real sentence.

    Returns the written manifest (``extra["parity"]``: one figure per graph and for the loop).
    """
    from speedy.families.sambert.frontend import FRONTEND_NAME, native_emotion_names, read_vocab
    from speedy.families.sambert.source import load_sambert
    from speedy.families.sambert.torch_graphs import (
        ATOL,
        OPSET,
        SPECS,
        check_sambert_graphs,
        export_sambert_graphs,
        loop_config,
    )

    say = _say(progress)
    check = bool(getattr(config, "check", True))
    opset = getattr(config, "opset", OPSET)
    if opset != OPSET:
        raise InputError(f"--opset {opset}: Sambert graphs are exported at opset {OPSET} only")
    model_dir = Path(model_dir)
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it")
    say(f"reading {model_dir} (voice {voice or 'default'})")
    loaded = load_sambert(model_dir, voice)
    info = loaded.voice
    cfg = loop_config(loaded.acoustic, loaded.vocoder, info.audio.sample_rate)
    speakers = info.speakers or ["F7"]
    vocab, vocab_origin = read_vocab(info.folder, speakers, cfg.vocab_sizes)
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:
        say(f"exporting {len(SPECS)} graphs to ONNX (opset {OPSET})")
        tmp = staging / ".graphs"
        paths = export_sambert_graphs(loaded, tmp, check=False)
        comps: dict[str, Component] = {}
        for name, path in paths.items():
            dst = staging / path.name
            shutil.move(str(path), dst)
            spec = SPECS[name]
            comps[name] = Component(
                file=dst.name,
                format="onnx",
                precision="fp32",
                inputs=spec.inputs,
                outputs=spec.outputs,
                sha256=sha256_file(dst),
                dynamic_axes={k: {str(a): n for a, n in v.items()} for k, v in spec.dynamic.items()},
                extra={"opset": OPSET, "role": "vocoder" if spec.module == "vocoder" else "acoustic"},
            )
        shutil.rmtree(tmp, ignore_errors=True)
        figures: list[dict[str, Any]] = []
        if check:
            say("checking every graph in ONNX Runtime against PyTorch")
            diffs = check_sambert_graphs(
                loaded.acoustic, loaded.vocoder, {n: staging / c.file for n, c in comps.items()}
            )
            figures = [
                {"component": n, "output": "*", "kind": "max_abs", "value": v, "tol": ATOL} for n, v in diffs.items()
            ]
        emotions = native_emotion_names(vocab.emotion)
        manifest = Manifest(
            family=FAMILY,
            source=Source(
                kind="modelscope",
                uri=f"{model_dir.resolve()}#{info.name}",
                sha256=_checkpoints_sha(info.am_checkpoint, info.voc_checkpoint),
            ),
            components=comps,
            audio=Audio(
                sample_rate=info.audio.sample_rate,
                hop_size=info.audio.hop_size,
                n_mels=info.audio.n_mels,
                mel_normalization=f"kantts-{info.audio.norm_type}",
                max_ids=cfg.max_len,
                max_frames=cfg.max_len * 32,
                min_vocoder_frames=1,
            ),
            frontend=Frontend(name=FRONTEND_NAME, symbols=vocab.sy),
            controls=Controls(
                inputs=("speed", "pitch_range"), emotions={"kind": "native", "names": emotions}, voices=(info.name,)
            ),
            extra={
                "graphs": {
                    "runtime": "sambert-loop",
                    "acoustic": list(comps)[:-1],
                    "vocoder": "vocoder",
                    "loop": asdict(cfg),
                },
                "vocab": {k: v for k, v in vocab.as_dict().items() if k != "sy"},
                "vocab_source": vocab_origin,
                "speaker": {"name": speakers[0], "id": 0},
                # Sambert's pitch is speaker-normalised: no semitone input; shifts go to resampling.
                "pitch_graph_semitones": [0.0, 0.0],
                "energy_control": "gain",
                "voice": info.name,
                "audio_config": asdict(info.audio),
            },
        )
        if check:
            say("checking the ONNX host loop against the PyTorch reference on a sentence")
            figures += loop_parity(manifest, staging, loaded.acoustic)
        step = lineage_step(
            "export",
            {
                "from_modelscope": str(model_dir),
                "voice": info.name,
                "opset": OPSET,
                "check": check,
                "am_checkpoint": info.am_checkpoint.name,
                "voc_checkpoint": info.voc_checkpoint.name,
            },
            time.perf_counter() - start,
            "torch",
            "onnx",
            "onnxruntime",
        )
        manifest = manifest.with_step(step, extra={**dict(manifest.extra), "parity": figures})
        write_manifest(staging, manifest)
    return manifest


def _checkpoints_sha(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def loop_parity(manifest: Manifest, root: Path, acoustic: Any, text: str = CHECK_TEXT) -> list[dict[str, Any]]:
    """ONNX host loop vs ``acoustic.forward`` (PyTorch) on ``text``: exact durations, mel max |Δ|.

    Raises ModelError when a duration differs or the mel is off by more than the graphs' tolerance × 10
    (errors of the six graphs add up along the loop).
    """
    from speedy.families.sambert.frontend import encoder
    from speedy.families.sambert.torch_graphs import ATOL
    from speedy.runtime import RuntimeOptions, load_runner

    enc = encoder(manifest)
    runner = load_runner(manifest, "acoustic", root, RuntimeOptions(threads=1))
    worst = 0.0
    for utt in enc.text_to_utterances(text):
        inputs = enc.encode(utt, None)
        mel, dur = runner(inputs, DEFAULT_CONTROLS)
        ref = acoustic.forward(inputs)
        if not np.array_equal(dur[0], ref.durations.numpy()):
            raise ModelError("export: the ONNX host loop's durations differ from PyTorch's")
        worst = max(worst, float(np.abs(mel[0] - ref.mel.numpy()).max()))
    tol = 10 * ATOL
    if worst > tol:
        raise ModelError(f"export: the ONNX host loop's mel differs from PyTorch by {worst:.3g} (> {tol:g})")
    return [{"component": "acoustic-loop", "output": "mel", "kind": "max_abs", "value": worst, "tol": tol}]
