"""`speedy compile`: an artifact → the same voice prepared for one runtime backend (onnxruntime, tensorrt, torch,
openvino)."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, force_option, json_option, threads_option


@click.command("compile")
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@click.option(
    "--backend",
    type=click.Choice(["onnxruntime", "tensorrt", "torch", "openvino"]),
    default="onnxruntime",
    show_default=True,
    help="Runtime to compile for (see above for the input each one takes).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "f32", "fp16", "bf16", "int8"]),
    default="fp32",
    show_default=True,
    help="tensorrt: fp32 | fp16 | int8 (int8 needs --int8-calib; so does an INT8 QDQ input); openvino: fp32 | "
    "bf16 (needs AVX512_BF16 or AMX) | int8 (NNCF, calibrated on the calibration text). f32 = fp32. The other "
    "backends keep the source's precision (use 'speedy quantize' first).",
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
    help="onnxruntime: basic | extended (default) | all; tensorrt: builder level 0-5 (default 3).",
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
    """Compile an artifact for one runtime backend, checked against its source.

    \b
    onnxruntime  ONNX artifact in; each graph optimised offline (the acoustic model also through
                 ONNX Runtime's transformer fusions when they keep its output in tolerance), so the
                 runtime loads it without optimising again. --threads is stored as its default.
    tensorrt     ONNX artifact in; TensorRT engines with one profile from --max-seq-len /
                 --max-frames. Needs 'pip install openspeedy[tensorrt]' and a CUDA GPU (exit 3 otherwise).
    torch        torch artifact in (e.g. the default voice's); torch.export programs (.pt2) with
                 dynamic token and frame counts.
    openvino     FP32 ONNX artifact in; OpenVINO IR (.xml + .bin) run at fp32, bf16 or int8 (NNCF).
                 Needs 'pip install openspeedy[openvino]' (exit 3 otherwise).

    Every compiled component is run against its source; a difference beyond the family's export
    tolerance fails (exit 3). Reduced precisions (fp16, bf16, int8) are reported, not held to it; openvino
    bf16 / int8 still fail on a gross loss (see speedy.stages.compile_openvino).
    """
    from speedy.stages.compile import CompileConfig, compile_artifact

    config = CompileConfig(
        backend=backend,
        threads=threads,
        precision={"f32": "fp32"}.get(precision, precision),
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
