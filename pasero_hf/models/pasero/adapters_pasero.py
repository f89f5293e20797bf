"""Pasero's bottleneck adapters: the adapter module, what an encoder or decoder stack does with adapters (which ones
to stack for a batch, adding new ones, dropping those a checkpoint lacks) and the model-level controls.

Kept beside `modeling_pasero.py` and imported relatively, so that it travels with the model's remote code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import logging

from .configuration_pasero import PaseroConfig, adapter_name, check_adapter_name

logger = logging.get_logger(__name__)
_KEEP = object()  # "leave this side's adapter selection as it is" in `set_active_adapters`


class PaseroAdapter(nn.Module):
    """Residual bottleneck adapter: x + up(relu(down(layer_norm(x))))."""

    def __init__(self, embed_dim: int, bottleneck_dim: int, zero_init: bool):
        super().__init__()
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.down = nn.Linear(embed_dim, bottleneck_dim)
        self.up = nn.Linear(bottleneck_dim, embed_dim)
        # transformers initializes leaf modules only, so the projections carry their adapter init rule themselves
        self.down.adapter_init = "kaiming" if zero_init else "near_zero"
        self.up.adapter_init = "zero" if zero_init else "near_zero"
        self.activation = nn.ReLU()
        for projection in (self.down, self.up):
            init_adapter_projection(projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.activation(self.down(self.layer_norm(x))))


def init_adapter_projection(projection: nn.Linear) -> None:
    """Pasero's adapter init: identity adapters (kaiming down, zero up) or near-zero ones, so that a freshly added
    adapter barely changes a trained model."""
    if projection.adapter_init == "kaiming":
        init.kaiming_uniform_(projection.weight, a=math.sqrt(5))
    elif projection.adapter_init == "zero":
        init.zeros_(projection.weight)
    else:
        init.uniform_(projection.weight, -1e-6, 1e-6)
    init.zeros_(projection.bias)


class PaseroAdapterLayer:
    """Adapter handling of an encoder or decoder layer (with its `fc1`): the adapters stacked on its output."""

    def init_adapters(self, config: PaseroConfig, side: str, layer_idx: int) -> None:
        self.adapter_dim = getattr(config, f"{side}_adapter_dim")
        self.adapter_zero_init = config.adapter_zero_init
        self.adapters = nn.ModuleDict()
        layer_ids = getattr(config, f"{side}_adapter_layer_ids")
        if self.adapter_dim and (layer_ids is None or layer_idx in layer_ids):
            for name in getattr(config, f"{side}_adapters") or []:
                self.add_adapter(name)

    def add_adapter(self, name: str) -> None:
        parameter = self.fc1.weight
        self.adapters[name] = PaseroAdapter(self.fc1.in_features, self.adapter_dim, self.adapter_zero_init).to(
            device=parameter.device, dtype=parameter.dtype
        )

    def apply_adapters(self, x: torch.Tensor, adapter_names: Sequence[str]) -> torch.Tensor:
        for name in adapter_names:
            if name in self.adapters:
                x = self.adapters[name](x)
        return x


class PaseroAdapterStack:
    """Adapter handling of an encoder or decoder stack (`side`, `config`, `layers`)."""

    def adapter_layers(self) -> list[nn.Module]:
        if not getattr(self.config, f"{self.side}_adapter_dim"):
            return []
        layer_ids = getattr(self.config, f"{self.side}_adapter_layer_ids")
        return [layer for idx, layer in enumerate(self.layers) if layer_ids is None or idx in layer_ids]

    def adapter_names(self) -> list[str]:
        """Names of the adapters this stack holds weights for."""
        names: dict[str, None] = {}
        for layer in self.adapter_layers():
            names.update(dict.fromkeys(layer.adapters))
        return list(names)

    def add_adapters(self, names: Sequence[str]) -> None:
        layers = self.adapter_layers()
        if not layers:
            raise ValueError(f"cannot add {self.side} adapters: PaseroConfig.{self.side}_adapter_dim is 0")
        for name in names:
            check_adapter_name(name, f"{self.side} adapter")
            for layer in layers:
                if name not in layer.adapters:
                    layer.add_adapter(name)
        configured = list(getattr(self.config, f"{self.side}_adapters") or [])
        setattr(self.config, f"{self.side}_adapters", configured + [n for n in names if n not in configured])

    def drop_adapters_missing_from(self, missing_keys: set[str]) -> None:
        """Remove the adapters whose weights a checkpoint lacked (`missing_keys`), warning once per name."""
        dropped: dict[str, list[int]] = {}
        for idx, layer in enumerate(self.layers):
            for name in list(layer.adapters):
                key = f"{self.side}.layers.{idx}.adapters.{name}.down.weight"
                if key in missing_keys or f"model.{key}" in missing_keys:
                    del layer.adapters[name]
                    dropped.setdefault(name, []).append(idx)
        for name, layer_ids in dropped.items():
            logger.warning(
                f"{self.side} adapter '{name}' has no weights in the checkpoint (layers {layer_ids}): disabled"
            )

    def resolve_adapters(self, selectors: dict[str, str | None]) -> list[str]:
        """Adapters to stack for this batch: the explicit selection, else the ones `*_adapters_by` picks from the
        batch's languages/domain, else all the configured ones. Names without weights are skipped with a warning."""
        if not getattr(self.config, f"{self.side}_adapter_dim"):
            return []
        if self.active_adapters is not None:
            names = self.active_adapters
        elif getattr(self.config, f"{self.side}_adapters_by"):
            names = [self._adapter_for(key, selectors) for key in getattr(self.config, f"{self.side}_adapters_by")]
        else:
            names = getattr(self.config, f"{self.side}_adapters") or []
        available = set(self.adapter_names())
        for name in names:
            if name not in available and name not in self._warned_missing:
                self._warned_missing.add(name)
                logger.warning(f"no weights for {self.side} adapter '{name}': it is disabled")
        return [name for name in names if name in available]

    def _adapter_for(self, key: str, selectors: dict[str, str | None]) -> str:
        needed = ("source_lang", "target_lang") if key == "lang_pair" else (key,)
        values = []
        for name in needed:
            value = selectors.get(name)
            if isinstance(value, (list, tuple)):
                if len(set(value)) != 1:
                    raise ValueError(
                        f"{self.side}_adapters_by={key!r} needs one {name} per batch, got {sorted(set(value))}"
                    )
                value = value[0]
            if value is None:
                raise ValueError(
                    f"PaseroConfig.{self.side}_adapters_by includes {key!r}: pass `{name}=...` to forward/generate "
                    "(or select adapters with `set_active_adapters`)"
                )
            values.append(value)
        return adapter_name(key, *values)


class PaseroAdapterControls:
    """Model-level adapter controls, for `PaseroModel` and `PaseroForConditionalGeneration`."""

    def set_active_adapters(self, encoder=_KEEP, decoder=_KEEP) -> None:
        """Choose the adapters to stack, in order, on each side: a list of names (an empty list disables them), or
        None to go back to the automatic choice (`*_adapters_by` from the batch, else all configured adapters)."""
        for stack, names in ((self.get_encoder(), encoder), (self.get_decoder(), decoder)):
            if names is _KEEP:
                continue
            if names is not None:
                names = [names] if isinstance(names, str) else list(names)
                for name in names:
                    check_adapter_name(name, f"set_active_adapters({stack.side}=...)")
            stack.active_adapters = names

    def add_adapters(self, names: Sequence[str], encoder: bool = True, decoder: bool = True) -> None:
        """Add new, freshly initialized adapters (e.g. a new language pair) next to the existing ones."""
        if isinstance(names, str):
            names = [names]
        for stack, wanted in ((self.get_encoder(), encoder), (self.get_decoder(), decoder)):
            if wanted:
                stack.add_adapters(list(names))

    def adapter_names(self) -> dict[str, list[str]]:
        """Adapters that have weights, per side."""
        return {"encoder": self.get_encoder().adapter_names(), "decoder": self.get_decoder().adapter_names()}

    def freeze_all_but_adapters(self, names: Sequence[str] | None = None) -> int:
        """Train only adapter parameters (only those of `names` if given); returns the number of trainable ones."""
        names = None if names is None else set([names] if isinstance(names, str) else names)
        trainable = 0
        for param_name, param in self.named_parameters():
            parts = param_name.split(".")
            is_adapter = "adapters" in parts and (names is None or parts[parts.index("adapters") + 1] in names)
            param.requires_grad_(is_adapter)
            trainable += param.numel() if is_adapter else 0
        if trainable == 0:
            raise ValueError(f"freeze_all_but_adapters: no adapter parameters match {sorted(names or ['*'])}")
        return trainable
