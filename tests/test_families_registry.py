"""The family registry's lookups that the rest of the code relies on instead of spelling family names."""

from __future__ import annotations

import pytest

from speedy.errors import ModelError
from speedy.families import FamilySpec, default_family, registered, specs


def test_exactly_one_family_is_the_default() -> None:
    """One registered family is flagged default, and it has the hooks the no-source paths call."""
    spec = default_family()
    assert [s.name for s in specs() if s.default] == [spec.name]
    assert callable(spec.hook("torch_artifact"))
    assert callable(spec.hook("reference"))
    assert spec.builtin and callable(spec.hook("export_plan"))


def test_two_defaults_are_refused() -> None:
    """A second family flagged default makes the lookup fail with both names rather than pick one."""
    toy = FamilySpec(name="toy-default", families=("toy-default",), frontends={}, default=True)
    with registered(toy), pytest.raises(ModelError, match="toy-default"):
        default_family()
