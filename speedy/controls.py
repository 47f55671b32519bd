"""Per-call synthesis controls, their ranges, and the emotion presets built from them.

The acoustic graphs take the four controls as real tensor inputs (see `ControlVector`), so exported and
compiled artifacts keep them; `GraphControls` carries them by name from the Synthesizer to the runners. Emotions are named presets of those controls plus a pause-length scale,
for voices without emotion embeddings (manifest `controls.emotions.kind == "preset"`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field

import numpy as np

from speedy.errors import InputError, ModelError

#: name -> (low, high, default, unit). Ranges are inclusive and shared by the CLI, the API and the page.
CONTROL_RANGES: dict[str, tuple[float, float, float, str]] = {
    "speed": (0.5, 2.0, 1.0, "× speaking rate (2.0 = twice as fast)"),
    "pitch": (-12.0, 12.0, 0.0, "semitones"),
    "pitch_range": (0.0, 2.0, 1.0, "× F0 movement around the utterance mean"),
    "energy": (0.5, 2.0, 1.0, "× loudness"),
}


def check_control(name: str, value: float) -> float:
    """Return `value` as float if it is finite and inside `CONTROL_RANGES[name]`, else raise InputError."""
    low, high, _, unit = CONTROL_RANGES[name]
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}] ({unit}), got {value!r}") from None
    if not math.isfinite(v) or not (low <= v <= high):
        raise InputError(f"{name} must be in [{low:g}, {high:g}] ({unit}), got {value!r}")
    if name in ("speed", "energy") and v <= 0:  # unreachable with the ranges above; kept for clarity
        raise InputError(f"{name} must be positive, got {value!r}")
    return v


@dataclass(frozen=True)
class EmotionPreset:
    """A named set of prosody controls.

    Values compose with the user's controls: speed, pitch_range, energy and pause multiply; pitch adds
    (semitones). The result is clipped to `CONTROL_RANGES`.
    """

    name: str
    label: str
    speed: float = 1.0
    pitch: float = 0.0
    pitch_range: float = 1.0
    energy: float = 1.0
    pause: float = 1.0


# Directions follow the cross-study summaries of vocal emotion: Murray & Arnott (1993, JASA 93(2),
# table 1), Banse & Scherer (1996, JPSP 70(3)) and Scherer (2003, Speech Communication 40), and for
# Mandarin Yuan, Shen & Chen (2002, ICSLP "The acoustic realization of anger, fear, joy and sadness in
# Chinese"), who found anger and joy raise mean F0 and widen its range while sadness lowers and
# flattens it and slows the rate. Sizes are kept moderate so a neutral-read voice stays natural.
EMOTION_PRESETS: dict[str, EmotionPreset] = {
    "中性": EmotionPreset("neutral", "中性"),
    # Joy: higher and much wider F0, slightly faster, a little louder, shorter pauses.
    "喜悦": EmotionPreset("happy", "喜悦", speed=1.08, pitch=2.0, pitch_range=1.35, energy=1.15, pause=0.85),
    # Sadness: slower, lower and narrower F0, softer, longer pauses.
    "悲伤": EmotionPreset("sad", "悲伤", speed=0.85, pitch=-2.0, pitch_range=0.6, energy=0.8, pause=1.4),
    # Hot anger: faster, raised and widest F0 range, loudest, clipped pauses.
    "愤怒": EmotionPreset("angry", "愤怒", speed=1.1, pitch=1.5, pitch_range=1.5, energy=1.35, pause=0.8),
}
_ALIASES = {p.name: label for label, p in EMOTION_PRESETS.items()}


def resolve_emotion(name: str | None) -> EmotionPreset:
    """Map a Chinese label or English name (neutral/happy/sad/angry) to its preset; None = 中性."""
    if name is None or name == "":
        return EMOTION_PRESETS["中性"]
    key = name.strip()
    key = _ALIASES.get(key.lower(), key)
    if key not in EMOTION_PRESETS:
        valid = ", ".join(f"{k} ({p.name})" for k, p in EMOTION_PRESETS.items())
        raise InputError(f"unknown emotion {name!r}; valid emotions: {valid}")
    return EMOTION_PRESETS[key]


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-call options (the manifest is the load-time config). Validated on construction."""

    speed: float = 1.0
    pitch: float = 0.0
    pitch_range: float = 1.0
    energy: float = 1.0
    emotion: str | None = None
    voice: str | None = None

    def __post_init__(self) -> None:
        for name in CONTROL_RANGES:
            object.__setattr__(self, name, check_control(name, getattr(self, name)))
        from speedy.families import is_native_emotion  # names of models with emotion embeddings

        if not is_native_emotion(self.emotion):
            resolve_emotion(self.emotion)  # raises with the list of valid names


@dataclass(frozen=True)
class ControlVector:
    """The effective controls fed to the acoustic graph after composing an emotion preset.

    Graph inputs (each float32 of shape (1,)): speed (× rate), pitch (semitones), pitch_range, energy.
    `pause` scales the silence inserted between sentences and at punctuation (host side).
    """

    speed: float
    pitch: float
    pitch_range: float
    energy: float
    pause: float = 1.0
    extra: dict[str, float] = field(default_factory=dict)


def effective_controls(options: SynthesisOptions) -> ControlVector:
    """Compose the user's controls with the emotion preset and clip to the allowed ranges."""
    preset = resolve_emotion(options.emotion)

    def clip(name: str, v: float) -> float:
        low, high, _, _ = CONTROL_RANGES[name]
        return min(max(v, low), high)

    return ControlVector(
        speed=clip("speed", options.speed * preset.speed),
        pitch=clip("pitch", options.pitch + preset.pitch),
        pitch_range=clip("pitch_range", options.pitch_range * preset.pitch_range),
        energy=clip("energy", options.energy * preset.energy),
        pause=preset.pause,
    )


@dataclass(frozen=True)
class GraphControls:
    """The acoustic graph's control inputs, by name: what every acoustic runner takes with the ids.

    speed (× speaking rate), pitch (semitones the graph itself applies), pitch_range (× F0 movement),
    energy (× loudness). A graph feeds each as a float32 tensor of shape (1,) at its input of the same
    name. The defaults leave the voice as trained. Values are rounded to float32 (the graphs' input type)
    on construction, so every runner, host loops included, sees the same numbers.
    """

    speed: float = 1.0
    pitch: float = 0.0
    pitch_range: float = 1.0
    energy: float = 1.0

    def __post_init__(self) -> None:
        for name in CONTROL_RANGES:
            object.__setattr__(self, name, float(np.float32(getattr(self, name))))

    def values(self) -> tuple[float, ...]:
        """(speed, pitch, pitch_range, energy): the graph's input order, for callables that take the
        controls positionally after the ids (the torch modules and their traced or exported forms)."""
        return astuple(self)

    def feeds(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """{input name: float32 array (1,)} for a graph's control inputs `names`; ModelError for a name
        that is not a control."""
        out = {}
        for name in names:
            if name not in CONTROL_RANGES:
                raise ModelError(f"acoustic graph input {name!r} is not a control ({', '.join(CONTROL_RANGES)})")
            out[name] = np.asarray([getattr(self, name)], dtype=np.float32)
        return out


#: The controls that leave the voice as trained (what calibration, parity and fidelity runs use).
DEFAULT_CONTROLS = GraphControls()
