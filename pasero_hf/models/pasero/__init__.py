"""The Pasero Transformer as a Hugging Face model: configuration, modeling and checkpoint conversion."""

from pasero_hf.models.pasero.configuration_pasero import ARCHITECTURES, PaseroConfig
from pasero_hf.models.pasero.modeling_pasero import (
    PaseroForConditionalGeneration,
    PaseroModel,
    PaseroPreTrainedModel,
)

__all__ = [
    "ARCHITECTURES",
    "PaseroConfig",
    "PaseroForConditionalGeneration",
    "PaseroModel",
    "PaseroPreTrainedModel",
]
