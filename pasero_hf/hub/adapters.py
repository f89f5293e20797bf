"""Bottleneck adapters pushed alone (`pasero-push --adapters-only`), loaded onto their base model by repo id.

An adapters repo holds `adapters.safetensors` (the adapter tensors only), the adapter model's `config.json` (with its
remote code) and `pasero_adapters.json` naming the base repo; adapters fine-tuned on a pretrained model (NLLB-200,
M2M100...) have no config.json: their pasero_adapters.json also holds the adapter options
(`pasero_hf.models.pretrained_adapters`). LoRA adapters pushed alone are ordinary PEFT repos:
`peft.PeftModel.from_pretrained(base, REPO)` or `AutoPeftModelForSeq2SeqLM.from_pretrained(REPO)` load them.
"""

from __future__ import annotations

import json
import os

from pasero_hf.hub.push import ADAPTERS_FILE, ADAPTERS_INFO
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.models.pretrained_adapters import is_pretrained_adapter_dir, load_pretrained_adapters


def load_adapter_model(name_or_path: str | os.PathLike, *, revision: str | None = None,
                       base_model: str | None = None, base_revision: str | None = None, **kwargs):
    """The base model (its repo from pasero_adapters.json, or `base_model`) with the repo's adapters loaded.

    Raises:
        FileNotFoundError: unknown repo or revision (of the adapters or the base), or not an adapters repo.
        ValueError: the adapter weights do not fit the base model.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    adapters_dir = resolve_model_dir(name_or_path, revision=revision)
    info_path = adapters_dir / ADAPTERS_INFO
    if not info_path.is_file() or not (adapters_dir / ADAPTERS_FILE).is_file():
        raise FileNotFoundError(f"{name_or_path}: not an adapters repo ({ADAPTERS_INFO} or {ADAPTERS_FILE} missing)")
    info = json.loads(info_path.read_text())
    base_name = base_model or info["base_model"]
    base_dir = resolve_model_dir(base_name, revision=base_revision)
    if is_pretrained_adapter_dir(adapters_dir):  # adapters of a pretrained model: the base as it is, then them
        model = AutoModelForSeq2SeqLM.from_pretrained(base_dir, **kwargs)
        load_pretrained_adapters(model, adapters_dir)
        return model.eval()
    # the adapter model's architecture (base + adapters), then the base's weights and the adapters' on top of it
    model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(adapters_dir, **kwargs), **kwargs)
    state = {}
    for path in sorted(base_dir.glob("*.safetensors")):
        state.update(load_file(str(path)))
    state.update(load_file(str(adapters_dir / ADAPTERS_FILE)))
    result = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [key for key in result.missing_keys if key not in tied]
    if missing or result.unexpected_keys:
        raise ValueError(f"{name_or_path}: adapters do not fit base model {base_name}: missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    model.tie_weights()
    return model.eval()
