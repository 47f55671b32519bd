"""Synthesizer: frontend + acoustic backend + vocoder backend + controls + long-text joining + streaming.

`synth`, `bench` and `serve` all go through this class. It loads any artifact folder through the
backend its manifest names; on ONNX artifacts it never imports torch.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest, ensure_folder, read_manifest
from speedy.controls import CONTROL_RANGES, GraphControls, SynthesisOptions, effective_controls
from speedy.errors import InputError, ModelError, OutputError
from speedy.families import default_family, frontend_module
from speedy.runtime import RuntimeOptions, isa_warnings, load_runner
from speedy.runtime.receptive import context_frames

_LOGGER = logging.getLogger(__name__)
#: CPU-mismatch lines already logged by this process (a server loads one Synthesizer per worker)
_WARNED: set[str] = set()

# A manifest's frontend name picks, through its FamilySpec, a module providing `text_to_utterances(text,
# first_chars=None) -> Iterator[Utterance]` (first_chars: cut the first piece that short), or, for a family
# whose acoustic model takes more than phone ids (Sambert), `encoder(manifest)` -> an object with
# `text_to_utterances(text, first_chars=None)` and `encode(utterance, options) -> model inputs`.
MAX_TEXT_CHARS = 100_000
#: the first piece of a text is cut to at most this many characters (at its first comma, else at a
#: prosodic boundary) so that the acoustic model, which is not streaming, starts on a small input: its
#: time grows with the mel frames (~18 per character). Default voice, first chunk of the ~500-character
#: bench text, thread CPU time at 1 thread, interleaved: 10 characters 107 ms, 6 characters 58 ms.
FIRST_PIECE_CHARS = 6
#: chunked vocoding: the first chunk's mel frames (12.5 ms each at 24 kHz / hop 300), doubling per chunk
#: across the whole stream up to the cap; larger chunks pay less for their overlapping context. The
#: first chunk costs its frames + the right context (22 frames on the default voice), so fewer frames
#: save little (12 → 8: ~2 ms); the second chunk (16 + 2 × 22 frames) is still made in well under the
#: first one's 100 ms of audio.
FIRST_CHUNK_FRAMES = 8
MAX_CHUNK_FRAMES = 384
#: whole-sentence output (`synthesize`, `/tts`) is vocoded in blocks of this many mel frames (4.8 s of audio
#: at 24 kHz / hop 300) with receptive-field context: the vocoder's peak memory stays bounded, at ~11 %
#: more vocoder work (2 × 22 context frames per block) on sentences longer than one block
BLOCK_FRAMES = 384


@dataclass(frozen=True)
class AudioChunk:
    """One synthesised piece: a sentence, or part of one when streaming; a sentence's pause is included
    at the end of its last chunk.

    audio: (samples,) float32 in [-1, 1] at `sample_rate` Hz; index counts chunks from 0; acoustic_s is
    the acoustic model's time on the chunk that started the sentence (0 on its later chunks).
    """

    audio: np.ndarray
    sample_rate: int
    index: int
    text: str
    acoustic_s: float
    vocoder_s: float

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def audio_int16_bytes(self) -> bytes:
        """Little-endian 16-bit PCM, for streaming or WAV bodies."""
        return to_int16(self.audio).tobytes()


@dataclass(frozen=True)
class SynthesisResult:
    """A whole utterance: audio (samples,) float32, timings in seconds, and RTF = wall / audio seconds."""

    audio: np.ndarray
    sample_rate: int
    characters: int
    chunks: int
    acoustic_s: float
    vocoder_s: float
    wall_s: float

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def rtf(self) -> float:
        return self.wall_s / self.duration_s if self.duration_s else float("nan")


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float [-1, 1] → int16 with clipping."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")


def check_text(text: object) -> str:
    """Validate raw input text (type, emptiness, size); returns it unchanged."""
    if not isinstance(text, str):
        raise InputError("text must be a string")
    if not text.strip():
        raise InputError("text is empty (only whitespace)")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


class Synthesizer:
    """Turns text into audio with one artifact folder.

    Use `Synthesizer.load(folder)` (None = the embedded default voice, built into the cache on first use).
    """

    def __init__(self, manifest: Manifest, root: Path, options: RuntimeOptions | None = None) -> None:
        self.manifest = manifest
        self.root = root
        self.runtime = options or RuntimeOptions()
        for line in isa_warnings(manifest):  # bf16 on an AVX2 CPU, an auto choice made on a VNNI one, …
            if line not in _WARNED:
                _WARNED.add(line)
                _LOGGER.warning(line)
        self.vocoder = load_runner(manifest, "vocoder", root, self.runtime)
        self._ids = {s: i for i, s in enumerate(manifest.frontend.symbols)}
        if manifest.vocoder_only:  # copy synthesis only: no acoustic model, no frontend
            self.acoustic: Any = None
            self._frontend: Any = None
            self._encoder: Any = None
            return
        self.acoustic = load_runner(manifest, "acoustic", root, self.runtime)
        self._frontend = importlib.import_module(frontend_module(manifest.frontend.name))
        self._encoder = self._frontend.encoder(manifest) if hasattr(self._frontend, "encoder") else None

    @classmethod
    def load(
        cls,
        artifact: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Synthesizer:
        """Load an artifact folder (verifying checksums); None = the default voice's ONNX artifact."""
        if artifact is None:
            from speedy.stages.export import reference_artifact

            artifact = reference_artifact(default_family(), progress=progress)
        root = Path(artifact)
        return cls(read_manifest(root), root, RuntimeOptions(threads=threads))

    # ---- facts for the CLI, the server and the page -------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.manifest.audio.sample_rate

    def describe(self) -> dict[str, Any]:
        """Voices, emotions, control ranges and audio facts (what `/voices` returns)."""
        emo = self.manifest.controls.emotions
        return {
            "family": self.manifest.family,
            "sample_rate": self.sample_rate,
            "voices": [
                {"name": v, "emotions": list(emo.get("names", {})), "emotion_kind": emo.get("kind", "preset")}
                for v in self.manifest.controls.voices
            ],
            "controls": {
                k: {"min": lo, "max": hi, "default": d, "unit": u} for k, (lo, hi, d, u) in CONTROL_RANGES.items()
            },
            "precision": self.manifest.precision,
        }

    # ---- synthesis ------------------------------------------------------------------------------
    def _check_voice(self, options: SynthesisOptions) -> None:
        voices = self.manifest.controls.voices
        if options.voice not in (None, "", *voices):
            raise InputError(f"unknown voice {options.voice!r}; valid voices: {', '.join(voices)}")

    def ids_for(self, phones: tuple[str, ...]) -> np.ndarray:
        """Map frontend symbols to ids (1, T) int64; unknown symbols are a frontend/model mismatch."""
        return phones_to_ids(self._ids, phones, self.manifest.audio.max_ids)

    def split_pitch(self, semitones: float) -> tuple[float, float]:
        """Split a pitch shift into the acoustic graph's part and a resampling ratio for the rest.

        The graph's own pitch input is accurate only inside `extra["pitch_graph_semitones"]` (measured
        per voice; beyond it the model's F0 saturates). The remainder is applied by resampling the
        waveform with durations stretched to compensate, which also moves formants.
        """
        lo, hi = self.manifest.extra.get("pitch_graph_semitones", (-12.0, 12.0))
        graph = min(max(semitones, lo), hi)
        return graph, float(2.0 ** ((semitones - graph) / 12.0))

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """mel (1, L, n_mels) → (L·hop,) float32, padding short inputs to the vocoder's minimum."""
        return vocode_padded(self.vocoder, mel, self.manifest.audio.min_vocoder_frames, self.manifest.audio.hop_size)

    @property
    def vocoder_context_frames(self) -> int | None:
        """Mel frames of context each vocoder chunk needs on each side; None = vocode whole sentences."""
        width = getattr(self.vocoder, "receptive_field_frames", None)
        return None if width is None else context_frames(width)

    def stream(
        self, text: str, options: SynthesisOptions | None = None, *, chunked: bool = True
    ) -> Iterator[AudioChunk]:
        """Yield audio as it is made, for text of any length (memory stays flat).

        Sentences go through the acoustic model one at a time (the first piece cut short, see
        FIRST_PIECE_CHARS). With `chunked`, each sentence's mel is vocoded in overlapping chunks whose
        context covers the vocoder's receptive field, trimmed so the joins equal one-shot vocoding, and
        each chunk is yielded; without it, one chunk per sentence, vocoded in blocks of BLOCK_FRAMES the
        same way (the vocoder's buffers grow with its input: ~40 MB more peak RSS on a 60-character
        sentence vocoded at once). When the receptive field is unknown, or pitch needs resampling, whole
        sentences are vocoded at once.
        Raises InputError before yielding anything if the text has nothing to say.
        """
        options = options or SynthesisOptions()
        check_text(text)
        if self.manifest.vocoder_only:
            raise InputError(
                f"{self.root} is a vocoder-only artifact ({self.manifest.family}): it takes a recording, "
                "not text; pass --wav IN.wav"
            )
        self._check_voice(options)
        native = self.manifest.controls.emotions.get("kind") == "native"  # the model takes the emotion itself
        ctrl = effective_controls(replace(options, emotion=None) if native else options)
        graph_pitch, ratio = self.split_pitch(ctrl.pitch)
        # Durations are stretched by `ratio` before the waveform is resampled by 1/ratio, so the
        # requested speed is kept while F0 (and formants) move by `ratio`.
        controls = GraphControls(
            speed=ctrl.speed / ratio, pitch=graph_pitch, pitch_range=ctrl.pitch_range, energy=ctrl.energy
        )
        utterances = (self._encoder or self._frontend).text_to_utterances(text, first_chars=FIRST_PIECE_CHARS)
        first = next(utterances, None)
        if first is None:
            raise InputError("nothing to say: the text has no readable characters (Chinese, letters or digits)")
        context = self.vocoder_context_frames if ratio == 1.0 else None
        sizes = chunk_sizes(FIRST_CHUNK_FRAMES, MAX_CHUNK_FRAMES)
        gain = ctrl.energy != 1.0 and self.manifest.extra.get("energy_control") == "gain"
        audio = self.manifest.audio
        index = 0
        utt = first
        while utt is not None:
            ids = self._encoder.encode(utt, options) if self._encoder else self.ids_for(utt.phones)
            t0 = time.perf_counter()
            mel, _ = self.acoustic(ids, controls)
            acoustic_s = time.perf_counter() - t0
            # lazily, so that the vocoder's time falls inside its timer below
            pieces: Iterator[tuple[np.ndarray, bool]]
            if context is None:
                pieces = ((self.vocode(m), True) for m in (mel,))
            elif not chunked:
                pieces = ((self._vocode_blocks(m, context), True) for m in (mel,))
            else:
                pieces = vocode_chunks(self.vocoder, mel, context, sizes, audio.min_vocoder_frames, audio.hop_size)
            while True:
                t1 = time.perf_counter()
                wav, last = next(pieces)
                if ratio != 1.0:
                    wav = _resample(wav, ratio)
                if gain:
                    wav = wav * np.float32(ctrl.energy)
                vocoder_s = time.perf_counter() - t1
                if last:
                    # the next utterance is read (its G2P) only now, after this one's earlier chunks were
                    # yielded: it tells whether this one's pause is kept (none after the last utterance)
                    following = next(utterances, None)
                    pause = int(round(utt.pause_after * ctrl.pause * self.sample_rate)) if following else 0
                    if pause > 0:
                        wav = np.concatenate([wav, np.zeros(pause, dtype=np.float32)])
                yield AudioChunk(
                    wav.astype(np.float32, copy=False), self.sample_rate, index, utt.text, acoustic_s, vocoder_s
                )
                index += 1
                acoustic_s = 0.0
                if last:
                    break
            utt = following

    def _vocode_blocks(self, mel: np.ndarray, context: int) -> np.ndarray:
        """A whole sentence's waveform, vocoded BLOCK_FRAMES at a time with `context` frames each side."""
        audio = self.manifest.audio
        blocks = vocode_chunks(
            self.vocoder, mel, context, itertools.repeat(BLOCK_FRAMES), audio.min_vocoder_frames, audio.hop_size
        )
        parts = [w for w, _ in blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def warm_up(self) -> float:
        """Run one short text through every stage (frontend dictionaries, ORT first-run allocations) so
        that the first real request is not the slow one; returns the seconds it took."""
        start = time.perf_counter()
        for _ in self.stream("你好，欢迎使用语音合成服务。"):
            pass
        return time.perf_counter() - start

    def synthesize(
        self, text: str, options: SynthesisOptions | None = None, on_chunk: Callable[[AudioChunk], None] | None = None
    ) -> SynthesisResult:
        """Synthesise all of `text`; `on_chunk` is called after each sentence (progress bars)."""
        start = time.perf_counter()
        parts: list[np.ndarray] = []
        ac = vo = 0.0
        for chunk in self.stream(text, options, chunked=False):
            parts.append(chunk.audio)
            ac += chunk.acoustic_s
            vo += chunk.vocoder_s
            if on_chunk is not None:
                on_chunk(chunk)
        audio = np.concatenate(parts)
        if not np.isfinite(audio).all():
            raise ModelError("the model produced non-finite audio")
        return SynthesisResult(audio, self.sample_rate, len(text), len(parts), ac, vo, time.perf_counter() - start)

    def copy_synthesize(self, audio: np.ndarray) -> SynthesisResult:
        """Vocode a recording's mel (copy synthesis) with a vocoder-only artifact.

        Args:
            audio: ``(samples,)`` float32 mono at the artifact's sample rate (see speedy.wav_input.read_wav).

        Returns:
            the waveform ``(frames * hop,)``; ``acoustic_s`` is the mel analysis time. The mel is vocoded in
            blocks of BLOCK_FRAMES with receptive-field context (peak memory stays bounded on long recordings;
            the joins equal one-shot vocoding) when the vocoder's receptive field is known.
        """
        if not self.manifest.vocoder_only:
            raise InputError(f"--wav needs a vocoder-only artifact; {self.root} ({self.manifest.family}) takes text")
        from speedy.families import for_family

        start = time.perf_counter()
        mel = for_family(self.manifest.family).hook("analysis")(audio, self.manifest)[None]
        t1 = time.perf_counter()
        context = self.vocoder_context_frames
        wav = self.vocode(mel) if context is None else self._vocode_blocks(mel, context)
        t2 = time.perf_counter()
        if not np.isfinite(wav).all():
            raise ModelError("the model produced non-finite audio")
        return SynthesisResult(
            wav.astype(np.float32, copy=False), self.sample_rate, 0, 1, t1 - start, t2 - t1, t2 - start
        )

    def to_wav(
        self,
        text: str,
        path: str | os.PathLike[str],
        options: SynthesisOptions | None = None,
        on_chunk: Callable[[AudioChunk], None] | None = None,
    ) -> SynthesisResult:
        """Synthesise and write a 16-bit PCM mono WAV atomically (temp file + rename)."""
        out = Path(path)
        check_output_path(out)
        result = self.synthesize(text, options, on_chunk)
        write_wav(out, result.audio, self.sample_rate)
        return result


def phones_to_ids(table: dict[str, int], phones: tuple[str, ...], max_ids: int) -> np.ndarray:
    """Frontend symbols → ids (1, T) int64 (ModelError on an unknown symbol, InputError when too long)."""
    try:
        ids = [table[p] for p in phones]
    except KeyError as e:
        raise ModelError(f"frontend produced symbol {e.args[0]!r} that this model does not know") from None
    if len(ids) > max_ids:
        raise InputError(
            f"a sentence produced {len(ids)} symbols; the model takes at most {max_ids}: " "add punctuation to split it"
        )
    return np.asarray([ids], dtype=np.int64)


def vocode_padded(
    vocoder: Callable[[np.ndarray], np.ndarray], mel: np.ndarray, min_frames: int, hop: int
) -> np.ndarray:
    """mel (1, L, n_mels) → (L·hop,) float32; mels shorter than `min_frames` are padded with their minimum
    (silence) and the padding's samples cut off again."""
    frames = mel.shape[1]
    if frames < min_frames:
        pad = np.full((1, min_frames - frames, mel.shape[2]), mel.min(), dtype=np.float32)
        mel = np.concatenate([mel, pad], axis=1)
    return vocoder(mel)[0][: frames * hop]


def chunk_sizes(first: int, cap: int) -> Iterator[int]:
    """first, 2·first, 4·first, … up to `cap`, then `cap` forever (mel frames per vocoder chunk)."""
    size = first
    while True:
        yield size
        size = min(size * 2, cap)


def vocode_chunks(
    vocoder: Callable[[np.ndarray], np.ndarray],
    mel: np.ndarray,
    context: int,
    sizes: Iterator[int],
    min_frames: int,
    hop: int,
) -> Iterator[tuple[np.ndarray, bool]]:
    """Vocode mel (1, L, n_mels) chunk by chunk; yields (waveform (n·hop,) float32, is_last).

    Chunk [a, b) is vocoded with up to `context` frames on each side and its own samples cut out, so
    when `context` covers the vocoder's receptive field the concatenation equals `vocode_padded(mel)`.
    Chunk lengths come from `sizes`; a remainder shorter than `context` joins the chunk before it.
    """
    frames = mel.shape[1]
    start = 0
    while start < frames:
        end = start + next(sizes)
        if frames - end < context:
            end = frames
        lo, hi = max(0, start - context), min(frames, end + context)
        wav = vocode_padded(vocoder, mel[:, lo:hi], min_frames, hop)
        yield wav[(start - lo) * hop : (end - lo) * hop], end == frames
        start = end


def _resample(wav: np.ndarray, ratio: float) -> np.ndarray:
    """Play `wav` `ratio`× faster: F0 × ratio, length ÷ ratio (soxr, high quality)."""
    import soxr

    return soxr.resample(wav.astype(np.float32, copy=False), 1000.0 * ratio, 1000.0, quality="HQ").astype(np.float32)


def check_output_path(out: Path) -> None:
    """Fail early (OutputError) if the file cannot be written there; missing parent folders are created."""
    if out.is_dir():
        raise OutputError(f"output {out} is a directory")
    parent = ensure_folder(out.parent, purpose=f"cannot write {out}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable")


def write_wav(out: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV via soundfile, written to a temp file in the same folder then renamed."""
    import soundfile as sf

    atomic_write(out, lambda tmp: sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV"))


def atomic_write(out: Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp)` on a temp file beside `out`, then rename it to `out`: never a partial file.

    OutputError (exit 4) if `out` cannot be written; the temp file is removed on any failure.
    """
    check_output_path(out)
    parent = out.parent if str(out.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
