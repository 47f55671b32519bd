"""`speedy info`: show an artifact folder's manifest, sizes, precisions and lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from speedy.commands.common import console, emit_json, json_option


@click.command()
@click.argument("folder", type=click.Path())
@json_option
def info(folder: str, as_json: bool) -> None:
    """Validate and describe an artifact folder (exit 3 if it is not a valid one)."""
    from speedy.artifacts import component_size, folder_size, read_manifest
    from speedy.runtime import isa_warnings

    root = Path(folder)
    m = read_manifest(root)
    comps: dict[str, dict[str, Any]] = {
        name: {
            "file": c.file,
            "format": c.format,
            "precision": c.precision,
            "size_bytes": component_size(root, c),
            "inputs": list(c.inputs),
            "outputs": list(c.outputs),
        }
        for name, c in m.components.items()
    }
    data = {
        "folder": str(root),
        "family": m.family,
        "format_version": m.format_version,
        "source": m.source.__dict__,
        "size_bytes": folder_size(root, m),
        "components": comps,
        "audio": m.audio.__dict__,
        "voices": list(m.controls.voices),
        "default_voice": m.default_voice,
        "emotions": dict(m.controls.emotions),
        "warnings": (cpu_lines := isa_warnings(m)),
        "lineage": [
            {"stage": s.stage, "time": s.time, "seconds": s.seconds, "options": dict(s.options)} for s in m.lineage
        ],
    }
    if as_json:
        emit_json(data)
        return
    from rich.table import Table

    t = Table(title=f"{root} — {m.family}")
    for col in ("component", "file", "format", "precision", "size"):
        t.add_column(col)
    for name, c in comps.items():
        t.add_row(name, c["file"], c["format"], c["precision"], f"{c['size_bytes'] / 1e6:.2f} MB")
    console.print(t)
    console.print(f"voices ({len(m.controls.voices)}, default {m.default_voice}): " + ", ".join(m.controls.voices))
    for line in cpu_lines:
        console.print(f"[yellow]warning: {line}[/yellow]")
    console.print(
        "lineage: " + " → ".join(f"{s.stage}({', '.join(f'{k}={v}' for k, v in s.options.items())})" for s in m.lineage)
    )
