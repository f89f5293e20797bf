"""Registration of pasero-hf classes with the `transformers` Auto classes and pipeline registry: the one place.

Each component has its own function; `register_all` runs them once (it is idempotent). It runs when
`pasero_hf.models` is imported (every entry point of the library imports it) or on `pasero_hf.register()`; never
when only `pasero_hf` or `pasero_hf.tokenization` is imported, which must not load torch or transformers.
"""

_registered = False


def _register_tokenizers() -> None:
    # By class name, so that AutoTokenizer loads a saved PaseroTokenizer directory that has no model config.json.
    from transformers.models.auto.tokenization_auto import REGISTERED_TOKENIZER_CLASSES

    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    REGISTERED_TOKENIZER_CLASSES.setdefault(PaseroTokenizer.__name__, PaseroTokenizer)


def _register_pasero() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration, PaseroModel
    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    AutoConfig.register(PaseroConfig.model_type, PaseroConfig, exist_ok=True)
    AutoModel.register(PaseroConfig, PaseroModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(PaseroConfig, PaseroForConditionalGeneration, exist_ok=True)
    AutoTokenizer.register(PaseroConfig, tokenizer_class=PaseroTokenizer, exist_ok=True)
    # `save_pretrained` then writes `auto_map` and copies the self-contained model/tokenizer files, so that the saved
    # directory loads with `trust_remote_code=True` where pasero_hf is not installed.
    PaseroConfig.register_for_auto_class()
    PaseroModel.register_for_auto_class("AutoModel")
    PaseroForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
    PaseroTokenizer.register_for_auto_class("AutoTokenizer")


def _register_nllb_moe() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

    from pasero_hf.models.nllb_moe import (
        PaseroNllbMoeConfig,
        PaseroNllbMoeForConditionalGeneration,
        PaseroNllbMoeModel,
    )

    AutoConfig.register(PaseroNllbMoeConfig.model_type, PaseroNllbMoeConfig, exist_ok=True)
    AutoModel.register(PaseroNllbMoeConfig, PaseroNllbMoeModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(PaseroNllbMoeConfig, PaseroNllbMoeForConditionalGeneration, exist_ok=True)


def _register_pipelines() -> None:
    from pasero_hf.generation.translation_pipeline import register_translation_pipeline

    register_translation_pipeline()


def register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    _register_tokenizers()
    _register_pasero()
    _register_nllb_moe()
    _register_pipelines()
