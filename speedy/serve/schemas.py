"""Request and response models: they validate input and document the API in /openapi.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from speedy.controls import CONTROL_RANGES


def _control(name: str, description: str):  # -> pydantic FieldInfo
    low, high, default, unit = CONTROL_RANGES[name]
    return Field(default, ge=low, le=high, description=f"{description} ({unit}), {low:g}…{high:g}")


class _Strict(BaseModel):
    # NaN/inf are rejected (Python's json accepts them); unknown fields are an error, not silently ignored.
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")


class TTSRequest(_Strict):
    """POST /tts and /tts/stream."""

    text: str = Field(..., min_length=1, max_length=500, description="Chinese text, at most 500 characters")
    speed: float = _control("speed", "speaking rate")
    pitch: float = _control("pitch", "pitch shift")
    pitch_range: float = _control("pitch_range", "F0 movement")
    energy: float = _control("energy", "loudness")
    emotion: str | None = Field(None, description="中性 喜悦 悲伤 愤怒 (or neutral, happy, sad, angry)")
    voice: str | None = Field(None, description="voice name from GET /voices (default: the first)")
    format: Literal["wav", "base64"] = Field("wav", description="wav: audio/wav body; base64: JSON")


class TTSJSONResponse(BaseModel):
    """/tts with format=base64."""

    audio_base64: str
    format: Literal["wav"] = "wav"
    sample_rate: int
    duration_s: float


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech (OpenAI speech API). Extra OpenAI fields (e.g. instructions) are ignored."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    model: str = Field("speedy", description="any name from GET /v1/models")
    input: str = Field(..., min_length=1, max_length=500)
    voice: str = Field("default", description="a voice name, an emotion (中性 喜悦 悲伤 愤怒) or an OpenAI voice name")
    response_format: str = Field("wav", description="wav, pcm, flac, mp3, opus (as libsndfile allows)")
    speed: float = _control("speed", "speaking rate (same range as speedy synth)")
    stream_format: Literal["audio", "sse"] | None = Field(None, description="'audio' streams chunked audio")


class ControlRange(BaseModel):
    min: float
    max: float
    default: float
    unit: str


class Voice(BaseModel):
    name: str
    emotions: list[str]
    emotion_kind: str


class VoicesResponse(BaseModel):
    family: str
    sample_rate: int
    voices: list[Voice]
    controls: dict[str, ControlRange]
    max_chars: int


class ErrorDetail(BaseModel):
    message: str
    field: str | None = None
    type: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
