"""The `speedy` click group: registers speedy/commands/* lazily and maps errors to exit codes."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any

import click

from speedy.errors import SpeedyError

EXIT_CODES_HELP = """\b
Exit codes:
  0  ok
  1  unexpected error (one line; --debug shows the traceback)
  2  bad usage or bad input (text, options, files; serve's port in use)
  3  missing or bad model / artifact (checksum, manifest, missing extra)
  4  output cannot be written"""

#: command name -> "module:attribute". Commands import their heavy dependencies inside the call.
COMMANDS: dict[str, str] = {
    "synth": "speedy.commands.synth:synth",
    "export": "speedy.commands.export:export",
    "quantize": "speedy.commands.quantize:quantize",
    "compile": "speedy.commands.compile:compile_cmd",
    "trace": "speedy.commands.trace:trace",
    "info": "speedy.commands.info:info",
    "bench": "speedy.commands.bench:bench",
    "serve": "speedy.commands.serve:serve",
    "analyze": "speedy.commands.analyze:analyze",
    "prune": "speedy.commands.prune:prune",
    "distill": "speedy.commands.distill:distill",
    "batch": "speedy.commands.batch:batch",
    "loadtest": "speedy.commands.loadtest:loadtest",
    "batch-bench": "speedy.commands.batch_bench:batch_bench",
    "bench-frontend": "speedy.commands.frontend:bench_frontend",
    "train-polyphones": "speedy.commands.frontend:train_polyphones",
}


class SpeedyGroup(click.Group):
    """A group whose subcommands load on demand and whose errors become one line + an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:  # command not built yet
                return None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpeedyError as e:
            _fail(ctx, str(e), e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", 130)
        except Exception as e:  # the one place that turns unexpected errors into one line
            _fail(ctx, f"unexpected error: {type(e).__name__}: {e}", 1)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    ctx.exit(code)


@click.group(cls=SpeedyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr: no progress, no 'wrote', no tables."
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also show other libraries' messages (torch export warnings, ONNX Runtime quantizer/optimizer logs).",
)
@click.version_option(package_name="openspeedy", prog_name="speedy")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool, verbose: bool) -> None:
    """OpenSpeedy: make text-to-speech models small and fast, and serve them.

    Each stage reads an artifact folder (model files + manifest.json) and writes a new one:
    export → quantize → compile / trace → synth, bench, serve. Every command is non-interactive
    and --json means one machine-readable object on stdout (logs go to stderr; -q: warnings and errors
    only, -v: other libraries' messages too).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("jieba", "numba", "matplotlib", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from speedy import noise
    from speedy.commands.common import console

    noise.configure(verbose=verbose or debug, quiet=quiet)
    console.quiet = quiet


if __name__ == "__main__":  # pragma: no cover
    main()
