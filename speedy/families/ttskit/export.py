"""The ttskit family's export plan (the FamilySpec ``export_plan`` hook): encoder, decoder step, postnet and
vocoder as torch modules, each graph's example inputs recorded from a real sentence, and the host loop's check.

The stage (speedy.stages.export) exports and compares every graph in ONNX Runtime with PyTorch, then runs the
exported host loop (:mod:`speedy.families.ttskit.loop`, through the runtime) against the PyTorch reference
(:func:`speedy.families.ttskit.modules.reference_inference`) with the same prenet dropout masks: the stop step
must be identical and the mel within :data:`LOOP_TOL`. :func:`reference_folder` names the cached export
(one per wheel checksum) so tests and the CLI do not export again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import (
    Audio,
    Controls,
    Frontend,
    Manifest,
    Source,
)
from speedy.errors import InputError, ModelError
from speedy.families.graph_spec import ExportPlan

OPSET = 17
#: Bump when the exported files or the manifest change meaning: cached exports are then rebuilt.
EXPORT_VERSION = 5
RUNTIME_NAME = "ttskit-loop"
CHECK_TEXT = "今天天气很好，我们一起去公园散步吧。"
CHECK_VOICE = "Aiyue"
#: Max |Δ| of the whole loop's mel (ONNX Runtime vs PyTorch; each graph's own is declared in its GraphSpec).
LOOP_TOL = 1e-3
#: Decoder steps at which the step graph is compared (those past the end are skipped).
CHECK_STEPS = (0, 1, 5, 20, 60, 120)
MAX_IDS = 400
#: MelGAN's first layer reflection-pads 3 frames: shorter mels are padded with silence first.
MIN_VOCODER_FRAMES = 4


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
    """Where the FP32 export of the built-in weights is cached (keyed by the wheel checksum)."""
    from speedy.families.ttskit.source import SHA256
    from speedy.families.wheels import cache_root

    return cache_root() / f"ttskit-{SHA256[:16]}-onnx"


def reference_folder() -> tuple[Path, bool]:
    """Where the FP32 export is cached and whether it is current (the FamilySpec ``reference`` hook)."""
    from speedy.families.wheels import cached_export

    return cached_export(cached_dir(), "ttskit_export_version", EXPORT_VERSION)


def export_plan(
    source: Path | None, config: Any, say: Callable[[str], None], source_wheel: Path | None = None
) -> ExportPlan:
    """The plan from the ttskit wheel (`source` must be None: the family has built-in weights only).

    Raises ModelError (exit 3) for a missing, altered or unreadable wheel or checkpoint; InputError for a
    source folder or another --opset.
    """
    from speedy.controls import EMOTION_PRESETS
    from speedy.families.ttskit import FAMILY, VOICES
    from speedy.families.ttskit.frontend import FRONTEND_NAME, SYMBOLS
    from speedy.families.ttskit.loop import LoopConfig
    from speedy.families.ttskit.modules import N_MELS, DecoderStepGraph, EncoderGraph, PostnetGraph, load_modules
    from speedy.families.ttskit.source import SHA256, VERSION, read_wheel

    if source is not None:
        raise InputError("export ttskit: the family exports its built-in weights only (no SOURCE folder)")
    if config.opset != OPSET:
        raise InputError(f"export ttskit: --opset does not apply (this family exports at opset {OPSET})")
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

    def manifest(comps: Any) -> Manifest:
        return Manifest(
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

    examples = ref["examples"]
    return ExportPlan(
        manifest=manifest,
        modules={
            "encoder": EncoderGraph(mellotron),
            "decoder_step": DecoderStepGraph(mellotron),
            "postnet": PostnetGraph(mellotron),
            "vocoder": melgan,
        },
        trace={n: examples[n][0][0] for n in examples},
        checks=examples,
        opset=OPSET,
        step={"source": f"ttskit=={VERSION}"},
        loop_check=lambda _manifest, runner: loop_parity(runner.loop, ref),
        roles=True,
    )


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


def loop_parity(loop: Any, ref: dict[str, Any]) -> list[dict[str, Any]]:
    """The ONNX host loop (a TtskitLoop over the exported graphs) vs the PyTorch reference: identical stop step
    and end frame, mel max |Δ|."""
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


def loop_vs_reference(runner: Any, text: str, voices: Sequence[str]) -> list[dict[str, Any]]:
    """An artifact's loop (its acoustic runner, from speedy.runtime.load_runner) vs the PyTorch reference per
    voice on ``text`` (tests and reports)."""
    from speedy.families.ttskit.modules import load_modules
    from speedy.families.ttskit.source import read_wheel

    cfg = runner.loop.config
    mellotron, melgan = load_modules(read_wheel())
    rows = []
    with _torch_threads(1):
        for voice in voices:
            ref = _reference(mellotron, melgan, cfg, text, voice)
            rows.append({"voice": voice, **loop_parity(runner.loop, ref)[1], "steps": ref["steps"]})
    return rows
