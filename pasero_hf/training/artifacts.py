"""What a trained model directory carries besides its weights, so that every entry point decodes it as it was trained.

`AutoTokenizer` + `generate`, `pipeline("translation")`, `TextGenerator` and `pasero-decode` read three files:

- the tokenizer's `tokenizer_config.json`: the language-code layout of the training data (`lang_code`: source
  prefixed with `<lang:tgt>`), the default languages of a single-pair model, and `model_max_length` (the training
  source limit, so `truncation=True` cuts where training did);
- `generation_config.json`: beam size, maximum output length and length penalty, so `generate()` and the pipeline
  without arguments use the trained defaults instead of transformers' greedy search with a 20-token limit;
- `inference.yaml` (Pasero's file, `pasero_hf.training.run.inference_config`): the same decoding defaults, the
  languages and the language-code flags.
"""

from __future__ import annotations

from typing import Any

import torch

from pasero_hf.generation.decoding_options import DecodingOptions


def tokenizer_inference_settings(config, lang_pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Tokenizer attributes a trained model needs at inference (also written to `tokenizer_config.json`)."""
    settings: dict[str, Any] = {"model_max_length": config.data.source_len_limit}
    if config.data.lang_code:
        settings["lang_code"] = True
    sources = sorted({src for src, _ in lang_pairs})
    targets = sorted({tgt for _, tgt in lang_pairs})
    # a model with several languages has no default one (the data layer leaves the last corpus's languages set)
    settings["src_lang"] = sources[0] if len(sources) == 1 else None
    settings["tgt_lang"] = targets[0] if len(targets) == 1 else None
    return settings


def configure_tokenizer_for_inference(tokenizer, settings: dict[str, Any]) -> None:
    """Apply `settings` to `tokenizer` and to the init arguments `save_pretrained` writes.

    Called once the training data is tokenized: the data layer adds language codes itself (per corpus), so the
    tokenizer must not add them while tokenizing corpora. Attributes a tokenizer does not have (language codes of
    a plain Hugging Face tokenizer) are left out: `inference.yaml` still records them for `TextGenerator`.
    """
    for key, value in settings.items():
        if key == "model_max_length" or hasattr(tokenizer, key):
            setattr(tokenizer, key, value)
            tokenizer.init_kwargs[key] = value


def configure_generation_defaults(model: torch.nn.Module, beam_size: int, max_output_len: int) -> None:
    """The decoding defaults of training in the model's `generation_config` (saved as generation_config.json)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    generation_config = base.generation_config
    generation_config.num_beams = beam_size
    generation_config.max_new_tokens = max_output_len
    generation_config.length_penalty = DecodingOptions().len_penalty
