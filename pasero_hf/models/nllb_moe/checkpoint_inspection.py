"""What a local NLLB-MoE checkpoint holds, read before loading it: its model type and the expert counts of its
safetensors files, so that a mismatch is a clear error naming the layer rather than size-mismatch noise."""

from __future__ import annotations

import json
import os

from .configuration_pasero_nllb_moe import PaseroNllbMoeConfig


def _safetensors_shapes(directory: str) -> dict[str, list[int]]:
    """Parameter shapes of a local safetensors checkpoint (single file or sharded), read from the file headers."""
    from safetensors import safe_open

    index_path = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index_path):
        with open(index_path, encoding="utf-8") as index_file:
            files = sorted(set(json.load(index_file)["weight_map"].values()))
    elif os.path.isfile(os.path.join(directory, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        return {}
    shapes = {}
    for name in files:
        with safe_open(os.path.join(directory, name), framework="pt") as checkpoint:
            for key in checkpoint.keys():
                shapes[key] = list(checkpoint.get_slice(key).get_shape())
    return shapes


def check_model_type(directory: str) -> None:
    """Refuse other architectures (a dense NLLB-200 is an `m2m_100` model) instead of building a random MoE."""
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        return
    with open(config_path, encoding="utf-8") as config_file:
        model_type = json.load(config_file).get("model_type")
    if model_type not in (PaseroNllbMoeConfig.model_type, "nllb-moe"):
        raise ValueError(
            f"{config_path}: model_type is {model_type!r}, not an NLLB-MoE model ('pasero_nllb_moe' or 'nllb-moe'); "
            "dense NLLB-200 models load with transformers' M2M100ForConditionalGeneration"
        )


def check_checkpoint_expert_counts(directory: str, config: PaseroNllbMoeConfig) -> None:
    """Raise `ValueError` naming the layer when a local safetensors checkpoint's experts (router rows and `expert_N`
    modules) disagree with the per-layer counts of `config`. Other checkpoint formats are left to transformers."""
    shapes = _safetensors_shapes(directory)
    if not shapes:
        return
    for side in ("encoder", "decoder"):
        for layer_id, expected in enumerate(config.experts_per_layer(side)):
            prefix = f"model.{side}.layers.{layer_id}.ffn."
            router_shape = shapes.get(prefix + "router.classifier.weight")
            router_rows = router_shape[0] if router_shape else 0
            expert_ids = {
                key[len(prefix + "experts."):].split(".")[0]
                for key in shapes
                if key.startswith(prefix + "experts.")
            }
            if router_rows != expected or len(expert_ids) != expected:
                raise ValueError(
                    f"{directory}: {side} layer {layer_id} has {len(expert_ids)} experts and {router_rows} router rows "
                    f"in the checkpoint, but its config says {expected} ({side}_experts_per_layer="
                    f"{config.experts_per_layer(side)})"
                )
