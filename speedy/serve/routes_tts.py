"""The synthesis routes: the native `POST /tts` and `/tts/stream`, and the OpenAI-compatible
`POST /v1/audio/speech` and `GET /v1/models`. All of them check the API key when one is set."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response, StreamingResponse

from speedy.controls import SynthesisOptions
from speedy.errors import InputError
from speedy.serve import audio as audio_io
from speedy.serve.http import ERRORS, ApiError, SynthesisStream
from speedy.serve.schemas import SpeechRequest, TTSJSONResponse, TTSRequest
from speedy.serve.state import State, auth, json_body

#: OpenAI's voice names: accepted as aliases of the default voice so existing clients work unchanged.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")

router = APIRouter()


@router.post(
    "/tts",
    responses={200: {"content": {"audio/wav": {}}, "model": TTSJSONResponse}, **ERRORS},
    dependencies=[Depends(auth), Depends(json_body)],
)
async def tts(req: TTSRequest, state: State) -> Response:
    """Synthesise up to 500 characters: audio/wav, or JSON with base64 audio (format=base64)."""
    options = state.options_for(req)
    state.check_voice(req.voice)
    result = await state.synthesize(req.text, options)
    wav = audio_io.encode(result.audio, result.sample_rate, "wav")
    if req.format == "base64":
        return JSONResponse(
            TTSJSONResponse(
                audio_base64=base64.b64encode(wav).decode(),
                sample_rate=result.sample_rate,
                duration_s=round(result.duration_s, 3),
            ).model_dump()
        )
    return Response(wav, media_type="audio/wav", headers={"Content-Disposition": 'inline; filename="speech.wav"'})


@router.post(
    "/tts/stream",
    responses={200: {"content": {"audio/wav": {}}}, **ERRORS},
    dependencies=[Depends(auth), Depends(json_body)],
)
async def tts_stream(req: TTSRequest, state: State) -> StreamingResponse:
    """Chunked WAV sent as it is synthesised, from the first words on (length fields set to 0xFFFFFFFF)."""
    options = state.options_for(req)
    state.check_voice(req.voice)
    header = audio_io.streaming_wav_header(state.info["sample_rate"])
    return SynthesisStream(await state.stream_body(req.text, options, header), media_type="audio/wav")


@router.get("/v1/models", dependencies=[Depends(auth)])
async def models(state: State) -> dict[str, Any]:
    """OpenAI-style model list."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "owned_by": "openspeedy"}
            for name in ("speedy", "tts-1", "tts-1-hd", state.info["family"])
        ],
    }


@router.post(
    "/v1/audio/speech",
    responses={200: {"content": {"audio/wav": {}}}, **ERRORS},
    dependencies=[Depends(auth), Depends(json_body)],
)
async def speech(req: SpeechRequest, state: State) -> Response:
    """OpenAI speech API: model, input, voice, response_format, speed, stream_format=audio."""
    fmt = req.response_format.lower()
    supported = audio_io.supported_formats()
    if fmt not in supported:
        raise ApiError(
            422,
            f"response_format {req.response_format!r} is not supported here; supported: " f"{', '.join(supported)}",
            "response_format",
        )
    voices = state.voices
    voice, emotion = None, None
    if req.voice in voices:
        voice = req.voice
    elif req.voice.lower() not in (*OPENAI_VOICES, "default"):
        try:
            SynthesisOptions(emotion=req.voice)
            emotion = req.voice
        except InputError:
            raise ApiError(
                422,
                f"unknown voice {req.voice!r}; use one of {', '.join(voices)}, an emotion "
                f"(中性 喜悦 悲伤 愤怒) or an OpenAI voice name",
                "voice",
            ) from None
    options = SynthesisOptions(speed=req.speed, emotion=emotion, voice=voice)
    if req.stream_format == "sse":
        raise ApiError(422, "stream_format 'sse' is not supported; use 'audio'", "stream_format")
    if req.stream_format == "audio":
        if fmt not in ("wav", "pcm"):
            raise ApiError(422, "streaming supports response_format wav or pcm", "response_format")
        header = audio_io.streaming_wav_header(state.info["sample_rate"]) if fmt == "wav" else b""
        body = await state.stream_body(req.input, options, header)
        return SynthesisStream(body, media_type=audio_io.media_type(fmt))
    result = await state.synthesize(req.input, options)
    return Response(audio_io.encode(result.audio, result.sample_rate, fmt), media_type=audio_io.media_type(fmt))
