"""Python 3.11 compatibility for safety-gymnasium 1.0.0, with no dependency beyond numpy and the standard library.

Its asset dataclasses use numpy arrays as field defaults (e.g. `color: np.array = COLOR['goal']`). Python 3.11's
dataclasses reject any unhashable default, so `import safety_gymnasium` raises ValueError.
`ndarray_dataclass_defaults` makes `@dataclass` turn such defaults into `field(default_factory=...)` returning a
copy of the array, for as long as it is active. (A copy per instance is what the authors meant; a shared mutable
array default was the bug Python 3.11 guards against.)

It is its own module so that a process without cmdp-lab installed (OmniSafe's virtual environment in
`benchmarks/omnisafe_side_by_side.py`) can import Safety-Gymnasium the same way we do.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import sys
from typing import Any, Iterator

import numpy as np


def _ndarray_defaults_to_factories(cls: type) -> type:
    for name in list(cls.__dict__.get("__annotations__", {})):
        value = cls.__dict__.get(name)
        if isinstance(value, np.ndarray):
            setattr(cls, name, dataclasses.field(default_factory=functools.partial(np.array, value)))
    return cls


@contextlib.contextmanager
def ndarray_dataclass_defaults() -> Iterator[None]:
    """While active, `@dataclass` accepts numpy-array field defaults (as Python <= 3.10 did)."""
    original = dataclasses.dataclass

    def dataclass(cls: type | None = None, /, **kwargs: Any) -> Any:
        def wrap(c: type) -> type:
            return original(**kwargs)(_ndarray_defaults_to_factories(c))

        return wrap if cls is None else wrap(cls)

    dataclasses.dataclass = dataclass
    try:
        yield
    finally:
        dataclasses.dataclass = original


def import_patched() -> Any:
    """Import safety_gymnasium with numpy-array dataclass defaults accepted; the patch is undone straight after."""
    if "safety_gymnasium" in sys.modules:
        return sys.modules["safety_gymnasium"]
    with ndarray_dataclass_defaults():
        return importlib.import_module("safety_gymnasium")
