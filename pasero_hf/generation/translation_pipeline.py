"""A `translation` pipeline task for transformers 5 (which removed its own), for Pasero models and M2M100/NLLB.

    >>> import pasero_hf.models  # registers the models and the task
    >>> from transformers import pipeline
    >>> translate = pipeline("translation", model="converted-model-dir", src_lang="en", tgt_lang="es")
    >>> translate("In the beginning God created the heaven and the earth.")
    [{'translation_text': '...'}]

Language handling: tokenizers that know how to prepare translation inputs (M2M100, NLLB, mBART: their
`_build_translation_inputs` sets the source language code and returns `forced_bos_token_id` for the target language)
are used that way; other tokenizers (Pasero's) get `src_lang`/`tgt_lang` set, and the decoder prompt from their
`decoder_prefix_ids()` when it holds a target language code. Models whose forward takes `source_lang`/`target_lang`
(Pasero, for adapter selection) also receive them.
"""

import inspect
from typing import Any

import torch
from transformers import Pipeline


class TranslationPipeline(Pipeline):
    """Translate texts with an encoder-decoder model; returns `[{"translation_text": ...}, ...]`, one per input."""

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not getattr(self.model.config, "is_encoder_decoder", False):
            raise ValueError(
                f"the translation pipeline needs an encoder-decoder model, got {type(self.model).__name__}"
            )
        forward_parameters = inspect.signature(self.model.forward).parameters
        self._model_takes_langs = "source_lang" in forward_parameters and "target_lang" in forward_parameters

    def _sanitize_parameters(
        self,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        truncation: bool | None = None,
        skip_special_tokens: bool | None = None,
        clean_up_tokenization_spaces: bool | None = None,
        **generate_kwargs,
    ) -> tuple[dict, dict, dict]:
        preprocess_params: dict[str, Any] = {}
        if src_lang is not None:
            preprocess_params["src_lang"] = src_lang
        if tgt_lang is not None:
            preprocess_params["tgt_lang"] = tgt_lang
        if truncation is not None:
            preprocess_params["truncation"] = truncation
        postprocess_params: dict[str, Any] = {}
        if skip_special_tokens is not None:
            postprocess_params["skip_special_tokens"] = skip_special_tokens
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def __call__(self, texts: str | list[str], **kwargs) -> list[dict[str, str]]:
        """Translate one text or a list of texts; always returns one `{"translation_text": ...}` per text."""
        result = super().__call__(texts, **kwargs)
        if isinstance(texts, str):
            return result if isinstance(result, list) else [result]
        return [item[0] if isinstance(item, list) else item for item in result]

    def preprocess(
        self, text: str, src_lang: str | None = None, tgt_lang: str | None = None, truncation: bool = False
    ) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError(f"the translation pipeline translates strings, got {type(text).__name__}")
        tokenizer = self.tokenizer
        if hasattr(tokenizer, "_build_translation_inputs") and (src_lang is not None or tgt_lang is not None):
            inputs = dict(
                tokenizer._build_translation_inputs(
                    text, return_tensors="pt", src_lang=src_lang, tgt_lang=tgt_lang, truncation=truncation
                )
            )
        else:
            self._set_languages(src_lang, tgt_lang)
            inputs = dict(tokenizer(text, return_tensors="pt", truncation=truncation))
            # Pasero models trained with target language codes start decoding with `</s> <lang:tgt>`
            prefix = tokenizer.decoder_prefix_ids() if hasattr(tokenizer, "decoder_prefix_ids") else []
            if len(prefix) > 1:
                inputs["decoder_input_ids"] = torch.tensor([prefix])
        if self._model_takes_langs:
            inputs["source_lang"] = src_lang
            inputs["target_lang"] = tgt_lang
        return inputs

    def _set_languages(self, src_lang: str | None, tgt_lang: str | None) -> None:
        for attribute, value in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
            if value is not None and hasattr(self.tokenizer, attribute):
                setattr(self.tokenizer, attribute, value)

    def _forward(self, model_inputs: dict[str, Any], **generate_kwargs) -> dict[str, Any]:
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        extra = {key: model_inputs.pop(key) for key in ("forced_bos_token_id", "source_lang", "target_lang")
                 if key in model_inputs}
        extra = {key: value for key, value in extra.items() if value is not None}
        output_ids = self.model.generate(**model_inputs, **extra, **generate_kwargs)
        return {"output_ids": output_ids}

    def postprocess(
        self,
        model_outputs: dict[str, Any],
        skip_special_tokens: bool = True,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[dict[str, str]]:
        texts = self.tokenizer.batch_decode(
            model_outputs["output_ids"],
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
        )
        return [{"translation_text": text} for text in texts]


def register_translation_pipeline() -> None:
    """Register the `translation` task with transformers' pipeline registry."""
    from transformers import AutoModelForSeq2SeqLM, pipelines

    # transformers 5 lists "translation" as a removed task and rejects the name before looking at the registry.
    pipelines.REMOVED_TASKS.pop("translation", None)
    pipelines.PIPELINE_REGISTRY.register_pipeline(
        "translation", pipeline_class=TranslationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )


__all__ = ["TranslationPipeline", "register_translation_pipeline"]
