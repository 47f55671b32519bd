"""`speedy distill`: torch artifact → the same voice with a smaller student vocoder, trained from its teacher."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import click

from speedy.commands.common import console, emit_json, force_option, json_option, threads_option


@click.command()
@click.argument("source", type=click.Path(), required=False)
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write (a torch artifact).")
@click.option(
    "--component",
    type=click.Choice(["vocoder", "acoustic", "both"]),
    default="vocoder",
    show_default=True,
    help="What gets a student. Only the vocoder has a student space so far.",
)
@click.option(
    "--width",
    type=float,
    default=0.5,
    show_default=True,
    help="Fraction of every channel group kept, in (0, 1]; multiply-adds scale about as its square.",
)
@click.option(
    "--inner-width",
    type=float,
    default=None,
    help="Fraction of the residual blocks' inner channels (default: --width).",
)
@click.option("--layers", type=int, default=None, help="Residual blocks kept per stack (default: the teacher's).")
@click.option("--steps", type=int, default=None, help="Training steps (default: 2000 unless --minutes is given).")
@click.option(
    "--minutes", type=float, default=None, help="Training budget in minutes, turned into steps by timing a few."
)
@click.option(
    "--lr", type=float, default=5e-4, show_default=True, help="Peak Adam learning rate (warm-up, cosine decay)."
)
@click.option("--batch", type=int, default=8, show_default=True, help="Mel crops per step.")
@click.option("--frames", type=int, default=32, show_default=True, help="Mel frames per crop (32 ≈ 0.4 s at 24 kHz).")
@click.option(
    "--sentences",
    type=int,
    default=600,
    show_default=True,
    help="Training sentences from the g2pL train split (the teacher speaks them once; cached).",
)
@click.option(
    "--hint-weight",
    type=float,
    default=1.0,
    show_default=True,
    help="Starting weight of the layer-wise hint loss (each stage's output against the teacher's).",
)
@click.option("--checkpoint-minutes", type=float, default=3.0, show_default=True, help="Wall time between checkpoints.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="Training device.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint beside the output.")
@click.option("--no-check", is_flag=True, help="Skip the held-out check (MCD, DNSMOS) at the end.")
@click.option("--seed", type=int, default=0, show_default=True, help="Data order and initialisation.")
@threads_option
@force_option
@json_option
def distill(
    source: str | None,
    output: str,
    component: str,
    width: float,
    inner_width: float | None,
    layers: int | None,
    steps: int | None,
    minutes: float | None,
    lr: float,
    batch: int,
    frames: int,
    sentences: int,
    hint_weight: float,
    checkpoint_minutes: float,
    device: str,
    resume: bool,
    no_check: bool,
    seed: int,
    threads: int | None,
    force: bool,
    as_json: bool,
) -> None:
    """Train a smaller student vocoder from a torch artifact's own (default: the built-in voice).

    \b
    The student has the teacher's architecture with --width of its channels and --layers of its residual
    blocks. It starts from the teacher's weights (channels kept by L1 norm, every layer re-fitted by least
    squares on teacher activations), then trains on pairs the teacher makes from the g2pL text: layer-wise
    hint losses first, multi-resolution STFT, sub-band, log-mel and waveform losses throughout.
    Checkpoints go beside the output every --checkpoint-minutes; after Ctrl-C (exit 3) the same command
    with --resume continues where it stopped, batch for batch. At the end it reports vocoder MCD and
    DNSMOS against the teacher on held-out sentences (g2pL dev split). The output is a torch artifact:
    run 'speedy export' (and 'speedy quantize') on it.
    """
    from speedy.commands.common import progress_bar
    from speedy.distill import DistillConfig
    from speedy.distill import distill as run_distill

    cfg = DistillConfig(
        component=component,
        width=width,
        inner_width=inner_width,
        layers=layers,
        steps=steps if steps is not None or minutes is not None else 2000,
        minutes=minutes,
        sentences=sentences,
        frames=frames,
        lr=lr,
        batch=batch,
        hint_weight=hint_weight,
        checkpoint_minutes=checkpoint_minutes,
        seed=seed,
        device=device,
        threads=threads,
        evaluate=not no_check,
    )
    started: list[tuple[int, float]] = []
    with progress_bar(not as_json, "training", total=None) as bar:

        def on_step(step: int, total: int, losses: Mapping[str, float]) -> None:
            now = time.perf_counter()
            if not started:
                started.append((step, now))
            first_step, t0 = started[0]
            rate = (step - first_step) / (now - t0) if now > t0 else 0.0
            bar.update(completed=step, total=total, description=describe(step, total, losses, rate))

        manifest = run_distill(
            Path(source) if source else None,
            Path(output),
            cfg,
            force=force,
            resume=resume,
            progress=None if as_json else console.log,
            on_step=on_step,
        )
    report = dict(manifest.extra.get("distill", {}))
    if as_json:
        emit_json({"output": output, "family": manifest.family, "report": report})
        return
    (pt, ps), (mt, ms) = report["params"], report["macs_per_frame"]
    console.print(
        f"{report['component']} {report['shape']}: {pt / 1e6:.2f} M → {ps / 1e6:.2f} M parameters, "
        f"{ms / mt:.2f}× the teacher's multiply-adds; {report['steps']} steps in {report['train_seconds']:.0f} s"
    )
    console.print(f"wrote {output} (next: speedy export {output} -o …)")


def describe(step: int, total: int, losses: Mapping[str, float], steps_per_s: float) -> str:
    """The progress line: step, smoothed losses (total, full-band STFT, hint while it lasts), steps/s."""
    shown = "  ".join(f"{k} {losses[k]:.3f}" for k in ("total", "stft", "hint") if k in losses)
    return f"step {step}/{total}  {shown}  {steps_per_s:.1f} steps/s"
