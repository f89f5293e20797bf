"""Float32 `nn.Linear` layers through oneDNN for inference on CPU.

PyTorch multiplies float32 matrices on CPU with MKL, which does not use AVX-512 on AMD processors; oneDNN, which
PyTorch also ships (and CTranslate2 uses), multiplies the same matrices about twice as fast on an AMD Zen 5 core, with
float32 arithmetic (benchmarks/RESULTS.md). For small products its call overhead costs more than it saves, so each
call picks the faster library by its size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["onednn_available", "onednn_linear_layers"]

# Below about a million multiply-adds (e.g. 47 rows x 256 x 64), oneDNN's call overhead (~5 us) makes it slower
# than MKL; above, it is up to 2.4x faster (measured on AMD Zen 5, 1 thread).
_MIN_MULTIPLY_ADDS = 1 << 20


def onednn_available() -> bool:
    """Whether this PyTorch build can run float32 linear layers through oneDNN."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn_forward(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight = module.weight
    if (
        x.dtype is torch.float32
        and x.device.type == "cpu"
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and x.numel() * weight.shape[0] >= _MIN_MULTIPLY_ADDS
    ):
        return torch.ops.mkldnn._linear_pointwise(x, weight, module.bias, "none", [], "")
    return nn.functional.linear(x, weight, module.bias)


@contextlib.contextmanager
def onednn_linear_layers(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, the model's float32 CPU `nn.Linear` layers multiply through oneDNN when that is faster.

    Inference only: a call that needs gradients keeps PyTorch's own path. Layers whose `forward` was already replaced
    on the instance are left alone. Without oneDNN (or with `enabled=False`) nothing changes.
    """
    patched: list[nn.Linear] = []
    if enabled and onednn_available():
        for module in model.modules():
            if (
                type(module) is nn.Linear
                and "forward" not in module.__dict__
                and module.weight.device.type == "cpu"
                and module.weight.dtype is torch.float32
            ):
                module.forward = _onednn_forward.__get__(module)
                patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
