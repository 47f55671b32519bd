"""Control validation and emotion presets (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speedy.controls import (
    DEFAULT_CONTROLS,
    EMOTION_PRESETS,
    GraphControls,
    SynthesisOptions,
    effective_controls,
    resolve_emotion,
)
from speedy.errors import InputError, ModelError


@pytest.mark.parametrize("field, value", [("speed", 0.0), ("speed", -1.0), ("speed", 2.5), ("speed", math.nan),
                                          ("pitch", 12.5), ("pitch", math.inf), ("pitch_range", -0.1),
                                          ("energy", 0.4), ("energy", "loud")])
def test_out_of_range_controls_name_the_range(field: str, value: object) -> None:
    """Bad control values raise InputError naming the field and its range."""
    with pytest.raises(InputError, match=rf"{field} must be"):
        SynthesisOptions(**{field: value})


def test_unknown_emotion_lists_valid_ones() -> None:
    """An unknown emotion lists the four valid ones."""
    with pytest.raises(InputError, match="中性.*喜悦.*悲伤.*愤怒"):
        SynthesisOptions(emotion="兴奋")


def test_english_aliases() -> None:
    """English names map to the Chinese presets."""
    assert resolve_emotion("happy") is EMOTION_PRESETS["喜悦"]
    assert resolve_emotion(None) is EMOTION_PRESETS["中性"]


def test_presets_compose_and_clip() -> None:
    """Emotion presets multiply/add onto user controls and are clipped to the ranges."""
    c = effective_controls(SynthesisOptions(speed=2.0, pitch=12.0, emotion="愤怒"))
    assert c.speed == 2.0 and c.pitch == 12.0
    sad = effective_controls(SynthesisOptions(emotion="悲伤"))
    assert sad.speed < 1 and sad.pitch < 0 and sad.pitch_range < 1 and sad.energy < 1 and sad.pause > 1


def test_preset_directions_follow_the_literature() -> None:
    """Joy and anger raise pitch and widen range; sadness lowers, narrows, slows and softens."""
    p = EMOTION_PRESETS
    assert p["喜悦"].pitch > 0 and p["喜悦"].pitch_range > 1 and p["喜悦"].speed > 1
    assert p["愤怒"].energy > p["喜悦"].energy > 1 and p["愤怒"].pitch_range > 1
    assert p["悲伤"].pitch < 0 and p["悲伤"].pitch_range < 1 and p["悲伤"].speed < 1 and p["悲伤"].energy < 1


def test_graph_controls_feed_by_name() -> None:
    """A graph's control inputs are fed by their names, whatever order the graph lists them in."""
    c = GraphControls(speed=0.8, pitch=2.0, pitch_range=1.3, energy=1.2)
    feeds = c.feeds(("energy", "speed"))
    assert list(feeds) == ["energy", "speed"]
    assert feeds["energy"].dtype == np.float32 and feeds["energy"].shape == (1,)
    assert feeds["speed"][0] == np.float32(0.8)
    assert DEFAULT_CONTROLS.values() == (1.0, 0.0, 1.0, 1.0)
    with pytest.raises(ModelError, match="speed_ratio"):
        c.feeds(("speed_ratio",))


def test_graph_controls_hold_float32_values() -> None:
    """Every runner sees the float32 value the graph input gets, host loops included."""
    assert GraphControls(speed=1.08).speed == float(np.float32(1.08)) != 1.08

