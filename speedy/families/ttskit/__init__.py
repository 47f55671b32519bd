"""ttskit 0.3.8 (MIT): a Chinese multi-speaker Mellotron (autoregressive) + MelGAN, 22.05 kHz, 24 voices.

Modules: ``source`` (the PyPI wheel, checksum-checked, read with torch), ``modules`` (the torch
networks), ``export`` (four ONNX graphs + parity + manifest), ``loop`` (the torch-free host loop),
``runtime`` (the Synthesizer's composite acoustic runner), ``frontend`` (our frontend → ttskit symbols).
This file imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import hashlib

import numpy as np

from speedy.families import FamilySpec, frozen
from speedy.families.graph_spec import LoopCheck
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


SPEC = FamilySpec(
    name="ttskit",
    families=(FAMILY,),
    frontends=frozen({"ttskit-phkit": "speedy.families.ttskit.frontend"}),
    builtin=True,
    export_plan="speedy.families.ttskit.export:export_plan",
    graphs=frozen(GRAPHS),
    compose="speedy.families.ttskit.runtime:compose",
    quantize="speedy.families.ttskit.quantize:stage_int8",
    # Held out of calibration; one sentence of about 170 decoder steps for the default voice.
    loop_check=LoopCheck("请把窗户关上好吗？", "stop_step", "same stop step and durations"),
    reference="speedy.families.ttskit.export:reference_folder",
)
