"""Decoding: Pasero-exact search, the `TextGenerator` API and whole-corpus decoding with BLEU/chrF."""

import importlib

# Names load on first access, as in `pasero_hf.data`: registering the "translation" pipeline (when
# `pasero_hf.models` is imported) loads `translation_pipeline` alone, not the whole decoding stack, which itself
# imports `pasero_hf.models`.
_EXPORTS = {
    "Hypothesis": "beam_search", "pasero_search": "beam_search", "score_targets": "beam_search",
    "InferenceCorpus": "inference_corpus", "get_inference_corpus": "inference_corpus",
    "TextGenerator": "text_generator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
