"""Pasero's bottleneck adapters on pretrained encoder-decoders (M2M100/NLLB-200 and the other BART-like models whose
encoder and decoder hold a `layers` list), with the base model frozen.

The adapters are those of Pasero models (`pasero.adapters_pasero`): the same module, the same names (`default`,
`lang:x`, `lang:x->y`, `domain:x`), the same per-batch choice (`*_adapters_by`: from the batch's languages or
domain) and the same controls (`set_active_adapters`, `add_adapters`, `freeze_all_but_adapters`), reached through
`model.pasero_adapters`. Each one follows a whole layer (after its feed-forward block), as in Pasero; its weights
live in the layer (`model.encoder.layers.N.adapters.lang:en.*`), so the Trainer, DDP and checkpoints see them.

The model's forward (and its encoder's and decoder's) takes `source_lang`, `target_lang` and `domain` like a Pasero
model's, so that training batches, `generate` and `TextGenerator` pick the adapters without knowing about them.

An adapter directory holds the adapter tensors alone (`adapters.safetensors`) and `pasero_adapters.json`: the base
model they load onto (a directory or Hub repo id) and the adapter options, so it is a few MB instead of the model.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pasero_hf.models.locate import ADAPTERS_FILE, ADAPTERS_INFO
from pasero_hf.models.pasero.adapters_pasero import PaseroAdapter, PaseroAdapterControls, PaseroAdapterStack
from pasero_hf.models.pasero.configuration_pasero import ADAPTERS_BY_KEYS, check_adapter_name
from pasero_hf.tokenization.file_utils import atomic_path

SELECTORS = ("source_lang", "target_lang", "domain")
SIDES = ("encoder", "decoder")


@dataclass
class AdapterOptions:
    """The adapter options of a pretrained model, named as PaseroConfig's (dimension 64: Pasero's
    `adapter_transformer`). A side with neither names nor `*_adapters_by` gets one adapter, 'default'."""

    encoder_adapter_dim: int = 64
    decoder_adapter_dim: int = 64
    encoder_adapter_layer_ids: list[int] | None = None
    decoder_adapter_layer_ids: list[int] | None = None
    encoder_adapters: list[str] | None = None
    decoder_adapters: list[str] | None = None
    encoder_adapters_by: list[str] | None = None
    decoder_adapters_by: list[str] | None = None
    adapter_zero_init: bool = False

    def __post_init__(self) -> None:
        for side in SIDES:
            by = list(getattr(self, f"{side}_adapters_by") or [])
            setattr(self, f"{side}_adapters_by", by)
            for key in by:
                if key not in ADAPTERS_BY_KEYS:
                    raise ValueError(f"{side}_adapters_by contains {key!r}; expected some of {ADAPTERS_BY_KEYS}")
            names = getattr(self, f"{side}_adapters")
            if names is None and not by and getattr(self, f"{side}_adapter_dim"):
                setattr(self, f"{side}_adapters", ["default"])
            for name in getattr(self, f"{side}_adapters") or []:
                check_adapter_name(name, f"{side}_adapters")
            if getattr(self, f"{side}_adapter_dim") < 0:
                raise ValueError(f"{side}_adapter_dim must be >= 0, got {getattr(self, f'{side}_adapter_dim')}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str) -> AdapterOptions:
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{where}: unknown adapter options {unknown}; expected some of {cls.field_names()}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _AdapterSlot:
    """What `PaseroAdapterStack` needs of a layer (`adapters`, `add_adapter`), for a pretrained model's layer: the
    adapters are registered on the layer itself, so its state dict holds them."""

    def __init__(self, layer: nn.Module, embed_dim: int, adapter_dim: int, zero_init: bool):
        layer.adapters = nn.ModuleDict()
        self.layer = layer
        self.embed_dim, self.adapter_dim, self.zero_init = embed_dim, adapter_dim, zero_init

    @property
    def adapters(self) -> nn.ModuleDict:
        return self.layer.adapters

    def add_adapter(self, name: str) -> None:
        parameter = next(self.layer.parameters())
        self.layer.adapters[name] = PaseroAdapter(self.embed_dim, self.adapter_dim, self.zero_init).to(
            device=parameter.device, dtype=parameter.dtype)


class _SideAdapters(PaseroAdapterStack):
    """The adapters of one side: which to stack for the current call (`selected`, kept after the call so that
    activation checkpointing recomputes a layer with the adapters of its forward pass)."""

    def __init__(self, side: str, options: AdapterOptions, slots: list[_AdapterSlot]):
        self.side, self.config, self.layers = side, options, slots
        self.active_adapters: list[str] | None = None
        self._warned_missing: set[str] = set()
        self.selected: list[str] | None = None
        self.depth = 0  # > 0 inside a forward that chose the adapters (the model's, then its encoder's)


class PretrainedModelAdapters(PaseroAdapterControls):
    """`model.pasero_adapters`: the adapter controls of Pasero models, for a pretrained model, plus saving."""

    def __init__(self, model: nn.Module, options: AdapterOptions, base_model: str):
        self.model, self.options, self.base_model = model, options, base_model
        self.sides = {}
        for side, stack in zip(SIDES, _stacks(model)):
            dim = getattr(options, f"{side}_adapter_dim")
            slots = [_AdapterSlot(layer, model.config.d_model, dim, options.adapter_zero_init) for layer in stack.layers]
            self.sides[side] = _SideAdapters(side, options, slots)
            for layer in stack.layers:
                layer.register_forward_hook(functools.partial(_after_layer, self.sides[side]))
            stack.forward = _choosing_adapters(stack.forward, [self.sides[side]])
            names = getattr(options, f"{side}_adapters") or []
            if dim and names:
                self.sides[side].add_adapters(list(names))
        model.forward = _choosing_adapters(model.forward, list(self.sides.values()))

    def get_encoder(self) -> _SideAdapters:
        return self.sides["encoder"]

    def get_decoder(self) -> _SideAdapters:
        return self.sides["decoder"]

    def named_parameters(self):
        return self.model.named_parameters()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter tensors alone, under the model's state dict names."""
        return {key: value.detach().cpu().contiguous() for key, value in self.model.state_dict().items()
                if "adapters" in key.split(".")}

    def save(self, directory: str | os.PathLike) -> None:
        """`adapters.safetensors` + `pasero_adapters.json` (base model, adapter options) into `directory`."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / ADAPTERS_FILE) as path:
            save_file(self.state_dict(), str(path), metadata={"format": "pt"})
        info = {"base_model": self.base_model, "base_model_type": self.model.config.model_type,
                **self.options.to_dict()}
        with atomic_path(directory / ADAPTERS_INFO) as path:
            Path(path).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _stacks(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    stacks = model.get_encoder(), model.get_decoder()
    if not all(isinstance(getattr(stack, "layers", None), nn.ModuleList) for stack in stacks) or not hasattr(
            model.config, "d_model"):
        raise ValueError(f"Pasero bottleneck adapters need an encoder and a decoder with a `layers` list (M2M100, "
                         f"NLLB-200, Marian, mBART...): {type(model).__name__} ({model.config.model_type}) has none; "
                         "use LoRA (lora_rank) instead")
    return stacks


def _after_layer(side: _SideAdapters, layer: nn.Module, args, output):
    """Forward hook: the layer's output through the selected adapters, in order (Pasero's adapter placement)."""
    names = side.selected if side.selected is not None else side.resolve_adapters({})
    if not names:
        return output
    hidden = output[0] if isinstance(output, tuple) else output
    for name in names:
        if name in layer.adapters:
            hidden = layer.adapters[name](hidden)
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _choosing_adapters(forward, sides: list[_SideAdapters]):
    """`forward` that also takes `source_lang`, `target_lang` and `domain` and chooses each side's adapters from
    them; a nested call without them (the model's forward calling its encoder) keeps the outer choice."""
    signature = inspect.signature(forward)
    parameters = list(signature.parameters.values())
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
             for name in SELECTORS if name not in signature.parameters]
    position = next((i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_KEYWORD), len(parameters))

    @functools.wraps(forward)
    def choosing(*args, source_lang=None, target_lang=None, domain=None, **kwargs):
        selectors = {"source_lang": source_lang, "target_lang": target_lang, "domain": domain}
        given = any(value is not None for value in selectors.values())
        for side in sides:
            if given or side.depth == 0:
                side.selected = side.resolve_adapters(selectors)
            side.depth += 1
        try:
            return forward(*args, **kwargs)
        finally:
            for side in sides:
                side.depth -= 1

    choosing.__signature__ = signature.replace(parameters=parameters[:position] + extra + parameters[position:])
    return choosing


def add_pretrained_adapters(model: nn.Module, options: AdapterOptions, base_model: str) -> PretrainedModelAdapters:
    """Insert Pasero bottleneck adapters (`options`) into the pretrained `model`, in place; returns its controls,
    also at `model.pasero_adapters`. `base_model` (directory or Hub repo id) is what a saved adapter directory names.

    Raises:
        ValueError: the model already has adapters, has no encoder/decoder `layers`, or a layer id is out of range.
    """
    if hasattr(model, "pasero_adapters"):
        raise ValueError(f"{type(model).__name__} already has Pasero adapters")
    for side, stack in zip(SIDES, _stacks(model)):
        for layer_id in getattr(options, f"{side}_adapter_layer_ids") or []:
            if not 0 <= layer_id < len(stack.layers):
                raise ValueError(f"{side}_adapter_layer_ids contains {layer_id}, but the {side} of "
                                 f"{model.config.model_type} has {len(stack.layers)} layers")
    model.pasero_adapters = PretrainedModelAdapters(model, options, base_model)
    return model.pasero_adapters


def read_adapter_info(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / ADAPTERS_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"{path}: cannot read the adapter description: {error}") from None
    if not isinstance(info, dict) or not info.get("base_model"):
        raise ValueError(f"{path}: does not name its base model (base_model)")
    return info


def is_pretrained_adapter_dir(directory: str | os.PathLike) -> bool:
    """An adapter directory of a pretrained model: adapters and their description, no model of its own."""
    directory = Path(directory)
    return (directory / ADAPTERS_INFO).is_file() and not (directory / "config.json").is_file()


def load_pretrained_adapters(model: nn.Module, directory: str | os.PathLike) -> PretrainedModelAdapters:
    """Insert the adapters saved in `directory` into the base `model` and load their weights.

    Raises:
        ValueError: the adapters do not fit the model (other layers or dimensions, missing or extra tensors).
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    info = read_adapter_info(directory)
    where = str(directory / ADAPTERS_INFO)
    options = AdapterOptions.from_dict({k: v for k, v in info.items() if not k.startswith("base_model")}, where)
    adapters = add_pretrained_adapters(model, options, info["base_model"])
    state = load_file(str(directory / ADAPTERS_FILE))
    expected = set(adapters.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"{directory}: the adapters do not fit {type(model).__name__} "
                         f"({model.config.model_type}): missing {missing[:5]}, unexpected {unexpected[:5]}")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes: another model dimension
        raise ValueError(f"{directory}: the adapters do not fit {type(model).__name__}: {error}") from None
    return adapters
