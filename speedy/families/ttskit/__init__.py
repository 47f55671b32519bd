"""ttskit 0.3.8 (MIT): a Chinese multi-speaker Mellotron (autoregressive) + MelGAN, 22.05 kHz, 24 voices.

Modules: ``source`` (the PyPI wheel, checksum-checked, read with torch), ``modules`` (the torch
networks), ``graphs`` (the four ONNX graphs as plain data), ``export`` (the export plan: modules, example
inputs, the loop's check), ``loop`` (the torch-free host loop), ``runtime`` (``compose``: the acoustic runner
over the opened graphs), ``frontend`` (our frontend → ttskit symbols).
This file imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import hashlib

import numpy as np

from speedy.families import FamilySpec, frozen
from speedy.families.graph_spec import GraphQuant, LoopCheck
from speedy.families.ttskit.graphs import GRAPHS

FAMILY = "ttskit-mellotron-melgan"
#: The 24 speaker names the checkpoint was trained with (ttskit ``resource/__init__.py``, ids 1..24).
VOICES: tuple[str, ...] = (
    "Aibao",
    "Aicheng",
    "Aida",
    "Aijia",
    "Aijing",
    "Aimei",
    "Aina",
    "Aiqi",
    "Aitong",
    "Aiwei",
    "Aixia",
    "Aiya",
    "Aiyu",
    "Aiyue",
    "Siyue",
    "Xiaobei",
    "Xiaogang",
    "Xiaomei",
    "Xiaomeng",
    "Xiaowei",
    "Xiaoxue",
    "Xiaoyun",
    "Yina",
    "biaobei",
)
#: ttskit's own default speaker (``sdk_api.tts_sdk_base``).
DEFAULT_VOICE = "Aiyue"
SPEAKER_DIM = 32


def speaker_vector(name: str) -> np.ndarray:
    """The ``train-mspk`` speaker input: the 32 hex digits d of MD5(name) as (d − 7) / 10, float32 ``(32,)``.

    Any string gives a vector, but only the 24 trained names (:data:`VOICES`) give a trained voice.
    """
    digest = hashlib.md5(name.encode("utf-8")).hexdigest()
    return ((np.array([int(c, 16) for c in digest], dtype=np.float64) - 7) / 10).astype(np.float32)


#: Dynamic INT8 per graph, no calibration data (no calibration path through the autoregressive loop yet). The
#: loop feeds the quantized step its own output, so the stop step may move: the result is judged by DNSMOS and
#: duration against the FP32 artifact, not by mel parity (README.md).
#: - decoder_step: its MatMul/Gemm (the two LSTM cells, the projections) as DynamicQuantizeMatMul / MatMulInteger
#:   with per-channel INT8 weights: the step is weight-bound (≈ 4.7 M weights read per frame).
#: - postnet and vocoder: their 1-D convolutions rewritten as unfold + MatMul and those MatMuls quantized the same
#:   way, because ONNX Runtime's INT8 GEMM is fast on this CPU class and its INT8 convolutions are not
#:   (shared/notes/cpu-speed.md). MelGAN's transposed convolutions stay float.
#: - encoder stays float (once per sentence, a few ms).
#: The quantize stage leaves the vocoder float too: INT8 MelGAN measured 0.6× the speed and −1.2 DNSMOS
#: (README.md); examples/ttskit_int8.py names it to measure that.
INT8 = GraphQuant(
    recipes=("int8-dynamic",),
    hint="use int8-dynamic (decoder step + postnet) or fp16",
    op_types=frozen({g: ("MatMul", "Gemm") for g in ("decoder_step", "postnet", "vocoder")}),
    default_graphs=("decoder_step", "postnet"),
    per_channel=True,
    conv_gemm=("postnet", "vocoder"),
)

SPEC = FamilySpec(
    name="ttskit",
    families=(FAMILY,),
    frontends=frozen({"ttskit-phkit": "speedy.families.ttskit.frontend"}),
    builtin=True,
    export_plan="speedy.families.ttskit.export:export_plan",
    graphs=frozen(GRAPHS),
    compose="speedy.families.ttskit.runtime:compose",
    int8=INT8,
    # Held out of calibration; one sentence of about 170 decoder steps for the default voice.
    loop_check=LoopCheck("请把窗户关上好吗？", "stop_step", "same stop step and durations"),
    reference="speedy.families.ttskit.export:reference_folder",
)
