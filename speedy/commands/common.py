"""Helpers shared by command modules: JSON output, rich console on stderr, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

#: Human output goes to stderr so that stdout carries only the --json object.
console = Console(stderr=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


def json_out_option(what: str) -> Any:
    """`--json-out FILE`: also write the JSON object to a file (`--json` alone prints it on stdout)."""
    return click.option(
        "--json-out",
        "json_out",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        callback=take_alias,
        help=f"Write {what} as JSON to FILE (written only when the run succeeds).",
    )


def refuse_old_json_path(paths: tuple[str, ...] | list[str]) -> None:
    """`--json` took a FILE before it became a flag; the old `--json out.json` leaves `out.json` as an
    argument. Say so in one line instead of calling `out.json` an unknown artifact."""
    from pathlib import Path

    from speedy.errors import InputError

    for p in paths:
        if p.endswith(".json") and not Path(p).is_dir():
            raise InputError(f"{p}: --json is a flag now (one JSON object on stdout); write a file with --json-out {p}")


force_option = click.option("--force", is_flag=True, help="Replace an existing output folder.")
threads_option = click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=None,
    help="Intra-op threads for ONNX Runtime / torch (default: all cores).",
)


def hidden_alias(old: str, dest: str, type: Any = None) -> Any:
    """A hidden `old` spelling of the option whose parameter is `dest`, kept for a release after a rename.

    The option named `dest` must take `callback=take_alias`: click processes options given on the
    command line first, so the alias's value is waiting in `ctx.meta` when the new option is resolved.
    """

    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.meta[f"speedy.alias.{dest}"] = (old, value)
        return value

    return click.option(
        old,
        "old_" + old.lstrip("-").replace("-", "_"),  # its own name, even where old == the new option's dest
        type=type,
        default=None,
        hidden=True,
        expose_value=False,
        callback=keep,
        help=f"Old spelling, kept for one release (see --help for the current name of {dest}).",
    )


def take_alias(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of a renamed option: its hidden old spelling's value, when that was given instead."""
    given = ctx.meta.get(f"speedy.alias.{param.name}")
    if given is None:
        return value
    if ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError(f"give {given[0]} or {max(param.opts, key=len)}, not both")
    return given[1]


def ray_option(purpose: str) -> Any:
    """`--ray [ADDRESS]`: a local Ray when the flag has no value, else a cluster address ("local" stands for
    the former). `purpose` starts the help text."""
    return click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="local",
        default=None,
        metavar="[ADDRESS]",
        help=f"{purpose}: a local Ray when no ADDRESS is given, else a cluster (e.g. 'auto', ray://head:10001).",
    )


def emit_json(obj: Any) -> None:
    """Write one JSON object to stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(enabled: bool, description: str, total: float | None = None) -> Iterator[Any]:
    """A rich progress bar on a terminal (stderr), or a no-op object when disabled / not a TTY."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not enabled or not console.is_terminal:
        yield _NoProgress()
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as p:
        task = p.add_task(description, total=total)
        yield _Bound(p, task)


@contextmanager
def library_progress(enabled: bool) -> Iterator[None]:
    """Draw the library's `speedy.progress.report` calls as rich progress bars (one per description) on a
    terminal; nothing when disabled (--json, -q) or not a TTY."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from speedy.progress import listening

    if not enabled or not console.is_terminal or console.quiet:
        yield
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as p:
        tasks: dict[str, Any] = {}

        def sink(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = p.add_task(description, total=total)
            p.update(tasks[description], completed=done, total=total)

        with listening(sink):
            yield


class _NoProgress:
    def advance(self, amount: float = 1.0) -> None: ...

    def update(self, **kw: Any) -> None: ...


class _Bound:
    def __init__(self, progress: Any, task: Any) -> None:
        self.p, self.t = progress, task

    def advance(self, amount: float = 1.0) -> None:
        self.p.advance(self.t, amount)

    def update(self, **kw: Any) -> None:
        self.p.update(self.t, **kw)
