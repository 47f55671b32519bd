"""`speedy compile --backend openvino`: OpenVINO IR from the FP32 ONNX graphs (the runner is in
speedy.runtime.openvino_backend).

Per component: `openvino.convert_model(onnx)` and `openvino.save_model(..., compress_to_fp16=False)` write
`<name>.xml` + `<name>.bin`. Precisions:
  fp32  the IR as converted, run with INFERENCE_PRECISION_HINT f32.
  bf16  the same f32 IR, run with the hint bf16 (recorded in the component's `extra["inference_precision"]`):
        OpenVINO's CPU plugin then computes in bf16 on AVX512_BF16 / AMX. Refused on other CPUs, where the
        plugin would silently run f32 (the backend table's precision_needs, checked by compile itself).
  int8  NNCF post-training quantization (`nncf.quantize`) calibrated on the same calibration text the ORT
        INT8 recipes use: the acoustic model on its phone ids at default controls, the vocoder on the mels
        of the FP32 acoustic model (INT8_SETTINGS says what each component gets, and why). The float parts
        run at f32.

Reduced precisions are not held to the family's FP32 tolerances (compile's `verify` reports them), but a
gross loss still fails (FIDELITY_BUDGET, measured on compile's check sentences, so not with --no-check; a
multi-graph family's reduced-precision graphs are only reported, through its host-loop check): a duration
predictor that moves most tokens, a mel or a waveform spectrum far from FP32's. Needs the `openvino` extra (nncf for int8), imported inside the functions.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Component, Manifest, replace_component, sha256_file
from speedy.errors import InputError, MissingExtraError, ModelError
from speedy.runtime.openvino_backend import require_openvino

_LOGGER = logging.getLogger(__name__)

#: compile precision -> the IR's INFERENCE_PRECISION_HINT at run time
RUN_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: calibration sentences for int8 (as the ORT int8-static recipe); tests lower it
CALIB_SENTENCES = 48
#: ORT-only settings of a source component that mean nothing to an OpenVINO one
_ORT_EXTRA = ("graph_optimization", "offline_optimization", "session_config", "transformer_fusions")

#: NNCF settings per component of a single-graph voice, measured on the default voice (48 calibration
#: sentences; figures of FIDELITY_BUDGET on compile's check sentences):
#: - acoustic: only the frame-rate part (decoder, postnet) quantized, so durations cannot change (the ORT
#:   recipes' rule), as model_type "transformer" (NNCF keeps the attention's softmax / MatMul inputs and
#:   the layer norms float): mel_mae 0.036, durations 100 % (as ORT int8-static: 0.036); without the
#:   transformer model type mel_mae was 1.08.
#: - vocoder: only the residual stacks' convolutions (upsampling, PQMF and output convs float, as ORT's
#:   int8-static), mixed preset (asymmetric activations): log-spectral distance 7.2 dB, as ORT int8-static
#:   (7.2 dB); the performance preset measured 8.6 dB, quantizing every conv 8.8 dB.
INT8_SETTINGS: dict[str, dict[str, Any]] = {
    "acoustic": {"model_type": "transformer", "preset": "mixed", "float_outside": ("/decoder", "/postnet")},
    "vocoder": {"model_type": None, "preset": "mixed", "float_outside": ("/stacks",)},
}

#: Gross-loss budget of bf16 / int8 components on compile's check sentences (default controls): well outside
#: what the recipes measure on the default voice (bf16: durations 97 %, mel_mae 0.042, vocoder 1.5 dB;
#: int8: 100 %, 0.036, 7.2 dB; ORT's int8-static recipe: 100 %, 0.036, 7.2 dB) and inside what a broken
#: quantization gives (the acoustic model quantized without NNCF's transformer rules: mel_mae 1.08):
#:   duration_match   share of tokens whose frame count equals FP32's, at least this;
#:   mel_mae          mean |Δ| of the mel (per-bin z-scores) after imposing FP32's durations, at most this;
#:   vocoder_lsd_db   log-spectral distance of the waveform on FP32's mel (dB), at most this.
FIDELITY_BUDGET = {"duration_match": 0.8, "mel_mae": 0.5, "vocoder_lsd_db": 12.0}


def preflight(src: Manifest, source: Path, config: Any) -> None:
    """Refuse before any work: a non-FP32 source, openvino (int8: nncf) missing, int8 on a multi-graph family (its graphs are calibrated through the host loop, which this backend
    does not do)."""
    from speedy.families import lookup

    for name, comp in src.components.items():
        if comp.precision != "fp32":
            raise InputError(
                f"compile: {name} ({comp.file}) is {comp.precision}; the openvino backend takes an FP32 ONNX "
                "artifact (it quantizes itself with --precision int8)"
            )
    require_openvino("the openvino backend")
    if config.precision == "int8":
        try:
            import nncf  # noqa: F401
        except ImportError:
            raise MissingExtraError("nncf", "openvino", "--backend openvino --precision int8") from None
        family = lookup(src.family)
        if family is not None and family.multi_graph:
            raise InputError(
                f"compile: --backend openvino --precision int8 takes single-graph artifacts; {src.family} is "
                "multi-graph (use fp32 or bf16)"
            )


def compile_openvino(
    src: Manifest, source: Path, staging: Path, config: Any, checks: Any, say: Callable[[str], None]
) -> tuple[dict[str, Component], dict[str, Any]]:
    """Write `<name>.xml` + `<name>.bin` per component into `staging`; returns (components, notes per component)."""
    from speedy.runtime.receptive import onnx_width

    ov = require_openvino("the openvino backend")
    feeds = calibration_feeds(src, Path(source), say) if config.precision == "int8" else {}
    comps: dict[str, Component] = {}
    notes: dict[str, Any] = {}
    for name, comp in src.components.items():
        start = time.perf_counter()
        onnx_path = Path(source) / comp.file
        say(f"{name}: converting to OpenVINO IR ({config.precision})")
        try:
            model = ov.convert_model(str(onnx_path))
        except Exception as e:  # the ONNX frontend raises its own OpFrontend / General failures
            raise ModelError(f"compile: OpenVINO cannot convert {comp.file} ({_first_line(e)})") from None
        note: dict[str, Any] = {"precision": config.precision, "inference_precision": RUN_HINTS[config.precision]}
        if config.precision == "int8":
            model, note["nncf"] = quantize_int8(model, name, feeds.get(name), say)
        xml = staging / f"{name}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        bin_ = xml.with_suffix(".bin")
        extra: dict[str, Any] = {
            "inference_precision": RUN_HINTS[config.precision],
            "threads": config.threads,
            "weights": {"file": bin_.name, "sha256": sha256_file(bin_)},
            "openvino": str(ov.__version__).split("-")[0],
        }
        if name == "vocoder":
            extra["receptive_field_frames"] = onnx_width(onnx_path)
        base = replace(comp, extra={k: v for k, v in comp.extra.items() if k not in _ORT_EXTRA})
        comps[name] = replace_component(base, xml, "openvino", config.precision, **extra)
        note["seconds"] = round(time.perf_counter() - start, 2)
        notes[name] = note
    if config.precision != "fp32" and checks is not None:
        say("checking the reduced-precision components for a gross loss")
        gross_check(src, comps, staging, checks, config.threads, notes)
    return comps, notes


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


# ---- int8 ------------------------------------------------------------------------------------------


def calibration_feeds(src: Manifest, source: Path, say: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """Feed dicts per component from the calibration text: phone ids at default controls for the acoustic
    model, the FP32 acoustic model's mels for the vocoder (a vocoder-only artifact: the default voice's speech,
    analysed as copy synthesis does)."""
    from speedy.calibration import acoustic_feeds, calibration_ids
    from speedy.corpus import load_corpus

    text = load_corpus("calib")
    vo = src.components.get("vocoder")
    if src.vocoder_only:
        from speedy.stages.copy_calib import recording_mels

        assert vo is not None
        return {"vocoder": [{vo.inputs[0]: m} for m in recording_mels(src, text, CALIB_SENTENCES, say)]}
    from speedy.stages.int8 import vocoder_feeds

    say(f"calibration: {CALIB_SENTENCES} sentences through the frontend and the FP32 acoustic model")
    ac = src.components["acoustic"]
    ids = calibration_ids(src, text, CALIB_SENTENCES)
    out = {"acoustic": acoustic_feeds(ac, ids)}
    if vo is not None:
        out["vocoder"] = vocoder_feeds(source / ac.file, ac, vo, ids, src.audio.min_vocoder_frames)
    return out


def float_scope(model: Any, keep: Sequence[str]) -> list[str]:
    """Names of `model`'s operations outside every prefix of `keep` (empty `keep`: none), to leave float."""
    if not keep:
        return []
    pattern = re.compile("|".join(re.escape(k) for k in keep))
    return [op.get_friendly_name() for op in model.get_ops() if not pattern.match(op.get_friendly_name())]


def quantize_int8(
    model: Any, name: str, feeds: list[dict[str, Any]] | None, say: Callable[[str], None]
) -> tuple[Any, dict[str, Any]]:
    """`model` through `nncf.quantize` with INT8_SETTINGS[name], calibrated on `feeds`; returns (model, note)."""
    import nncf

    if not feeds:
        raise ModelError(f"compile: no calibration inputs for {name}")
    settings = INT8_SETTINGS.get(name, INT8_SETTINGS["vocoder"])
    kwargs: dict[str, Any] = {"subset_size": len(feeds), "preset": nncf.QuantizationPreset(settings["preset"])}
    if settings["model_type"]:
        kwargs["model_type"] = nncf.ModelType(settings["model_type"])
    ignored = float_scope(model, settings["float_outside"])
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored, validate=False)
    say(f"{name}: NNCF post-training INT8 on {len(feeds)} calibration inputs")
    start = time.perf_counter()
    from speedy.noise import library_stdout

    log = logging.getLogger("nncf")
    level = log.level
    log.setLevel(logging.WARNING)  # NNCF logs every operation it leaves float at INFO
    try:
        with library_stdout():
            out = nncf.quantize(model, nncf.Dataset(feeds), **kwargs)
    finally:
        log.setLevel(level)
    note = {
        "method": "nncf.quantize (post-training)",
        "preset": settings["preset"],
        "model_type": settings["model_type"],
        "float_outside": list(settings["float_outside"]),
        "subset_size": len(feeds),
        "fake_quantize": sum(1 for op in out.get_ops() if op.get_type_name() == "FakeQuantize"),
        "seconds": round(time.perf_counter() - start, 2),
        "nncf": nncf.__version__,
    }
    return out, note


# ---- gross-loss check ------------------------------------------------------------------------------


def log_spectral_distance(ref: np.ndarray, test: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """Mean over frames of the RMS difference of the log power spectra (dB) of two waveforms (same length)."""
    a, b = (np.asarray(x, np.float64).reshape(-1) for x in (ref, test))
    n = min(a.size, b.size)
    if n < n_fft:
        return 0.0
    window = np.hanning(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(np.stack([a[:n], b[:n]]), n_fft, axis=1)[:, ::hop] * window
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    floor = 1e-8 * float(power[0].max(initial=1e-12))
    db = 10 * np.log10(np.maximum(power, floor))
    return float(np.mean(np.sqrt(np.mean((db[0] - db[1]) ** 2, axis=-1))))


def fidelity_figures(acoustic: Any, vocoder: Any, checks: Any) -> dict[str, float]:
    """The FIDELITY_BUDGET figures of the runners given (None: not measured) on the check set's default-
    control inputs and reference outputs."""
    from speedy.controls import DEFAULT_CONTROLS
    from speedy.fidelity import impose_durations

    out: dict[str, float] = {}
    if acoustic is not None:
        match: list[bool] = []
        mae: list[float] = []
        for ids, controls, mel_r, dur_r in checks.acoustic:
            if controls != DEFAULT_CONTROLS:
                continue
            mel_t, dur_t = acoustic(ids, controls)
            dur_t, dur_r = np.asarray(dur_t).reshape(-1), np.asarray(dur_r).reshape(-1)
            match.extend((dur_t == dur_r).tolist())
            mae.append(float(np.abs(impose_durations(mel_t, dur_t, dur_r) - mel_r).mean()))
        out["duration_match"] = round(float(np.mean(match)), 4)
        out["mel_mae"] = round(float(np.mean(mae)), 4)
    if vocoder is not None:
        lsd = [log_spectral_distance(wav, vocoder(mel)) for mel, wav in checks.vocoder]
        out["vocoder_lsd_db"] = round(float(np.mean(lsd)), 3)
    return out


def over_budget(figures: dict[str, float]) -> list[str]:
    """The FIDELITY_BUDGET entries that `figures` miss, as 'name value (budget)' strings."""
    bad = []
    for key, value in figures.items():
        limit = FIDELITY_BUDGET[key]
        if (value < limit) if key == "duration_match" else (value > limit):
            bad.append(f"{key} {value:g} ({'min' if key == 'duration_match' else 'max'} {limit:g})")
    return bad


def gross_check(
    src: Manifest, comps: dict[str, Component], root: Path, checks: Any, threads: int | None, notes: dict[str, Any]
) -> None:
    """Measure the compiled components against the check set (FIDELITY_BUDGET); record the figures in
    `notes[name]["fidelity"]` and raise ParityError (exit 3) on a gross loss."""

    from speedy.errors import ParityError
    from speedy.families import for_family
    from speedy.runtime import RuntimeOptions, load_runner

    manifest = replace(src, components=comps)
    opts = RuntimeOptions(threads=threads)
    for name in (n for n in for_family(src.family).graphs if n in comps):
        runner = load_runner(manifest, name, root, opts)
        figures = fidelity_figures(
            runner if name == "acoustic" else None, runner if name == "vocoder" else None, checks
        )
        notes[name]["fidelity"] = {**figures, "budget": {k: FIDELITY_BUDGET[k] for k in figures}}
        bad = over_budget(figures)
        if bad:
            raise ParityError(f"compile: openvino {comps[name].precision} {name} is grossly off FP32: {', '.join(bad)}")
