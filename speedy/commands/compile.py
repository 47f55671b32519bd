"""`speedy compile`: an artifact → the same voice prepared for one runtime backend (the backend table's)."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.backends import BACKENDS, COMPILE_PRECISIONS, help_text
from speedy.commands.common import console, emit_json, force_option, json_option, threads_option

_HELP = f"""Compile an artifact for one runtime backend, checked against its source.

{help_text()}

Every compiled component is run against its source; a difference beyond the family's export
tolerance fails (exit 3). A backend whose extra is not installed, or a precision this CPU lacks
(bf16 without AVX512_BF16 / AMX), is refused in one line before any work.
"""


@click.command("compile", help=_HELP)
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@click.option(
    "--backend",
    type=click.Choice([b.name for b in BACKENDS]),
    default="onnxruntime",
    show_default=True,
    help="Runtime to compile for (see above for the input each one takes).",
)
@click.option(
    "--precision",
    type=click.Choice([*COMPILE_PRECISIONS, "f32"]),
    default="fp32",
    show_default=True,
    help="Precision the backend runs at (f32 = fp32): tensorrt fp16 / int8 (int8 needs --int8-calib; so does "
    "an INT8 QDQ input); openvino bf16 / int8. onnxruntime and torch keep the source's precision (use "
    "'speedy quantize' first).",
)
@click.option(
    "--max-seq-len",
    type=int,
    default=512,
    show_default=True,
    help="Most phoneme ids per sentence (TensorRT profile max / torch.export bound).",
)
@click.option(
    "--max-frames",
    type=int,
    default=2048,
    show_default=True,
    help="Most mel frames per sentence (12.5 ms each; 2048 ≈ 25 s).",
)
@click.option(
    "--opt-level",
    default=None,
    help="; ".join(f"{b.name}: {' | '.join(b.levels)} (default {b.default_level})" for b in BACKENDS if b.levels),
)
@click.option("--no-fusions", is_flag=True, help="onnxruntime: skip the transformer optimizer on the acoustic model.")
@click.option(
    "--int8-calib",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="tensorrt --precision int8: folder of .npz calibration batches named after the graph inputs.",
)
@threads_option
@force_option
@json_option
def compile_cmd(
    source: str,
    output: str,
    backend: str,
    precision: str,
    max_seq_len: int,
    max_frames: int,
    opt_level: str | None,
    no_fusions: bool,
    int8_calib: str | None,
    threads: int | None,
    force: bool,
    as_json: bool,
) -> None:
    from speedy.stages.compile import CompileConfig, compile_artifact

    config = CompileConfig(
        backend=backend,
        threads=threads,
        precision="fp32" if precision == "f32" else precision,
        max_seq_len=max_seq_len,
        max_frames=max_frames,
        opt_level=opt_level,
        transformer_fusions=not no_fusions,
        int8_calib=Path(int8_calib) if int8_calib else None,
    )
    manifest = compile_artifact(Path(source), Path(output), config, force=force, progress=console.log)
    notes = manifest.extra.get("compile", {})
    parity = manifest.extra.get("parity", [])
    if as_json:
        emit_json(
            {
                "output": output,
                "backend": backend,
                "family": manifest.family,
                "components": {
                    n: {"file": c.file, "format": c.format, "precision": c.precision}
                    for n, c in manifest.components.items()
                },
                "notes": notes,
                "parity": parity,
            }
        )
        return
    for name, c in manifest.components.items():
        console.print(f"{name}: {c.file} ({c.format}, {c.precision})")
        fused = notes.get(name, {}).get("transformer_optimizer", {})
        if fused.get("fusions"):
            state = "kept" if fused.get("kept") else f"dropped ({fused.get('reason', '')})"
            ops = ", ".join(f"{k}×{v}" for k, v in fused["fusions"].items())
            console.print(f"  fusions {ops}: {state}")
        fidelity = notes.get(name, {}).get("fidelity")
        if fidelity:  # openvino bf16 / int8: the gross-loss figures (speedy.stages.compile_openvino)
            figs = ", ".join(
                f"{k} {v:g} (budget {fidelity['budget'][k]:g})" for k, v in fidelity.items() if k != "budget"
            )
            console.print(f"  vs FP32: {figs}")
        if notes.get(name, {}).get("reason"):
            console.print(f"  [yellow]{notes[name]['reason']}[/yellow]")
    for p in parity:
        unit = "dB SNR" if p["kind"] == "snr_db" else "max |Δ|"
        # None: not comparable, a reduced-precision model moved a duration, so the lengths differ
        value = "n/a (the lengths differ)" if p["value"] is None else f"{p['value']:.3g} {unit}"
        console.print(f"parity {p['component']}.{p['output']}: {value} (tolerance {p['tol']:g})")
    console.print(f"wrote {output}")
