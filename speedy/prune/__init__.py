"""Structured pruning: real tensor surgery on the acoustic model and vocoder, then self-distillation.

`prune(source, out, config) -> Manifest` is the stage (see `speedy.prune.stage`). Pieces:
`surgery` (dependency groups, cutting), `criteria` (pluggable importance), `plan` (how many units each
group keeps), `recover` (distillation with checkpoints), `family` (the pruned family's loader).
Nothing heavy is imported here: torch loads only when a function needs it.
"""

from __future__ import annotations

from speedy.prune.stage import PruneConfig, checkpoint_path, prune

__all__ = ["PruneConfig", "checkpoint_path", "prune"]
