"""Measure the distillation frontier of the default voice's vocoder (issue 25), printing JSON lines.

    python examples/distill_frontier.py shapes [--refit] [--threads 2]
        For each student shape: parameters, multiply-adds per frame, ONNX Runtime FP32 vocoder time on the
        teacher's mels of the 6 held-out g2pL dev utterances (runs interleaved with the teacher's, median of
        5, so the ratio holds on a busy machine), and with --refit the vocoder MCD / DNSMOS after the cut and
        least-squares re-fit alone (no training), on the same utterances.
    python examples/distill_frontier.py checkpoints WIDTH FILE...
        The same held-out check for distill checkpoints (copies of OUT's `.OUT.distill.ckpt` taken while
        training), so MCD / DNSMOS can be read against training steps.

Speed does not depend on the weights, so `shapes` times the cut students. Everything runs on the machine
at hand: the JSON names its vector extensions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speedy.artifacts import read_manifest
from speedy.calibration import calibration_ids
from speedy.distill.data import read_sentences
from speedy.distill.stage import DEV_SENTENCES, check
from speedy.distill.student import StudentShape, build_student, vocoder_macs
from speedy.families import default_family
from speedy.prune.recover import load_checkpoint
from speedy.runtime.torch_backend import load_torch_modules

SHAPES = [
    StudentShape(width=1.0),
    StudentShape(width=0.85, inner=0.4),
    StudentShape(width=0.7),
    StudentShape(width=1.0, inner=0.25),
    StudentShape(width=0.5),
    StudentShape(width=0.5, layers=3),
    StudentShape(width=0.4),
]


def _cpu_flags() -> list[str]:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags.split() if f.startswith(("avx", "amx")))


def _teacher():
    src_dir = default_family().hook("torch_artifact")()
    src = read_manifest(src_dir)
    return src, load_torch_modules(src, src_dir)


def _dev_mels(src, teacher) -> list[torch.Tensor]:
    ids = calibration_ids(src, read_sentences("dev", DEV_SENTENCES), DEV_SENTENCES)
    with torch.no_grad():
        return [teacher["acoustic"](torch.from_numpy(x), *(torch.ones(1),) * 4)[0] for x in ids]


def _onnx_session(module: torch.nn.Module, path: Path, threads: int):
    import onnxruntime as ort

    torch.onnx.export(
        module,
        (torch.zeros(1, 40, 80),),
        str(path),
        input_names=["mel"],
        output_names=["audio"],
        dynamic_axes={"mel": {1: "frames"}, "audio": {1: "samples"}},
        opset_version=17,
        dynamo=False,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def shapes(refit: bool, threads: int) -> None:
    torch.set_num_threads(threads)
    src, teacher = _teacher()
    mels = _dev_mels(src, teacher)
    voc = teacher["vocoder"]
    built = {"teacher": voc}
    for shape in SHAPES[1:]:
        built[shape.label()] = build_student(voc, shape, [], None, refit_layers=False).module
    feeds = [m.numpy() for m in mels]
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {k: _onnx_session(m, Path(tmp) / f"{k}.onnx", threads) for k, m in built.items()}
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for r in range(6):
            for k, s in sessions.items():
                t0 = time.perf_counter()
                for f in feeds:
                    s.run(None, {"mel": f})
                if r:
                    times[k].append(time.perf_counter() - t0)
    audio_s = sum(f.shape[1] for f in feeds) * src.audio.hop_size / src.audio.sample_rate
    base = float(np.median(times["teacher"]))
    crops: list[torch.Tensor] = []
    for shape in SHAPES:
        key = "teacher" if shape.width == 1.0 and shape.inner is None and shape.layers is None else shape.label()
        module = built[key]
        row = {
            "shape": shape.label(),
            "params": sum(p.numel() for p in module.parameters()),
            "macs_x_teacher": round(vocoder_macs(module) / vocoder_macs(voc), 3),
            "ort_fp32_rtf": round(float(np.median(times[key])) / audio_s, 5),
            "speedup_x_teacher": round(base / float(np.median(times[key])), 2),
            "threads": threads,
            "cpu": _cpu_flags(),
        }
        if refit and key != "teacher":
            crops = crops or _refit_crops(src, teacher)
            student = build_student(voc, shape, crops, None).module
            row["after_refit"] = check(src, teacher, student, lambda m: None)
        print(json.dumps(row), flush=True)


def _refit_crops(src, teacher) -> list[torch.Tensor]:
    """The stage's own re-fit input: 32 windows of two adjacent 32-frame crops from the cached pairs."""
    from speedy.distill.stage import REFIT_CROPS, DistillConfig, training_pairs

    pairs = training_pairs(src, teacher, DistillConfig(), lambda m: None, None)
    return [torch.from_numpy(pairs.mels[2 * i : 2 * i + 2].reshape(1, -1, 80)) for i in range(REFIT_CROPS)]


def checkpoints(width: float, files: list[str], threads: int) -> None:
    torch.set_num_threads(threads)
    src, teacher = _teacher()
    for path in files:
        ck = load_checkpoint(Path(path), "distill", ("step", "student"))
        student = build_student(teacher["vocoder"], StudentShape(width=width), [], None, refit_layers=False)
        student.module.load_state_dict(ck["student"], strict=True)
        res = check(src, teacher, student.module, lambda m: None)
        row = {"file": path, "step": ck["step"], "of": ck["total_steps"], "train_seconds": round(ck["seconds"]), **res}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["shapes", "checkpoints"])
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--refit", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.mode == "shapes":
        shapes(a.refit, a.threads)
    else:
        checkpoints(float(a.rest[0]), a.rest[1:], a.threads)
