"""`speedy quantize`: FP32 ONNX artifact → INT8 (dynamic / static QDQ), FP16 or mixed precision."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, force_option, json_option


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@click.option("--recipe", required=True, help="int8-dynamic | int8-static | int8-hybrid | fp16 | mixed")
@click.option("--calibration", "method", default=None, help="Static calibration: minmax | entropy | percentile.")
@click.option("--calib", "calib_file", type=click.Path(dir_okay=False), default=None,
              help="Chinese text file, one sentence a line (default: calibration/calib.txt).")
@click.option("--calib-sentences", type=int, default=None, help="How many calibration sentences to use.")
@click.option("--op-types", default=None,
              help="Override the recipe's op types: 'Conv,MatMul' or 'acoustic=MatMul;vocoder=Conv,ConvTranspose'.")
@click.option("--max-mcd", type=float, default=None, help="Quality budget in dB for --recipe mixed.")
@click.option("--per-channel/--per-tensor", default=None, help="Weight scales per output channel (default) or tensor.")
@click.option("--sensitivity", type=click.Path(dir_okay=False), default=None,
              help="A 'speedy analyze --json' report: mixed ranks layers by it instead of measuring each group.")
@force_option
@json_option
def quantize(source: str, output: str, recipe: str, method: str | None, calib_file: str | None,
             calib_sentences: int | None, op_types: str | None, max_mcd: float | None, per_channel: bool | None,
             sensitivity: str | None, force: bool, as_json: bool) -> None:
    """Quantize an FP32 ONNX artifact with a named recipe.

    \b
    Recipes (op types per component are part of the recipe; --op-types overrides):
      int8-dynamic  INT8 weights, activations quantized at run time (acoustic frame-rate Conv)
      int8-static   calibrated QDQ, per-channel weights (acoustic frame-rate Conv, vocoder stack Conv)
      int8-hybrid   acoustic frame-rate convs rewritten as unfold + MatMul, then per-channel INT8 weights
                    with activations quantized at run time (INT8 GEMM); durations and vocoder stay float
      fp16          FP16 weights/compute, float32 inputs and outputs
      mixed         int8-static, keeping the most sensitive layers float within --max-mcd dB
    Calibration text runs through the real frontend and FP32 acoustic model (the vocoder sees real mels).
    """
    from speedy.corpus import read_corpus_file
    from speedy.stages.quantize import QuantRecipe, parse_op_types
    from speedy.stages.quantize import quantize as run_quantize

    overrides: dict[str, object] = {"calibration": method, "calib_sentences": calib_sentences, "max_mcd": max_mcd,
                                    "per_channel": per_channel}
    if op_types is not None:
        overrides["op_types"] = parse_op_types(op_types)
    rec = QuantRecipe.named(recipe, **overrides)
    text = None
    if calib_file is not None:
        text = read_corpus_file(calib_file, "--calib")
    manifest = run_quantize(Path(source), Path(output), rec, calibration_text=text, force=force, progress=console.log,
                            sensitivity=Path(sensitivity) if sensitivity else None)
    info = {"output": output, "recipe": rec.name,
            "components": {n: {"precision": c.precision, "size_bytes": (Path(output) / c.file).stat().st_size}
                           for n, c in manifest.components.items()},
            "report": manifest.extra.get("quantize", {})}
    if as_json:
        emit_json(info)
    else:
        for n, c in info["components"].items():
            console.print(f"{n}: {c['precision']}, {c['size_bytes'] / 1e6:.2f} MB")
        console.print(f"wrote {output}")
