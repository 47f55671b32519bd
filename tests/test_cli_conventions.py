"""One set of CLI conventions, checked on every command's options (issue 29).

- `--json` is a flag everywhere and means "print one JSON object on stdout"; a file is `--json-out FILE`;
- every option (hidden aliases included) has help text, and `speedy COMMAND --help` works;
- the shared options are spelled alike: threads, workers, output, force, voice — an option whose
  parameter is one of those names must use the one spelling (old spellings only as hidden aliases).
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from speedy.cli import COMMANDS, main

#: parameter name → the visible spellings allowed for it (old ones may exist as hidden aliases)
SHARED = {
    "threads": {("--threads",), ("--threads-per-worker",)},
    "workers": {("--workers",)},
    "output": {("-o", "--output")},
    "outdir": {("-o", "--output")},
    "force": {("--force",)},
    "voice": {("--voice",)},
    "as_json": {("--json",)},
    "json_out": {("--json-out",)},
}
#: concepts whose options must go by one of the SHARED spellings, whatever their parameter is called
SPELLED = {
    "--json": "as_json",
    "--json-out": "json_out",
    "--force": "force",
    "--voice": "voice",
    "--workers": "workers",
    "--output": "output",
}


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(main)
    found = [(name, main.get_command(ctx, name)) for name in COMMANDS]
    missing = [name for name, cmd in found if cmd is None]
    assert not missing, f"commands that do not load: {missing}"
    return [(name, cmd) for name, cmd in found if cmd is not None]


def _options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option) and "--help" not in p.opts]


COMMAND_NAMES = list(COMMANDS)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help_works_and_every_option_is_described(name: str) -> None:
    """`speedy NAME --help` exits 0, and every option, hidden or not, says what it does."""
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    cmd = dict(_commands())[name]
    undescribed = ["/".join(o.opts) for o in _options(cmd) if not (o.help or "").strip()]
    assert not undescribed, f"{name}: options without help text: {undescribed}"
    assert (cmd.help or "").strip(), f"{name} has no description"


def test_the_group_options_are_described() -> None:
    undescribed = ["/".join(o.opts) for o in _options(main) if not (o.help or "").strip()]
    assert not undescribed


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_json_is_a_flag_and_files_are_json_out(name: str) -> None:
    """Where a command has --json it is a flag (stdout); a JSON file is only ever --json-out FILE."""
    for opt in _options(dict(_commands())[name]):
        if "--json" in opt.opts:
            assert opt.is_flag and opt.name == "as_json", f"{name}: --json must be a flag"
        if "--json-out" in opt.opts:
            assert not opt.is_flag and opt.name == "json_out", f"{name}: --json-out takes FILE"


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_shared_options_are_spelled_alike(name: str) -> None:
    """threads, workers, output, force, voice and json go by one spelling in every command."""
    for opt in _options(dict(_commands())[name]):
        if opt.hidden:
            continue
        visible = tuple(opt.opts)
        if opt.name in SHARED:
            assert visible in SHARED[opt.name], f"{name}: {opt.name} spelled {visible}"
        for spelling, concept in SPELLED.items():
            if spelling in visible:
                assert visible in SHARED[concept], f"{name}: {spelling} spelled {visible}"
        # a concept under another name, e.g. --out for an output or --workers-threads for workers
        for word in ("--out", "--workers-threads", "--threads-per-replica", "--json-file", "--outdir"):
            assert word not in visible, f"{name}: {word} is an old spelling; keep it only as a hidden alias"


def test_hidden_aliases_still_work_and_collide_clearly() -> None:
    """Old spellings stay usable for a release: serve's --workers-threads reaches --workers' check, and an
    old and a new spelling together is a usage error naming both."""
    r = CliRunner().invoke(main, ["serve", "--workers-threads", "999"])
    assert r.exit_code == 2 and "--workers must be in [1, 64], got 999" in r.output, r.output
    r = CliRunner().invoke(main, ["serve", "--workers-threads", "2", "--workers", "3"])
    assert r.exit_code == 2 and "--workers-threads" in r.output and "--workers" in r.output, r.output


def test_quantize_recipe_list_matches_the_stage() -> None:
    """quantize --help lists the stage's recipes plus auto (an unknown recipe's message names the same)."""
    from speedy.commands.quantize import RECIPE_CHOICES
    from speedy.stages.quantize import RECIPES

    assert set(RECIPE_CHOICES) == {*RECIPES, "auto"} and len(RECIPE_CHOICES) == len(RECIPES) + 1
