"""Distillation: a smaller student vocoder trained from its teacher (the voice's own vocoder).

`distill(source, out, config) -> Manifest` is the stage (see `speedy.distill.stage`). Pieces: `student`
(the student space: cut + least-squares re-fit from the teacher), `data` (teacher pairs from the g2pL text,
cached), `losses` (multi-resolution STFT, sub-band, log-mel, hint), `train` (the resumable loop).
Nothing heavy is imported here: torch loads only when a function needs it.
"""

from __future__ import annotations

from speedy.distill.stage import DistillConfig, checkpoint_path, distill

__all__ = ["DistillConfig", "checkpoint_path", "distill"]
