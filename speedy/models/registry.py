"""What the torch loaders share: reading a converted folder's config.json and its safetensors weights.

Which loader a family uses is declared in its :class:`speedy.families.FamilySpec` (``torch_loaders``) and
looked up by :func:`speedy.families.torch_loader`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from speedy.errors import ModelError

Loader = Callable[[Path], tuple[nn.Module, nn.Module, dict[str, Any]]]
"""folder -> (acoustic model, vocoder, config dict); modules are in eval mode on CPU."""


def read_config(folder: Path) -> dict[str, Any]:
    """config.json of a converted model folder."""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def load_models(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """Load any converted folder through the loader its config.json ``family`` names."""
    from speedy.families import torch_loader

    cfg = read_config(folder)
    loader: Loader = torch_loader(str(cfg.get("family", "")))
    return loader(Path(folder))


def load_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        module.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from exc
