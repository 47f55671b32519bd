"""Export and quantize stages for Sambert-HifiGan (ModelScope / KAN-TTS) artifacts.

A Sambert artifact holds seven ONNX graphs as components (``encoder``, ``variance``, ``duration_step``,
``decoder_memory``, ``decoder_step``, ``postnet``, ``vocoder``); ``extra["graphs"]`` says how the host
loop chains them, and :mod:`speedy.families.sambert.runtime` builds the ``acoustic`` runner from them.
The frontend is ``sambert-kantts`` (:mod:`speedy.families.sambert.frontend`) with the voice's symbol tables;
emotions are the voice's native emotion ids.

Quantization works per graph: dynamic INT8 and FP16 need no data; static INT8 records every graph's
inputs by running the FP32 host loop over the calibration corpus. Of the autoregressive graphs, the
duration LSTM stays float (:data:`FLOAT_GRAPHS`) and the decoder step keeps its KV path float
(:data:`DECODER_STEP_FLOAT_OPS`, measured).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
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
    sha256_file,
)
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import InputError, ModelError
from speedy.families.graph_spec import ExportPlan
from speedy.families.sambert.graphs import GRAPHS

_LOGGER = logging.getLogger(__name__)

FAMILY = "sambert-hifigan"
#: Check sentence for the whole-loop parity (ONNX host loop vs the PyTorch reference forward).
CHECK_TEXT = "今天天气很好，我们一起去公园散步吧。"
#: Graphs left in float by the INT8 recipes. The duration LSTM is a few kFLOPs per symbol and feeds its
#: own output back (a rounding flip changes a duration): nothing to gain.
FLOAT_GRAPHS: tuple[str, ...] = ("duration_step",)
#: Op types never quantized in decoder_step: its MatMuls are the attention/KV path (x/h K/V projections,
#: scores), whose output feeds the next step through the cache. Measured on the 16 kHz-size fixture
#: (random weights, 40 symbols, mel error ‖Δ‖/‖mel‖ vs FP32, durations unchanged in every case):
#: dynamic INT8 of Conv+MatMul in the frame-rate graphs 1.15 % with decoder_step quantized vs 0.18 % with it float;
#: Conv only (the FFN) 0.15 % vs 0.05 % (dynamic) and 0.24 % vs 0.08 % (static). The error does not grow
#: along the utterance (last quarter ≈ whole), but the KV path costs 6×, so it stays float.
DECODER_STEP_FLOAT_OPS = ("MatMul",)
#: What the recipes' node scopes (written for FastSpeech2/MB-MelGAN) mean here: "acoustic" scopes
#: restrict INT8 to the frame-rate graphs after the length regulator (durations never change), and the
#: vocoder's to HiFi-GAN's residual blocks (where MB-MelGAN's "/stacks" hold its compute).
FRAME_RATE_GRAPHS = ("decoder_memory", "decoder_step", "postnet")
VOCODER_SCOPES = ("/conv_blocks",)
#: Steps kept per autoregressive graph per calibration sentence (every k-th call), to bound memory.
CALIB_STEPS_PER_SENTENCE = 24


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda m: _LOGGER.info(m))


# ---- export ----------------------------------------------------------------------------------------
def export_plan(source: Path | None, config: Any, say: Callable[[str], None], voice: str | None = None) -> ExportPlan:
    """The plan for one voice of a ModelScope Sambert-HifiGan folder `source` (the FamilySpec ``export_plan``
    hook; speedy.stages.export writes and checks it).

    The folder is read (and refused with a one-line ModelError: not a model folder, missing voice,
    unsupported variant) before anything is written. Graphs are traced on a 24-symbol input and checked in
    ONNX Runtime against PyTorch on feeds recorded from a 17-symbol one (so the dynamic axes are exercised);
    the whole exported loop is then checked against the PyTorch reference on a real sentence.
    """
    from speedy.families.sambert.frontend import FRONTEND_NAME, native_emotion_names, read_vocab
    from speedy.families.sambert.loop import CONFIG_METADATA_KEY
    from speedy.families.sambert.source import load_sambert
    from speedy.families.sambert.torch_graphs import (
        METHODS,
        OPSET,
        Method,
        loop_config,
        record_feeds,
        sample_inputs,
        torch_graphs,
    )

    if source is None:
        raise InputError("export: Sambert has no built-in weights; give a ModelScope folder (--from-modelscope DIR)")
    if config.opset != OPSET:
        raise InputError(f"--opset {config.opset}: Sambert graphs are exported at opset {OPSET} only")
    model_dir = Path(source)
    say(f"reading {model_dir} (voice {voice or 'default'})")
    loaded = load_sambert(model_dir, voice)
    info = loaded.voice
    acoustic, vocoder = loaded.acoustic.eval(), loaded.vocoder.eval()
    cfg = loop_config(acoustic, vocoder, info.audio.sample_rate)
    speakers = info.speakers or ["F7"]
    vocab, vocab_origin = read_vocab(info.folder, speakers, cfg.vocab_sizes)
    trace = record_feeds(acoustic, vocoder, sample_inputs(acoustic, 24, seed=0))
    feeds = record_feeds(acoustic, vocoder, sample_inputs(acoustic, 17, seed=1))
    reference = torch_graphs(acoustic, vocoder)
    graphs = {g.name: g for gs in GRAPHS.values() for g in gs}
    owners = {"acoustic": acoustic, "vocoder": vocoder}

    def manifest(comps: Any) -> Manifest:
        return Manifest(
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
                inputs=("speed", "pitch_range"),
                emotions={"kind": "native", "names": native_emotion_names(vocab.emotion)},
                voices=(info.name,),
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

    return ExportPlan(
        manifest=manifest,
        modules={n: Method(owners[g.role], METHODS[n]) for n, g in graphs.items()},
        trace={n: tuple(np.asarray(trace[n][k]) for k in g.inputs) for n, g in graphs.items()},
        checks={
            n: [(tuple(np.asarray(feeds[n][k]) for k in g.inputs), tuple(reference[n](feeds[n])))]
            for n, g in graphs.items()
        },
        opset=OPSET,
        step={
            "from_modelscope": str(model_dir),
            "voice": info.name,
            "am_checkpoint": info.am_checkpoint.name,
            "voc_checkpoint": info.voc_checkpoint.name,
        },
        metadata={
            n: {CONFIG_METADATA_KEY: cfg.to_json(), "speedy.graph": n, "sample_rate": str(cfg.sample_rate)}
            for n in graphs
        },
        loop_check=lambda manifest, runner: loop_parity(manifest, runner, acoustic),
        roles=True,
    )


def _checkpoints_sha(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def loop_parity(manifest: Manifest, runner: Any, acoustic: Any, text: str = CHECK_TEXT) -> list[dict[str, Any]]:
    """The exported host loop (its acoustic runner) vs ``acoustic.forward`` (PyTorch) on ``text``: exact
    durations, mel max |Δ|.

    Raises ModelError when a duration differs or the mel is off by more than the graphs' tolerance × 10
    (errors of the six graphs add up along the loop).
    """
    from speedy.families.sambert.frontend import encoder
    from speedy.families.sambert.torch_graphs import ATOL

    enc = encoder(manifest)
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


# ---- quantize --------------------------------------------------------------------------------------
def graph_role(comp: Component) -> str:
    """``"acoustic"`` or ``"vocoder"``: which of a recipe's op-type lists applies to this graph."""
    return str(comp.extra.get("role", "vocoder" if comp.file.startswith("vocoder") else "acoustic"))


def quantize_graphs(
    src: Manifest, root: Path, staging: Path, tmp: Path, recipe: Any, text: Sequence[str], say: Callable[[str], None]
) -> tuple[dict[str, Component], dict[str, object]]:
    """INT8 per graph for a Sambert artifact (the recipe's acoustic op types on the six acoustic graphs).

    ``int8-dynamic`` needs no data; ``int8-static`` calibrates each graph on inputs recorded from the
    FP32 host loop over ``text``; ``mixed`` is refused. Graphs in :data:`FLOAT_GRAPHS` are copied.
    Returns (components, report) as ``speedy.stages.int8.int8_components`` does; the report holds the
    quantized loop's error against FP32 on the check sentence.
    """
    from speedy.stages.int8 import quantize_graph, quantized_component

    if recipe.name not in ("int8-dynamic", "int8-static"):
        raise InputError(
            f"quantize: recipe {recipe.name} is not supported for Sambert artifacts; "
            "use int8-dynamic, int8-static or fp16 (int8-hybrid needs single-graph acoustic models)"
        )
    feeds: dict[str, list[dict[str, np.ndarray]]] = {}
    if recipe.name == "int8-static":
        say(f"calibration: {recipe.calib_sentences} sentences through the FP32 Sambert host loop")
        feeds = record_calibration(src, root, text, recipe.calib_sentences)
    comps: dict[str, Component] = {}
    precision = recipe.name
    for name, comp in src.components.items():
        role = graph_role(comp)
        ops = tuple(recipe.op_types.get(role, ()))
        scoped = bool(recipe.scopes.get(role))
        if role == "acoustic" and scoped and name not in FRAME_RATE_GRAPHS:
            ops = ()
        scopes = VOCODER_SCOPES if role == "vocoder" and scoped else None
        if name == "decoder_step":
            ops = tuple(o for o in ops if o not in DECODER_STEP_FLOAT_OPS)
        if not ops or name in FLOAT_GRAPHS or not _has_ops(root / comp.file, ops):
            shutil.copyfile(root / comp.file, staging / comp.file)
            comps[name] = comp
            continue
        quantize_graph(name, root, staging, comp, ops, recipe, scopes, feeds.get(name), tmp / f"{name}.calib.json", say)
        comps[name] = quantized_component(comp, precision, staging, ops)
    report: dict[str, object] = {"float_graphs": [n for n in FLOAT_GRAPHS if n in src.components]}
    report["loop_error"] = loop_error(src, root, replace(src, components=comps), staging)
    return comps, report


def _has_ops(path: Path, ops: Sequence[str]) -> bool:
    """Whether the graph has a node of one of ``ops`` (ORT's calibrators fail on a graph with none)."""
    import onnx

    return any(n.op_type in ops for n in onnx.load(str(path), load_external_data=False).graph.node)


def record_calibration(
    src: Manifest, root: Path, text: Sequence[str], limit: int
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Each graph's feeds from the FP32 host loop over up to ``limit`` calibration sentences.

    Emotions cycle through the voice's four main labels so every emotion embedding is seen. Step
    graphs keep every k-th call (≈ :data:`CALIB_STEPS_PER_SENTENCE` per sentence).
    """
    from speedy.families.host_loop import as_runner
    from speedy.families.sambert.frontend import LABELS, encoder
    from speedy.families.sambert.loop import SambertLoop
    from speedy.families.sambert.runtime import ACOUSTIC_GRAPHS, loop_config
    from speedy.runtime import RuntimeOptions
    from speedy.runtime.onnx_backend import graph_sessions

    if not text:
        raise InputError("calibration set is empty")
    recorded: dict[str, list[dict[str, np.ndarray]]] = {}
    stride: dict[str, int] = {}

    def wrap(name: str, session: Any) -> Callable[[Mapping[str, np.ndarray]], Sequence[np.ndarray]]:
        run = as_runner(session, "sambert")
        calls = [0]

        def rec(feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
            if calls[0] % stride.get(name, 1) == 0:
                recorded.setdefault(name, []).append({k: np.array(v, copy=True) for k, v in feeds.items()})
            calls[0] += 1
            return run(feeds)

        return rec

    sessions = graph_sessions(src, root, RuntimeOptions(threads=None), (*ACOUSTIC_GRAPHS, "vocoder"), "sambert")
    loop = SambertLoop({n: wrap(n, s) for n, s in sessions.items()}, loop_config(src))
    enc = encoder(src)
    labels: list[str | None] = [lab for lab in LABELS if lab in enc.emotions] or [None]
    count = 0
    for sentence in text:
        for utt in enc.text_to_utterances(sentence):
            n = len(utt.tokens)
            stride["duration_step"] = max(1, n // CALIB_STEPS_PER_SENTENCE)
            stride["decoder_step"] = max(1, 4 * n // CALIB_STEPS_PER_SENTENCE)  # ≈ 4 decoder steps per symbol
            inputs = enc.encode(utt, _Emotion(labels[count % len(labels)]))
            loop.synthesize(inputs)
            count += 1
            if count >= limit:
                return recorded
    if not count:
        raise InputError("calibration set produced no utterances")
    return recorded


class _Emotion:
    """The one attribute of SynthesisOptions the encoder reads."""

    def __init__(self, emotion: str | None) -> None:
        self.emotion = emotion


def loop_error(
    ref: Manifest, ref_root: Path, test: Manifest, test_root: Path, text: str = CHECK_TEXT
) -> dict[str, float | None]:
    """Quantized vs FP32 host loop on ``text``: symbols whose duration changed, and mel errors.

    ``mel_rel``: ‖mel_q − mel‖ / ‖mel‖ over the frames both have; ``mel_rel_last_quarter``: the same on
    the last quarter of frames (growth along the utterance shows autoregressive error accumulation);
    ``vocoder_snr_db``: both vocoders on the FP32 mel (None when identical).
    """
    from speedy.calibration import snr_db
    from speedy.families.sambert.frontend import encoder
    from speedy.runtime import RuntimeOptions, load_runner

    opts = RuntimeOptions(threads=1)
    a = load_runner(ref, "acoustic", ref_root, opts)
    b = load_runner(test, "acoustic", test_root, opts)
    va, vb = load_runner(ref, "vocoder", ref_root, opts), load_runner(test, "vocoder", test_root, opts)
    snr = float("inf")
    enc = encoder(ref)
    ctl = DEFAULT_CONTROLS
    changed = total = 0
    num = den = num_q = den_q = 0.0
    for utt in enc.text_to_utterances(text):
        inputs = enc.encode(utt, None)
        (ma, da), (mb, db) = a(inputs, ctl), b(inputs, ctl)
        snr = min(snr, snr_db(va(ma), vb(ma)))
        changed += int((da != db).sum())
        total += da.size
        n = min(ma.shape[1], mb.shape[1])
        d = ma[0, :n] - mb[0, :n]
        num += float((d**2).sum())
        den += float((ma[0, :n] ** 2).sum())
        q = n - n // 4
        num_q += float((d[q:] ** 2).sum())
        den_q += float((ma[0, q:n] ** 2).sum())
    return {
        "durations_changed": changed,
        "symbols": total,
        "mel_rel": round((num / max(den, 1e-12)) ** 0.5, 5),
        "mel_rel_last_quarter": round((num_q / max(den_q, 1e-12)) ** 0.5, 5),
        "vocoder_snr_db": round(snr, 2) if np.isfinite(snr) else None,
    }
