"""The Sambert-HifiGan (ModelScope / KAN-TTS) export plan (the FamilySpec ``export_plan`` hook).

A Sambert artifact holds seven ONNX graphs as components (``encoder``, ``variance``, ``duration_step``,
``decoder_memory``, ``decoder_step``, ``postnet``, ``vocoder``); ``extra["graphs"]`` says how the host
loop chains them, and :func:`speedy.families.sambert.runtime.compose` builds the ``acoustic`` runner from them.
The export itself (every graph, its parity and the loop's) is speedy.stages.export's.
The frontend is ``sambert-kantts`` (:mod:`speedy.families.sambert.frontend`) with the voice's symbol tables;
emotions are the voice's native emotion ids.

Quantization works per graph (speedy.stages.int8_graphs, from the family's declared ``int8`` data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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
    sha256_file,
)
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import InputError, ModelError
from speedy.families.graph_spec import ExportPlan, flat
from speedy.families.sambert import CHECK_TEXT
from speedy.families.sambert.graphs import GRAPHS

FAMILY = "sambert-hifigan"


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
    graphs = flat(GRAPHS)
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
    from speedy.families.sambert.graphs import CHECKS

    enc = encoder(manifest)
    worst = 0.0
    for utt in enc.text_to_utterances(text):
        inputs = enc.encode(utt, None)
        mel, dur = runner(inputs, DEFAULT_CONTROLS)
        ref = acoustic.forward(inputs)
        if not np.array_equal(dur[0], ref.durations.numpy()):
            raise ModelError("export: the ONNX host loop's durations differ from PyTorch's")
        worst = max(worst, float(np.abs(mel[0] - ref.mel.numpy()).max()))
    tol = 10 * CHECKS[0].tol
    if worst > tol:
        raise ModelError(f"export: the ONNX host loop's mel differs from PyTorch by {worst:.3g} (> {tol:g})")
    return [{"component": "acoustic-loop", "output": "mel", "kind": "max_abs", "value": worst, "tol": tol}]
