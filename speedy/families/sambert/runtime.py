"""The Sambert-HifiGan acoustic runner: the host loop over an artifact's per-piece graphs. Imports no torch.

A Sambert artifact has no single ``acoustic`` component: its manifest lists the six acoustic graphs
(``encoder`` … ``postnet``) and the ``vocoder`` as components and says in ``extra["graphs"]`` how they
chain. :func:`speedy.runtime.load_runner` opens the acoustic graphs, each by the backend its component format
names (a compiled graph keeps its recorded optimisation level and thread count), and hands them to
:func:`compose` (the sambert FamilySpec's hook), which runs them in :class:`speedy.families.sambert.loop.SambertLoop`;
the vocoder loads like any other component.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import GraphControls
from speedy.errors import ModelError
from speedy.families.sambert.loop import GRAPH_NAMES, SambertInputs, SambertLoop, SambertLoopConfig

_LOGGER = logging.getLogger(__name__)

RUNTIME_NAME = "sambert-loop"
ACOUSTIC_GRAPHS = GRAPH_NAMES[:-1]


class SambertAcousticRunner:
    """``(inputs, controls) -> (mel, durations)`` over the Sambert graphs.

    Args of ``__call__``:
        inputs: :class:`SambertInputs` of one sentence (streams of shape ``(T,)``).
        controls: :class:`speedy.controls.GraphControls` (speed, pitch, pitch_range, energy). Speed divides
            the predicted durations; pitch_range scales the (speaker-normalised) pitch contour around the
            speaker's mean. Pitch and energy are not model inputs for this family: the manifest's
            ``pitch_graph_semitones`` (0, 0) sends every pitch shift to the Synthesizer's resampling and
            ``energy_control`` "gain" makes it scale the waveform, so both are ignored here.

    Returns:
        mel ``(1, L, n_mels)`` float32 (KAN-TTS normalisation, what the vocoder takes) and durations
        ``(1, T)`` int64 frames per symbol.
    """

    def __init__(self, loop: SambertLoop) -> None:
        self.loop = loop

    def __call__(self, inputs: SambertInputs, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        res = self.loop.acoustic(inputs, (controls.pitch_range, 0.0, 1.0, 0.0), controls.speed)
        return res.mel[None].astype(np.float32, copy=False), res.durations[None].astype(np.int64, copy=False)


def loop_config(manifest: Manifest) -> SambertLoopConfig:
    """The host-loop settings recorded in ``extra["graphs"]["loop"]``."""
    graphs = manifest.extra.get("graphs") or {}
    data = graphs.get("loop")
    if not isinstance(data, Mapping):
        raise ModelError("sambert manifest: extra['graphs']['loop'] is missing")
    try:
        return SambertLoopConfig(**dict(data))
    except TypeError as e:
        raise ModelError(f"sambert manifest: bad extra['graphs']['loop'] ({e})") from None


def compose(manifest: Manifest, graphs: Mapping[str, Any]) -> SambertAcousticRunner:
    """The acoustic runner over the opened acoustic graphs (the FamilySpec ``compose`` hook;
    :func:`speedy.runtime.load_runner` opens them, each with its recorded level and threads)."""
    return SambertAcousticRunner(SambertLoop(dict(graphs), loop_config(manifest)))
