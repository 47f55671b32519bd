"""What the host-loop families (sambert, ttskit) share: wrapping a graph as a runner. Torch-free.

The runtime opens a host loop's graphs (speedy.runtime.load_runner) and the family's ``compose`` hook runs
them; compile checks the loop in speedy.stages.loop_check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from speedy.errors import ModelError

GraphRunner = Callable[[Mapping[str, np.ndarray]], Sequence[np.ndarray]]
"""One graph of a host loop: feeds by input name -> outputs in graph order."""


def as_runner(graph: Any, family: str) -> GraphRunner:
    """Wrap an ``onnxruntime.InferenceSession`` (anything with ``run(None, feeds)``) or pass a callable
    through; ModelError naming `family` for anything else."""
    if hasattr(graph, "run") and hasattr(graph, "get_inputs"):
        return lambda feeds: graph.run(None, dict(feeds))
    if callable(graph):
        return graph
    raise ModelError(f"{family} graph: expected an InferenceSession or a callable, got {type(graph).__name__}")
