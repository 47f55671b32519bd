"""Audio containers for responses: WAV/FLAC/MP3/Opus through libsndfile (soundfile), raw PCM by hand."""

from __future__ import annotations

import io
import struct

import numpy as np

from speedy.synth import to_int16

#: response_format -> (libsndfile format, subtype, media type). Available ones depend on libsndfile.
_CONTAINERS = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "opus": ("OGG", "OPUS", "audio/ogg"),
}


def supported_formats() -> list[str]:
    """Formats this machine's libsndfile can write, plus raw 16-bit PCM."""
    import soundfile as sf

    formats = sf.available_formats()
    out = []
    for name, (fmt, subtype, _) in _CONTAINERS.items():
        if fmt in formats and subtype in sf.available_subtypes(fmt):
            out.append(name)
    return [*out, "pcm"]


def media_type(fmt: str) -> str:
    # audio/L16 means big-endian (RFC 2586); this is little-endian int16 as OpenAI sends it.
    return "audio/pcm" if fmt == "pcm" else _CONTAINERS[fmt][2]


def encode(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """float32 mono in [-1, 1] → bytes of `fmt` (pcm = little-endian int16, no header)."""
    if fmt == "pcm":
        return to_int16(audio).tobytes()
    import soundfile as sf

    container, subtype, _ = _CONTAINERS[fmt]
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format=container, subtype=subtype)
    return buf.getvalue()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header with unknown length (0xFFFFFFFF sizes), for chunked streaming."""
    byte_rate = sample_rate * 2
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, byte_rate, 2, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )
