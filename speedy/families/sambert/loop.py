"""Host loop for the exported Sambert-HifiGan graphs (numpy + ONNX Runtime, no torch).

The acoustic model's autoregressive parts cannot live in one graph, so the exporter
(:mod:`speedy.families.sambert.torch_graphs`) writes one graph per piece and this loop chains them::

    encoder → variance → duration_step × T → length regulation (numpy) → decoder_memory
            → decoder_step × ⌈L / r⌉ → postnet → vocoder

It reproduces :meth:`speedy.families.sambert.model.SambertAcoustic.forward` (KAN-TTS ``forward`` at inference):
same rounding of durations, same band width, same padding; padding frames are trimmed before the
postnet, which is equivalent because the reference masks them out of it.

Graphs are passed in as ``onnxruntime.InferenceSession`` objects or as callables
``feeds -> list of outputs`` (same names and order as the ONNX graphs), so other backends can plug in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from speedy.errors import InputError, ModelError
from speedy.families.host_loop import as_runner

_LOGGER = logging.getLogger(__name__)

GRAPH_NAMES = ("encoder", "variance", "duration_step", "decoder_memory", "decoder_step", "postnet", "vocoder")
"""Graph names, in the order the loop runs them; files are ``<name>.onnx``."""

CONFIG_METADATA_KEY = "speedy.sambert_loop"
"""ONNX ``metadata_props`` key holding :class:`SambertLoopConfig` as JSON (written into every graph)."""

IDENTITY_CONTROLS = (1.0, 0.0, 1.0, 0.0)
"""``controls`` input of the variance graph: pitch scale, pitch shift, energy scale, energy shift."""

INPUT_STREAMS = ("sy", "tone", "syllable_flag", "ws", "emotion", "speaker")


@dataclass(frozen=True)
class SambertInputs:
    """Symbol ids of one sentence for the Sambert encoder, each an int64 array of shape ``(T,)``.

    One entry per symbol, as KAN-TTS' ``KanTtsLinguisticUnit.encode_symbol_sequence`` encodes the
    frontend's ``{phone$tone$syllable_flag$word_segment$emotion$speaker}`` tokens, **without** the
    trailing ``~`` end token (the reference drops it before the model):

    - ``sy``: phone or prosodic-break (``#1``…``#4``) id; ``tone``: tone id;
    - ``syllable_flag``: ``s_begin``/``s_end``/``s_none``/``s_both``/``s_middle`` id; ``ws``: word-segment id;
    - ``emotion``: emotion id (KAN-TTS ``emotion_types`` order, e.g. 1 = neutral, 5 = happy);
    - ``speaker``: index in the voice's ``speaker_list``.

    Ids index the embedding tables whose sizes :meth:`check_vocab` takes (the source reads them from
    the checkpoint). Emotion and speaker are per symbol; :meth:`with_style` repeats one value.
    """

    sy: np.ndarray
    tone: np.ndarray
    syllable_flag: np.ndarray
    ws: np.ndarray
    emotion: np.ndarray
    speaker: np.ndarray

    def __post_init__(self) -> None:
        length = None
        for name in INPUT_STREAMS:
            try:
                arr = np.ascontiguousarray(np.asarray(getattr(self, name)), dtype=np.int64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"SambertInputs.{name}: expected integer ids, got {getattr(self, name)!r}") from exc
            if arr.ndim != 1 or arr.size == 0:
                raise InputError(f"SambertInputs.{name}: expected a non-empty 1-D array, got shape {arr.shape}")
            if length is not None and arr.size != length:
                raise InputError(f"SambertInputs.{name}: length {arr.size} differs from sy's {length}")
            if arr.min() < 0:
                raise InputError(f"SambertInputs.{name}: negative id {int(arr.min())}")
            length = arr.size
            object.__setattr__(self, name, arr)

    @classmethod
    def with_style(cls, sy: Any, tone: Any, syllable_flag: Any, ws: Any, emotion: int, speaker: int) -> SambertInputs:
        """Linguistic streams of length T plus one emotion id and one speaker id for the whole sentence."""
        n = len(np.asarray(sy))
        return cls(sy, tone, syllable_flag, ws, np.full(n, emotion, np.int64), np.full(n, speaker, np.int64))

    def __len__(self) -> int:
        return int(self.sy.size)

    def as_dict(self) -> dict[str, np.ndarray]:
        """Streams by name, each ``(T,)`` int64."""
        return {name: getattr(self, name) for name in INPUT_STREAMS}

    def check_vocab(self, sizes: Mapping[str, int]) -> None:
        """Raise :class:`InputError` if an id is outside its table (``sizes`` by stream name)."""
        for name, size in sizes.items():
            arr = getattr(self, name)
            bad = np.nonzero(arr >= size)[0]
            if bad.size:
                raise InputError(
                    f"SambertInputs.{name}[{int(bad[0])}] = {int(arr[bad[0]])} is outside the model's {size} ids"
                )


@dataclass(frozen=True)
class SambertLoopConfig:
    """What the host loop needs to know about the graphs (stored in their ONNX metadata)."""

    outputs_per_step: int
    num_mels: int
    decoder_layers: int
    decoder_heads: int
    decoder_head_dim: int
    duration_lstm_layers: int
    duration_lstm_units: int
    max_len: int
    hop_size: int
    sample_rate: int
    vocab_sizes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SambertLoopConfig:
        try:
            data = json.loads(text)
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (ValueError, TypeError) as exc:
            raise ModelError(f"sambert graphs: bad {CONFIG_METADATA_KEY} metadata: {exc}") from exc


@dataclass(frozen=True)
class SambertResult:
    """Output of :meth:`SambertLoop.synthesize`.

    Attributes:
        mel: final mel ``(L, num_mels)`` float32; ``durations`` ``(T,)`` int64 with ``L = durations.sum()``.
        log_durations, pitch, energy: per-symbol predictions ``(T,)`` float32.
        band: decoder attention band width; ``wav``: ``(L · hop,)`` float32 in [-1, 1] or None.
        seconds: wall time per stage (``acoustic``, ``vocoder``).
    """

    mel: np.ndarray
    durations: np.ndarray
    log_durations: np.ndarray
    pitch: np.ndarray
    energy: np.ndarray
    band: int
    wav: np.ndarray | None
    seconds: dict[str, float]


def length_regulate(reps: np.ndarray, r: int, *features: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Repeat symbol features ``(T, C)`` by ``reps`` ``(T,)`` and zero-pad to a multiple of ``r`` frames.

    Returns the 1-based frame index within each symbol ``(1, F)`` float32 (0 on padding) and the
    repeated features, each ``(1, F, C)``, where ``F = ⌈reps.sum() / r⌉ · r``.
    """
    frames = int(reps.sum())
    pad = (-frames) % r
    starts = np.cumsum(reps) - reps
    pos = np.arange(frames, dtype=np.int64) - np.repeat(starts, reps) + 1
    dur_pos = np.pad(pos.astype(np.float32), (0, pad))[None]
    out = [np.pad(np.repeat(f, reps, axis=0), ((0, pad), (0, 0)))[None].astype(np.float32) for f in features]
    return dur_pos, out


def band_width(durations: np.ndarray, r: int) -> int:
    """``int(max(durations) / r + 0.5)`` in float32, as the reference computes it."""
    return int(np.float32(durations.max()) / np.float32(r) + np.float32(0.5))


class SambertLoop:
    """Runs the Sambert graphs (and optionally the vocoder) for one sentence at a time."""

    def __init__(self, graphs: Mapping[str, Any], config: SambertLoopConfig) -> None:
        missing = [name for name in GRAPH_NAMES[:-1] if name not in graphs]
        if missing:
            raise ModelError(f"sambert loop: missing graphs {', '.join(missing)}")
        self.config = config
        self._run = {name: as_runner(g, "sambert") for name, g in graphs.items()}

    @classmethod
    def from_dir(cls, folder: Path, threads: int | None = None) -> SambertLoop:
        """Open ``<name>.onnx`` files of ``folder`` with ONNX Runtime (CPU); the vocoder is optional."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        sessions: dict[str, Any] = {}
        for name in GRAPH_NAMES:
            path = Path(folder) / f"{name}.onnx"
            if path.is_file():
                sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            elif name != "vocoder":
                raise ModelError(f"sambert loop: {path} is missing")
        meta = sessions["encoder"].get_modelmeta().custom_metadata_map.get(CONFIG_METADATA_KEY)
        if meta is None:
            raise ModelError(f"sambert loop: {folder}/encoder.onnx has no {CONFIG_METADATA_KEY} metadata")
        return cls(sessions, SambertLoopConfig.from_json(meta))

    def acoustic(
        self, inputs: SambertInputs, controls: Sequence[float] = IDENTITY_CONTROLS, speed: float = 1.0
    ) -> SambertResult:
        """Symbols → mel. ``controls``: see :data:`IDENTITY_CONTROLS`; ``speed`` > 1 shortens durations."""
        cfg, run = self.config, self._run
        if not speed > 0:
            raise InputError(f"speed must be > 0, got {speed}")
        if len(inputs) > cfg.max_len:
            raise InputError(f"sambert: {len(inputs)} symbols exceed the model's {cfg.max_len}; split the text")
        inputs.check_vocab(cfg.vocab_sizes)
        start = time.perf_counter()
        text, emo, spk = run["encoder"]({k: v[None] for k, v in inputs.as_dict().items()})
        ctl = np.asarray(controls, dtype=np.float32).reshape(4)
        pitch, energy, text_aug, cond = run["variance"]({"text": text, "emo": emo, "spk": spk, "controls": ctl})
        log_dur = self._durations(cond)
        durations = np.exp(log_dur) - np.float32(1.0)
        if speed != 1.0:
            durations = durations / np.float32(speed)
        reps = (durations + np.float32(0.5)).astype(np.int64)
        if reps.sum() == 0:
            raise ModelError("sambert: the duration predictor gave zero frames for every symbol")
        band = band_width(durations, cfg.outputs_per_step)
        dur_pos, (lr_text, lr_emo, lr_spk) = length_regulate(reps, cfg.outputs_per_step, text_aug[0], emo[0], spk[0])
        memory, h_k, h_v = run["decoder_memory"](
            {"lr_text": lr_text, "dur_pos": dur_pos, "lr_emo": lr_emo, "lr_spk": lr_spk}
        )
        dec = self._decode(memory, h_k, h_v, band)[:, : int(reps.sum())]
        (mel,) = run["postnet"]({"dec_mel": np.ascontiguousarray(dec)})
        seconds = {"acoustic": time.perf_counter() - start}
        return SambertResult(
            mel=mel[0],
            durations=reps,
            log_durations=log_dur,
            pitch=pitch[0],
            energy=energy[0],
            band=band,
            wav=None,
            seconds=seconds,
        )

    def synthesize(
        self, inputs: SambertInputs, controls: Sequence[float] = IDENTITY_CONTROLS, speed: float = 1.0
    ) -> SambertResult:
        """Symbols → mel → waveform (needs the ``vocoder`` graph)."""
        if "vocoder" not in self._run:
            raise ModelError("sambert loop: no vocoder graph")
        res = self.acoustic(inputs, controls, speed)
        start = time.perf_counter()
        (wav,) = self._run["vocoder"]({"mel": res.mel[None]})
        seconds = {**res.seconds, "vocoder": time.perf_counter() - start}
        return SambertResult(
            res.mel, res.durations, res.log_durations, res.pitch, res.energy, res.band, wav.reshape(-1), seconds
        )

    def _durations(self, cond: np.ndarray) -> np.ndarray:
        """Autoregressive duration loop: ``cond`` ``(1, T, C)`` → log-durations ``(T,)``."""
        cfg = self.config
        h = np.zeros((cfg.duration_lstm_layers, 1, cfg.duration_lstm_units), np.float32)
        c = np.zeros_like(h)
        prev = np.zeros((1, 1), np.float32)
        out = np.empty(cond.shape[1], np.float32)
        step = self._run["duration_step"]
        for i in range(cond.shape[1]):
            prev, h, c = step({"prev": prev, "cond": np.ascontiguousarray(cond[:, i : i + 1]), "h": h, "c": c})
            out[i] = prev[0, 0]
        return out

    def _decode(self, memory: np.ndarray, h_k: np.ndarray, h_v: np.ndarray, band: int) -> np.ndarray:
        """PNCA loop with a host-side cache: memory ``(1, M, D)`` → decoder mel ``(1, M·r, num_mels)``."""
        cfg = self.config
        n = memory.shape[1]
        x_k = np.zeros((cfg.decoder_layers, cfg.decoder_heads, n, cfg.decoder_head_dim), np.float32)
        x_v = np.zeros_like(x_k)
        frame = np.zeros((1, 1, cfg.num_mels), np.float32)
        bands = np.array(band, np.int64)
        out = np.empty((n, cfg.outputs_per_step * cfg.num_mels), np.float32)
        step = self._run["decoder_step"]
        for s in range(n):
            frames, k, v = step(
                {
                    "prev_frame": frame,
                    "memory_frame": np.ascontiguousarray(memory[:, s : s + 1]),
                    "x_k": x_k,
                    "x_v": x_v,
                    "h_k": h_k,
                    "h_v": h_v,
                    "step": np.array(s, np.int64),
                    "x_band": bands,
                    "h_band": bands,
                }
            )
            x_k[:, :, s] = k[:, :, 0]
            x_v[:, :, s] = v[:, :, 0]
            out[s] = frames.reshape(-1)
            frame = np.ascontiguousarray(frames[:, :, -cfg.num_mels :])
        return out.reshape(1, -1, cfg.num_mels)
