"""What a model is, as decoding needs to know it: special ids, maximum lengths, layer counts, sizes, forward inputs.

Model families spell these differently (`encoder_layers` or `num_hidden_layers`, `max_source_positions` or
`n_positions`, ids in the config or only in the generation config): `ModelInfo` reads them once, in one place, so that
the search and the input encoding ask it instead of probing configs themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

import torch


def _first_int(config: Any, names: tuple[str, ...], positive: bool = True) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and (value > 0 or not positive):
            return value
    return None


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """The ids a search cannot do without."""

    decoder_start: int
    eos: int
    pad: int


class ModelInfo:
    """Facts about `model` read from its config (and generation config) on demand."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.config = model.config
        self.text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config

    @property
    def model_type(self) -> str | None:
        return getattr(self.config, "model_type", None)

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.config, "is_encoder_decoder", False))

    def token_id(self, name: str) -> int | list[int] | None:
        """`decoder_start_token_id`, `eos_token_id`, ... from the config, else from the generation config."""
        value = getattr(self.config, name, None)
        generation_config = getattr(self.model, "generation_config", None)
        if value is None and generation_config is not None:
            value = getattr(generation_config, name, None)
        return value

    def special_ids(self) -> SpecialIds:
        """Decoder start, EOS and padding ids; a ValueError names the one that is missing or not unique."""
        values = {}
        for name in ("decoder_start_token_id", "eos_token_id", "pad_token_id"):
            value = self.token_id(name)
            if isinstance(value, (list, tuple)):
                if len(value) != 1:
                    raise ValueError(f"pasero_search supports a single {name}, the model config has {value}")
                value = value[0]
            if value is None:
                raise ValueError(f"the model config has no {name}: pasero_search needs it")
            values[name] = value
        return SpecialIds(values["decoder_start_token_id"], values["eos_token_id"], values["pad_token_id"])

    @property
    def max_source_len(self) -> int | None:
        """Longest source the encoder's positions allow, if the config says."""
        names = ("encoder_max_len", "max_source_positions", "max_position_embeddings", "n_positions")
        return _first_int(self.text_config, names)

    @property
    def max_decoder_len(self) -> int | None:
        """Longest decoder sequence the model's positions allow (Pasero caps the output there), if the config says."""
        return _first_int(self.config, ("max_target_positions", "decoder_max_len", "max_position_embeddings"))

    def num_layers(self, side: str) -> int:
        """Layer count of the encoder (`side="enc"`) or of the decoder (`"dec"`)."""
        names = ("encoder_layers",) if side == "enc" else ("decoder_layers", "num_hidden_layers", "n_layer")
        value = _first_int(self.text_config, names, positive=False)
        if value is None:
            raise ValueError(f"cannot find the number of {side} layers in the model config")
        return value

    @property
    def hidden_size(self) -> int:
        return getattr(self.text_config, "d_model", None) or getattr(self.text_config, "hidden_size", 0)

    def num_heads(self, side: str) -> int:
        heads = getattr(self.text_config, f"{'encoder' if side == 'enc' else 'decoder'}_attention_heads", None)
        return heads or getattr(self.text_config, "num_attention_heads", 0)

    @property
    def vocab_size(self) -> int:
        return self.text_config.vocab_size

    @functools.cached_property
    def forward_params(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.model.forward).parameters)

    @functools.cached_property
    def encoder_params(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.model.get_encoder().forward).parameters)

    @property
    def prefers_pasero_search(self) -> bool:
        """`search="auto"` runs Pasero's exact search on Pasero models, `generate` on the others."""
        return self.model_type == "pasero"
