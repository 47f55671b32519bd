"""`speedy prune`: torch artifact → smaller torch artifact (structured pruning + self-distillation)."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, force_option, json_option, threads_option


@click.command()
@click.argument("source", type=click.Path(), required=False)
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@click.option(
    "--target-params",
    type=float,
    default=0.7,
    show_default=True,
    help="Parameters kept per pruned component, in (0, 1): 0.7 = 30 % fewer.",
)
@click.option("--component", default="acoustic", show_default=True, help="acoustic | vocoder | both")
@click.option("--criterion", default="taylor", show_default=True, help="l1 | l2 | random | activation | taylor")
@click.option(
    "--allocation",
    default="global",
    show_default=True,
    help="global: fewest important units per parameter across layers; uniform: same fraction everywhere.",
)
@click.option(
    "--kinds",
    default=None,
    help="Structures to shrink, comma-separated (acoustic: heads,ffn,predictor,postnet; "
    "vocoder: vocoder-pre,vocoder-stream,vocoder-inner). Default: acoustic heads,ffn,postnet; vocoder all.",
)
@click.option(
    "--recover-steps",
    type=int,
    default=2000,
    show_default=True,
    help="Self-distillation steps after pruning and re-fit (0 = none; about 0.12 s a step on 2 cores).",
)
@click.option("--lr", type=float, default=3e-5, show_default=True, help="Peak learning rate of the recovery.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True, help="Steps between checkpoints.")
@click.option(
    "--calib-sentences",
    type=int,
    default=300,
    show_default=True,
    help="Calibration utterances (at most; the corpus has about 300) for the criterion, the "
    "least-squares re-fit and recovery.",
)
@click.option("--round-to", type=int, default=8, show_default=True, help="Channel counts become multiples of this.")
@threads_option
@force_option
@json_option
def prune(
    source: str | None,
    output: str,
    target_params: float,
    component: str,
    criterion: str,
    allocation: str,
    kinds: str | None,
    recover_steps: int,
    lr: float,
    checkpoint_every: int,
    calib_sentences: int,
    round_to: int,
    threads: int | None,
    force: bool,
    as_json: bool,
) -> None:
    """Prune a torch artifact (default: the built-in voice) for real: smaller tensors, not masks.

    \b
    Removes attention heads and FFN channels (encoder/decoder), variance-predictor and postnet channels
    (acoustic), conv channels (vocoder), ranked by --criterion, until --target-params is met; then, with
    --recover-steps, distils the pruned model from the unpruned one on calibration text. Interrupted
    recoveries resume when the same command is run again (checkpoint beside the output). The output
    is a torch artifact: run 'speedy export' (and 'speedy quantize') on it.
    """
    from speedy.commands.common import progress_bar
    from speedy.prune import PruneConfig
    from speedy.prune import prune as run_prune

    cfg = PruneConfig(
        target_params=target_params,
        component=component,
        criterion=criterion,
        allocation=allocation,
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else None,
        recover_steps=recover_steps,
        lr=lr,
        checkpoint_every=checkpoint_every,
        calib_sentences=calib_sentences,
        round_to=round_to,
        threads=threads,
    )
    with progress_bar(not as_json and recover_steps > 0, "recovering", total=recover_steps) as bar:

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(completed=step, description=f"recovering  loss {loss:.4f}")

        manifest = run_prune(
            Path(source) if source else None, Path(output), cfg, force=force, progress=console.log, on_step=on_step
        )
    report = dict(manifest.extra.get("prune", {}))
    if as_json:
        emit_json({"output": output, "family": manifest.family, "report": report})
        return
    for c in cfg.components:
        r = report.get(c, {})
        b, a = r.get("params_before", 0), r.get("params_after", 0)
        console.print(f"{c}: {b / 1e6:.2f} M → {a / 1e6:.2f} M parameters ({1 - a / max(b, 1):.0%} fewer)")
    rec = report.get("recovery", {})
    if rec.get("steps"):
        console.print(f"recovery: {rec['steps']} steps in {rec['seconds']:.0f} s, final loss {rec['final_loss']}")
    ev = report.get("eval", {})
    if "mcd_db" in ev:
        console.print(
            f"vs unpruned ({ev['sentences']} eval utterances): MCD {ev['mcd_db']:.3f} dB, "
            f"{ev['mcd_spectral_db']:.3f} dB with the unpruned durations forced, "
            f"mel L1 {ev['mel_l1']:.4f}"
        )
    console.print(f"wrote {output} (next: speedy export {output} -o …)")
