"""Replacing the `forward` of some of a model's layers for the length of a block (faster CPU kernels), then back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from torch import nn

__all__ = ["overridden_forwards"]


@contextlib.contextmanager
def overridden_forwards(model: nn.Module, selected: Callable[[nn.Module], bool],
                        forward: Callable[[nn.Module, object], object]) -> Iterator[None]:
    """Within the block, `forward(layer, x)` runs instead of `layer.forward(x)` for the model's layers that
    `selected` accepts. Layers whose `forward` was already replaced on the instance (by another block, or by their
    user) are left alone, and every replaced one gets its class's `forward` back at the end."""
    patched: list[nn.Module] = []
    for module in model.modules():
        if "forward" not in module.__dict__ and selected(module):
            module.forward = forward.__get__(module)
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
