"""How sources become model inputs: language checks and codes, tokenization, truncation, the decoder prompt and the
keyword arguments (languages, domain) that some models take.

`InputEncoder.encode` is the one place a new input kind plugs in (a chat template for a causal LM, audio features for
a speech model): it turns what the user gave into `ModelInputs`, which the search consumes without knowing where they
came from.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from pasero_hf.data.batching import truncate_keeping_eos
from pasero_hf.data.prompts import PromptFormat
from pasero_hf.generation.model_info import ModelInfo
from pasero_hf.tokenization.dictionary import domain_tag, insert_domain_tag, source_language_codes
from pasero_hf.tokenization.model_languages import ModelLanguages

logger = logging.getLogger(__name__)

# inference.yaml flags that say where a Pasero-trained model expects language codes
LANG_CODE_FLAGS = ("lang_code", "source_lang_code", "target_lang_code")


@dataclasses.dataclass
class ModelInputs:
    """One call's sources, ready for the search.

    Attributes:
        sources: token ids per sentence ([] for a blank one, which gets an empty output without decoding).
        targets: with teacher forcing, the token ids (EOS included) to score per sentence.
        prompt: the decoder prompt (start token, then the target language code for models that expect one).
        model_kwargs: languages and domain, for models whose forward takes them (Pasero adapters).
        truncated: how many sources were cut to the maximum source length.
    """

    sources: list[list[int]]
    targets: list[list[int]] | None
    prompt: list[int]
    model_kwargs: dict[str, Any]
    truncated: int = 0


class InputEncoder:
    """Turns sentences and their languages into `ModelInputs` for one model and tokenizer.

    `source_langs`/`target_langs` are the languages the model declares (its inference.yaml); `languages` says how its
    family marks them; `target_code_in_source` prefixes sources with the target language code (a plain Hugging Face
    tokenizer of a model trained with Pasero's `lang_code`); `domain_tag` puts `<domain:xx>` after the language codes
    (one of `domains`, the training ones). Decoder-only models get their prompts from `prompts` (a translation
    template or a chat template, `pasero_hf.data.prompts`).
    """

    def __init__(
        self,
        tokenizer,
        info: ModelInfo,
        languages: ModelLanguages | None = None,
        source_langs: Sequence[str] = (),
        target_langs: Sequence[str] = (),
        target_code_in_source: bool = False,
        domain_tag: bool = False,
        domains: Sequence[str] = (),
    ):
        self.tokenizer = tokenizer
        self.info = info
        self.languages = languages or ModelLanguages.for_tokenizer(tokenizer, info.model_type)
        self.source_langs = list(source_langs)
        self.target_langs = list(target_langs)
        self.target_code_in_source = target_code_in_source
        self.domain_tag = domain_tag
        self.domains = list(domains)
        self.prompts: PromptFormat | None = None if info.is_encoder_decoder else PromptFormat()
        self._vocab = tokenizer.get_vocab()
        self._special_tokens = set(tokenizer.all_special_tokens)

    def encode(
        self,
        sentences: list[str],
        source_lang: str | None,
        target_lang: str | None,
        domain: str | None = None,
        teacher_forcing: Sequence[str] | None = None,
        max_source_len: int | None = None,
    ) -> ModelInputs:
        """`sentences` (and their reference outputs with teacher forcing) as model inputs; `max_source_len` defaults
        to the model's own maximum. The languages must have been checked by `check_language`."""
        if teacher_forcing is not None and len(teacher_forcing) != len(sentences):
            raise ValueError(f"teacher_forcing has {len(teacher_forcing)} targets for {len(sentences)} sentences")
        self.languages.set_tokenizer_languages(self.tokenizer, source_lang, target_lang)
        if self.prompts is not None:  # decoder-only: translation prompts, conversations (pasero_hf.data.prompts)
            sources = self.prompts.encode(self.tokenizer, sentences, source_lang, target_lang)
        else:
            sources = self._encode_sources(sentences, self.languages.source_text_prefix(source_lang, target_lang))
        if self.target_code_in_source and target_lang is not None:
            code = self._vocab[self.lang_token(target_lang)]
            sources = [[code] + ids if ids else ids for ids in sources]
        if self.domain_tag:
            sources = self._with_domain_tag(sources, domain)
        max_source_len = max_source_len if max_source_len is not None else self.info.max_source_len
        truncated = 0
        for index, ids in enumerate(sources):
            if max_source_len is not None and len(ids) > max_source_len:
                sources[index] = truncate_keeping_eos(ids, max_source_len, self.tokenizer.eos_token_id)
                truncated += 1
        targets = self._encode_targets(teacher_forcing) if teacher_forcing is not None else None
        return ModelInputs(sources, targets, self.decoder_prompt(target_lang),
                           self.model_kwargs(source_lang, target_lang, domain), truncated)

    # ----------------------------------------------------------------------------------------------------------------
    # Languages

    def check_language(self, lang: str | None, side: str) -> str | None:
        """The language to use on `side` ("source" or "target"): `lang`, or the model's only one; a ValueError
        names a language the model does not know."""
        declared = self.source_langs if side == "source" else self.target_langs
        if lang is None:
            return declared[0] if len(declared) == 1 else None
        if declared and lang not in declared:
            raise ValueError(f"unknown {side} language {lang!r}: this model supports {', '.join(declared)}")
        if self.languages.codes:
            self.languages.check([lang], side)  # the model's codes, a user mapping or the NLLB table (en -> eng_Latn)
        elif self.uses_lang_codes(side) and self.lang_token(lang) is None:
            raise ValueError(
                f"unknown {side} language {lang!r}: the tokenizer has no language code for it "
                f"(looked for {lang!r}, '__{lang}__' and '<lang:{lang}>')"
            )
        return lang

    def uses_lang_codes(self, side: str) -> bool:
        tokenizer = self.tokenizer
        if hasattr(tokenizer, "source_lang_code"):  # PaseroTokenizer: language codes only where its flags say
            if side == "source":
                return bool(tokenizer.source_lang_code)
            return bool(tokenizer.target_lang_code or tokenizer.lang_code)
        if side == "target" and self.target_code_in_source:
            return True
        return hasattr(tokenizer, "src_lang" if side == "source" else "tgt_lang")

    def lang_token(self, lang: str) -> str | None:
        if lang in self._special_tokens and lang in self._vocab:
            return lang
        for candidate in (f"__{lang}__", f"<lang:{lang}>"):
            if candidate in self._vocab:
                return candidate
        return None

    # ----------------------------------------------------------------------------------------------------------------
    # Token ids

    def _encode_sources(self, sentences: list[str], prefix: str = "") -> list[list[int]]:
        nonblank = [index for index, sentence in enumerate(sentences) if sentence.strip()]
        encoded: list[list[int]] = [[] for _ in sentences]
        if nonblank:
            ids = self.tokenizer([prefix + sentences[index] for index in nonblank], add_special_tokens=True)["input_ids"]
            for index, sentence_ids in zip(nonblank, ids):
                encoded[index] = list(sentence_ids)
        return encoded

    def _with_domain_tag(self, sources: list[list[int]], domain: str | None) -> list[list[int]]:
        """Sources with `<domain:xx>` after their language codes, as the model saw them in training."""
        if domain is None or (self.domains and domain not in self.domains):
            known = f": one of {', '.join(self.domains)}" if self.domains else ""
            given = "no domain was given" if domain is None else f"unknown domain {domain!r}"
            raise ValueError(f"{given}; this model was trained with domain tags (domain_tag), give --domain{known}")
        token = domain_tag(domain)
        if token not in self._vocab:
            raise ValueError(f"unknown domain {domain!r}: the tokenizer has no token {token}")
        target_code = bool(getattr(self.tokenizer, "lang_code", False)) or self.target_code_in_source
        codes = source_language_codes(self.tokenizer, target_code)
        return [insert_domain_tag(ids, self._vocab[token], codes) if ids else ids for ids in sources]

    def _encode_targets(self, targets: Sequence[str]) -> list[list[int]]:
        # text_target: a tokenizer with its own target vocabulary (Marian, Pasero's target_dict) encodes with it
        ids = self.tokenizer(text_target=list(targets), add_special_tokens=False)["input_ids"]
        return [list(target) + [self.tokenizer.eos_token_id] for target in ids]

    def decoder_prompt(self, target_lang: str | None) -> list[int]:
        """Decoder start token, then the target language code for models that expect one."""
        if not self.info.is_encoder_decoder:
            return []
        if hasattr(self.tokenizer, "decoder_prefix_ids"):  # the tokenizer knows its model's decoder layout
            return list(self.tokenizer.decoder_prefix_ids())
        prompt = [self.info.token_id("decoder_start_token_id")]
        if target_lang is not None and self.languages.forces_target_code and self.languages.codes:
            token = self.languages.target_code_token(self.tokenizer, target_lang)
            prompt.append(self.tokenizer.convert_tokens_to_ids(token))
        elif target_lang is not None and self.uses_lang_codes("target"):
            prompt.append(self._vocab[self.lang_token(target_lang)])
        return prompt

    def model_kwargs(self, source_lang: str | None, target_lang: str | None, domain: str | None) -> dict[str, Any]:
        """Languages and domain, for models whose forward takes them (Pasero adapters)."""
        values = {"source_lang": source_lang, "target_lang": target_lang, "domain": domain}
        return {key: value for key, value in values.items() if value is not None and key in self.info.forward_params}


def warn_truncated(count: int) -> None:
    if count:
        logger.warning("%d source line(s) longer than the maximum source length were truncated", count)
