"""`TextGenerator`: Pasero's decoding API on top of a Hugging Face model and tokenizer.

```python
from pasero_hf.generation.text_generator import TextGenerator

generator = TextGenerator.from_pretrained("models/bible-en-es", beam_size=5)
nbest = generator.decode("In the beginning.", source_lang="en", target_lang="es", return_scores=True)
nbest[0][0]["detok"], nbest[0][0]["score"], nbest[0][0]["pos_scores"]
```

Search: Pasero models (`model_type == "pasero"`) are decoded with `pasero_search`, which reproduces the original
`pasero-decode` outputs exactly; other encoder-decoders with `model.generate` (their own beam search, logits processors
and generation config keep working as their users expect). `search="pasero"` or `search="hf"` overrides this choice.
Scores follow Pasero: `score` is the negative log-likelihood of `tokens` in nats (lower is better), `pos_scores` the
per-token negative log-probabilities, `normalized_score = score / (len(tokens) + 1) ** len_penalty`. With
`model.generate`, scores and requested layers come from one teacher-forced pass over the final hypotheses.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers.modeling_outputs import BaseModelOutput

from pasero_hf.data.prompts import PromptFormat
from pasero_hf.generation import prompting
from pasero_hf.generation.audio_inputs import decode_audio, is_speech_model, load_feature_extractor
from pasero_hf.generation.batching import length_sorted_batches
from pasero_hf.generation.ctranslate2_backend import load_backend
from pasero_hf.generation.decoding_options import (
    HF_ALIASES,
    DecodingOptions,
    decoding_defaults,
    read_generation_config,
    read_inference_yaml,
)
from pasero_hf.generation.inference_corpus import (
    InferenceCorpus,
    get_inference_corpus,
    partial_output_path,
    read_pairs,
    resume_outputs,
)
from pasero_hf.generation.layer_outputs import (
    LayerRequest,
    decoder_layer,
    empty_layer,
    encoder_layer,
    parse_layer_names,
)
from pasero_hf.generation.output_format import detok_of_entry, format_hypothesis
from pasero_hf.metrics import DEFAULT_METRICS, check_metrics, corpus_scores
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.models.onednn import onednn_linear_layers
from pasero_hf.tokenization.dictionary import domain_tag, insert_domain_tag
from pasero_hf.tokenization.model_languages import ModelLanguages

logger = logging.getLogger(__name__)


class _DropMaxLengthNotice(logging.Filter):
    """generate warns on every call that `max_new_tokens` wins over the model's `max_length`: for us it always does."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "seem to have been set. `max_new_tokens` will take precedence" not in record.getMessage()


logging.getLogger("transformers.generation.utils").addFilter(_DropMaxLengthNotice())

Hypothesis = dict[str, Any]
# In interactive decoding (standard input, line by line), "!beam_size=1" changes a decoding option.
_OPTION_COMMAND = re.compile(r"!\s*(?P<name>\w+)\s*=\s*(?P<value>\S+)\s*")
# Rows x positions x vocabulary floats computed at once by the teacher-forced pass (bounds its memory to ~512 MiB).
_FORCED_PASS_FLOATS = 2**27
# Without `lines_per_batch`, a batch holds at most this many decoder rows (lines x beams). Beam search's memory grows
# with its rows (the self-attention cache and the rows x vocabulary scores of each step) while, past a few hundred
# rows, speed no longer does: measured on the Bible test set at beam 5, 2048-token batches decoded as fast as
# 4096-token ones (~111 lines, 555 rows) with ~220 MiB less peak memory (benchmarks/RESULTS.md, decoding).
_MAX_DECODER_ROWS = 256


class TextGenerator:
    """Translates or generates text with a model, its tokenizer and decoding options.

    Build it with `from_pretrained` (alias `build`) or from objects already loaded. Options given to `decode` or
    `decode_corpus` apply to that call only. After `decode_corpus` with references, `metrics` holds BLEU and chrF.
    On CPU, float32 linear layers multiply through oneDNN while decoding when that is faster (about 2x on AMD CPUs,
    see `pasero_hf.models.onednn`); `onednn=False` keeps PyTorch's default.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer,
        options: DecodingOptions | None = None,
        *,
        source_langs: Sequence[str] = (),
        target_langs: Sequence[str] = (),
        onednn: bool = True,
        languages: ModelLanguages | None = None,
        backend=None,
    ):
        # None: the PyTorch model searches; else an engine (ctranslate2_backend) that decodes each batch, `model`
        # then being its stand-in that carries the configuration
        self.backend = backend
        self.model = model.eval()
        self.onednn = onednn
        self.tokenizer = tokenizer
        self.options = options or DecodingOptions()
        self.options.validate()
        self.source_langs = list(source_langs)
        self.target_langs = list(target_langs)
        self.metrics: dict[str, float] = {}
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self._forward_params = set(inspect.signature(model.forward).parameters)
        self._vocab = tokenizer.get_vocab()
        self._special_tokens = set(tokenizer.all_special_tokens)
        # how the model family marks languages (NLLB/M2M100/mBART codes, Marian >>xx<<, T5 task prefix)
        self.languages = languages or ModelLanguages.for_tokenizer(tokenizer, getattr(model.config, "model_type", None))
        self.target_code_in_source = False  # prefix sources with the target language code (inference.yaml lang_code)
        self.domain_tag = False  # prefix sources with <domain:xx> after their language codes (inference.yaml)
        self.domains: list[str] = []  # the domains of training, when the model has domain tags
        self.feature_extractor = None  # speech models (Whisper): turns audio into the encoder's input features
        # decoder-only models: how inputs become prompts (translation template, chat template; inference.yaml)
        self.prompts: PromptFormat | None = None if self.is_encoder_decoder else PromptFormat()

    # ----------------------------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        revision: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        trust_remote_code: bool = False,
        onednn: bool = True,
        checkpoint: str | None = None,
        backend: str | None = None,
        quantization: str | None = None,
        adapter: str | os.PathLike | None = None,
        merge_adapter: bool = False,
        **options: Any,
    ) -> TextGenerator:
        """Load the model, tokenizer and decoding defaults of a model directory.

        Decoding defaults come from `generation_config.json`, then `inference.yaml` (Pasero's), then `options`
        (our names like `beam_size` or Hugging Face ones like `num_beams`). Works with any directory that
        `AutoModelForSeq2SeqLM` or `AutoModelForCausalLM` loads (Pasero, M2M100/NLLB, ...). Remote code runs only with
        `trust_remote_code=True`. `path` may also be a Hub repo id (`user/name`, at `revision`), or a training run's
        directory: its model_best, else model_last, is loaded (`checkpoint="checkpoint-2000"` picks another model).

        `backend`: "pytorch" or "ctranslate2" (default: "ctranslate2" for a `pasero-export --format ctranslate2`
        directory, else "pytorch"); "ctranslate2" on a PyTorch directory exports it once into a cache
        (`$PASERO_HF_CACHE`, default ~/.cache/pasero_hf). `quantization`: CTranslate2's compute type (int8, ...;
        default: as exported).

        `adapter`: a PEFT LoRA directory or repo id decoded on top of the model (`merge_adapter=True` merges it into
        the weights); a LoRA directory given as `path` (a LoRA run's model_best) loads its base model by itself.
        """
        model_dir = resolve_model_dir(path, checkpoint=checkpoint, revision=revision)
        model_dir, adapter_dir = prompting.adapter_directories(model_dir, adapter)
        if adapter_dir is not None and backend == "ctranslate2":
            raise ValueError("LoRA adapters are decoded with the PyTorch backend (or export a merged model)")
        engine = load_backend(backend, model_dir, device=device, dtype=dtype, quantization=quantization)
        if engine is not None:
            model, model_dir = engine.model, engine.export_dir
        else:
            config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
            model_class = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
            if is_speech_model(config):  # Whisper: audio in (decode_audio), text out
                from transformers import AutoModelForSpeechSeq2Seq as model_class
            if getattr(config, "model_type", None) == "nllb-moe":
                # transformers' NllbMoe routes every token to experts 0 and 1 and cannot take precomputed encoder
                # outputs: our class loads the same checkpoint with correct top-2 routing
                from pasero_hf.models.nllb_moe import PaseroNllbMoeForConditionalGeneration as model_class
            model = model_class.from_pretrained(model_dir, dtype=dtype, trust_remote_code=trust_remote_code)
            if adapter_dir is not None:
                model = prompting.attach_adapter(model, adapter_dir, merge_adapter)
            if device is not None:
                model.to(device)
        model_dir = prompting.files_directory(model_dir, adapter_dir)  # a LoRA run saves tokenizer and inference.yaml
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)

        inference_yaml = read_inference_yaml(model_dir)
        code_flags = {key: bool(inference_yaml[key]) for key in LANG_CODE_FLAGS if key in inference_yaml}
        for key, value in code_flags.items():  # a Pasero tokenizer follows the trained layout (older directories)
            if hasattr(tokenizer, key):
                setattr(tokenizer, key, value)
        known = {field for field in DecodingOptions.__dataclass_fields__} | set(HF_ALIASES)
        # model files may carry Pasero options we do not implement (e.g. repeat_penalty): defaults, not errors
        file_defaults = {
            key: value
            for key, value in {**read_generation_config(model_dir), **decoding_defaults(inference_yaml)}.items()
            if key in known
        }
        decoding = DecodingOptions().replace(file_defaults, origin=f"{model_dir} (generation_config.json/inference.yaml)")
        decoding = decoding.replace(options, origin="from_pretrained() options")
        source_langs, target_langs = _declared_languages(inference_yaml)
        if hasattr(tokenizer, "lang_code") and not any(getattr(tokenizer, key) for key in LANG_CODE_FLAGS):
            # a Pasero tokenizer without language codes: the model knows its tokenizer's languages only
            source_langs = source_langs or [lang for lang in [getattr(tokenizer, "src_lang", None)] if lang]
            target_langs = target_langs or [lang for lang in [getattr(tokenizer, "tgt_lang", None)] if lang]
        languages = ModelLanguages.for_tokenizer(tokenizer, model.config.model_type,
                                                 mapping=inference_yaml.get("lang_mapping"),
                                                 source_prefix=inference_yaml.get("source_prefix"))
        generator = cls(model, tokenizer, decoding, source_langs=source_langs, target_langs=target_langs,
                        onednn=onednn, languages=languages, backend=engine)
        if is_speech_model(model.config):
            generator.feature_extractor = load_feature_extractor(model_dir)
        # a tokenizer that cannot place the code itself (a plain Hugging Face one): sources get it here
        generator.target_code_in_source = code_flags.get("lang_code", False) and not hasattr(tokenizer, "lang_code")
        generator.domain_tag = bool(inference_yaml.get("domain_tag"))
        generator.domains = list(inference_yaml.get("domains") or [])
        if not generator.is_encoder_decoder:
            generator.prompts = PromptFormat.from_inference_config(inference_yaml)
        return generator

    build = from_pretrained

    # ----------------------------------------------------------------------------------------------------------------
    # Decoding

    def decode(
        self,
        *sentences: str,
        source_lang: str | None = None,
        target_lang: str | None = None,
        domain: str | None = None,
        teacher_forcing: Sequence[str] | None = None,
        return_scores: bool = False,
        return_layers: Sequence[str] = (),
        streamer=None,
        **options: Any,
    ) -> list[list[Hypothesis]]:
        """Translate (or continue, for decoder-only models) `sentences`.

        Args:
            sentences: source sentences (prompts for decoder-only models). Blank ones get an empty output.
            source_lang, target_lang: languages (default: the model's only language, if it has one).
            domain: domain of the sentences (Pasero models with domain adapters).
            teacher_forcing: reference outputs, one per sentence: instead of searching, score these.
            return_scores: add `pos_scores` to each hypothesis.
            return_layers: outputs to add, named like Pasero: `enc_3` (src_len, dim), `enc_0_self_attn`
                (src_len, heads, src_len), `dec_5_cross_attn` (hyp_len, heads, src_len), `dec_1` (hyp_len, dim),
                `dec_1_self_attn` (hyp_len, heads, prompt_len - 1 + hyp_len).
            streamer: a `transformers` streamer (`put(ids)`, `end()`) that gets the decoder prompt, then each token as
                it is generated; one non-blank sentence, greedy search or sampling.
            options: `DecodingOptions` fields for this call (`beam_size`, `max_output_len`, `sampling`, ...).

        Returns:
            per sentence, its n-best list of dicts with `src_tokens`, `prompt_tokens`, `tokens`, `detok`, `score`,
            `normalized_score` and, on request, `pos_scores` and the layers. As in Pasero, greedy search of a
            Pasero model without `return_scores` skips the log-softmax: its hypotheses have no `score` and
            `normalized_score`.
        """
        hypotheses, truncated = self._decode(
            list(sentences),
            source_lang=source_lang,
            target_lang=target_lang,
            domain=domain,
            teacher_forcing=teacher_forcing,
            return_scores=return_scores,
            return_layers=return_layers,
            options=options,
            streamer=streamer,
        )
        self._warn_truncated(truncated)
        return hypotheses

    def decode_audio(self, *audio, source_lang: str | None = None, target_lang: str | None = None,
                     task: str | None = None, **options: Any) -> list[list[Hypothesis]]:
        """Translate or transcribe audio with a speech model (Whisper): `audio` are files (wav, flac, ogg, mp3),
        manifests or `Utterance`s; `task` "translate" or "transcribe" (default: transcribe when `target_lang` is
        `source_lang` or not given). See `pasero_hf.generation.audio_inputs`."""
        return decode_audio(self, audio, source_lang=source_lang, target_lang=target_lang, task=task, **options)

    @torch.inference_mode()
    def _decode(
        self,
        sentences: list[str],
        *,
        source_lang: str | None,
        target_lang: str | None,
        domain: str | None,
        teacher_forcing: Sequence[str] | None,
        return_scores: bool,
        return_layers: Sequence[str],
        options: Mapping[str, Any],
        streamer=None,
    ) -> tuple[list[list[Hypothesis]], int]:
        """`decode` that returns how many sources were truncated instead of warning (callers warn once)."""
        decoding = self.options.replace(options, origin="decoding options") if options else self.options
        source_lang = self._check_language(source_lang, "source")
        target_lang = self._check_language(target_lang, "target")
        layers = self._parse_layers(return_layers)
        if teacher_forcing is not None and len(teacher_forcing) != len(sentences):
            raise ValueError(f"teacher_forcing has {len(teacher_forcing)} targets for {len(sentences)} sentences")
        if streamer is not None and len(sentences) != 1:
            raise ValueError(f"token streaming decodes one sentence at a time, got {len(sentences)}")

        self._set_tokenizer_languages(source_lang, target_lang)
        if self.prompts is not None:  # decoder-only: translation prompts, conversations (pasero_hf.data.prompts)
            sources = self.prompts.encode(self.tokenizer, sentences, source_lang, target_lang)
        else:
            sources = self._encode_sources(sentences, self.languages.source_text_prefix(source_lang, target_lang))
        if self.target_code_in_source and target_lang is not None:
            code = self._vocab[self._lang_token(target_lang)]
            sources = [[code] + ids if ids else ids for ids in sources]
        if self.domain_tag:
            sources = self._with_domain_tag(sources, domain)
        max_source_len = self._max_source_len(decoding)
        truncated = 0
        for index, ids in enumerate(sources):
            if max_source_len is not None and len(ids) > max_source_len:
                sources[index] = _truncate(ids, max_source_len, self.tokenizer.eos_token_id)
                truncated += 1
        targets = self._encode_targets(teacher_forcing) if teacher_forcing is not None else None
        prompt = self._decoder_prompt(target_lang)
        model_kwargs = self._model_kwargs(source_lang, target_lang, domain)

        results: list[list[Hypothesis] | None] = [None] * len(sentences)
        pending = [index for index, ids in enumerate(sources) if ids]
        for index in set(range(len(sentences))) - set(pending):
            results[index] = [self._empty_hypothesis(prompt, return_scores, layers)]
        lengths = [len(sources[index]) for index in pending]
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        with self._attention_for(layers), onednn_linear_layers(self.model, self.onednn):
            for batch in length_sorted_batches(lengths, decoding.batch_size, lines_per_batch(decoding)):
                indices = [pending[position] for position in batch]
                batch_targets = [targets[index] for index in indices] if targets is not None else None
                outputs = self._decode_batch(
                    [sources[index] for index in indices], batch_targets, prompt, model_kwargs, decoding,
                    return_scores, layers, streamer,
                )
                for index, nbest in zip(indices, outputs):
                    results[index] = nbest
        return results, truncated  # type: ignore[return-value]

    def _decode_batch(
        self,
        sources: list[list[int]],
        targets: list[list[int]] | None,
        prompt: list[int],
        model_kwargs: dict[str, Any],
        decoding: DecodingOptions,
        return_scores: bool,
        layers: list[LayerRequest],
        streamer=None,
    ) -> list[list[Hypothesis]]:
        if not self.is_encoder_decoder:
            if targets is not None:
                raise ValueError("teacher_forcing needs an encoder-decoder model")
            results = self._decode_prompts(sources, decoding, return_scores, streamer)
            for source, nbest in zip(sources, results):
                for hypothesis in nbest:
                    ids = self.tokenizer.convert_tokens_to_ids(hypothesis["tokens"])
                    hypothesis.update(prompting.causal_layers(self.model, source, ids, layers))
            return results
        if self.backend is not None:
            results = self._decode_with_backend(sources, targets, prompt, decoding, return_scores, layers)
            if streamer is not None:  # the engine returns whole hypotheses: the stream gets the tokens at the end
                streamer.put(torch.tensor([prompt]))
                for token in self.tokenizer.convert_tokens_to_ids(results[0][0]["tokens"]):  # EOS included
                    streamer.put(torch.tensor([token]))
                streamer.end()
            return results
        input_ids, attention_mask = _pad(sources, self.tokenizer.pad_token_id, self.model.device)
        use_pasero_search = targets is None and self._use_pasero_search(decoding)
        # pasero_search runs the encoder itself: ours is only needed for generate, teacher forcing or layers
        encoder_out = None
        if not use_pasero_search or layers:
            encoder_out = self._encode(input_ids, attention_mask, model_kwargs, layers)

        if targets is not None:
            hyp_ids, search_scores = [[target] for target in targets], None
        elif use_pasero_search:
            hyp_ids, search_scores = self._pasero_search(
                input_ids, attention_mask, prompt, model_kwargs, decoding, return_scores, streamer
            )
        else:
            hyp_ids = self._generate(encoder_out, attention_mask, prompt, model_kwargs, decoding, streamer)
            search_scores = None

        rows = [(sentence, tokens) for sentence, nbest in enumerate(hyp_ids) for tokens in nbest]
        forced = None
        if rows and (search_scores is None or any(request.side == "dec" for request in layers)):
            forced = self._forced_pass(encoder_out, attention_mask, prompt, rows, model_kwargs, layers)
        if search_scores is None:
            row_scores = forced["pos_scores"]
        else:
            row_scores = [scores for nbest in search_scores for scores in nbest]

        results: list[list[Hypothesis]] = [[] for _ in sources]
        for row, (sentence, tokens) in enumerate(rows):
            hypothesis = self._hypothesis(sources[sentence], prompt, tokens, row_scores[row], decoding, return_scores)
            for request in layers:
                if request.side == "enc":
                    hypothesis[request.name] = encoder_layer(encoder_out, request, sentence, len(sources[sentence]))
                else:
                    hypothesis[request.name] = forced["layers"][request.name][row]
            results[sentence].append(hypothesis)
        return results

    def _decode_with_backend(self, sources, targets, prompt, decoding, return_scores, layers):
        """A batch decoded by the engine (`self.backend`); hypotheses built as for the PyTorch path."""
        nbests = self.backend.decode_batch(sources, targets, prompt, decoding, return_scores, attention=bool(layers))
        results: list[list[Hypothesis]] = []
        for source, nbest in zip(sources, nbests):
            results.append([])
            for tokens, pos_scores, score, attention in nbest:
                hypothesis = self._hypothesis(source, prompt, tokens, pos_scores, decoding, return_scores)
                if pos_scores is None and score is not None:  # the search's total score only
                    hypothesis["score"] = score
                    hypothesis["normalized_score"] = score / (len(tokens) + 1) ** decoding.len_penalty
                if attention is not None:  # none when scoring references (teacher forcing)
                    for request in layers:
                        hypothesis[request.name] = attention
                results[-1].append(hypothesis)
        return results

    def _encode(self, input_ids, attention_mask, model_kwargs, layers):
        """Encoder outputs, with the hidden states and attentions that the requested `enc_*` layers need."""
        enc_kinds = {request.kind for request in layers if request.side == "enc"}
        encoder_kwargs = {key: value for key, value in model_kwargs.items() if key in self._encoder_params()}
        return self.model.get_encoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states="" in enc_kinds,
            output_attentions="_self_attn" in enc_kinds,
            return_dict=True,
            **encoder_kwargs,
        )

    def _use_pasero_search(self, decoding: DecodingOptions) -> bool:
        if decoding.search == "auto":
            return getattr(self.model.config, "model_type", None) == "pasero"
        return decoding.search == "pasero"

    def _pasero_search(self, input_ids, attention_mask, prompt, model_kwargs, decoding, return_scores, streamer=None):
        from pasero_hf.generation.beam_search import pasero_search

        generator = None
        if decoding.sampling and decoding.seed is not None:
            generator = torch.Generator(device=input_ids.device).manual_seed(decoding.seed)
        prefix = prompt[1:]
        nbests = pasero_search(
            self.model,
            input_ids,
            attention_mask,
            beam_size=1 if decoding.sampling else decoding.beam_size,
            max_output_len=decoding.max_output_len,
            len_penalty=decoding.len_penalty,
            n_best=decoding.n_best,
            sampling=decoding.sampling,
            temperature=decoding.temperature,
            top_k=decoding.sampling_topk,
            top_p=decoding.sampling_topp,
            prefix_ids=prefix or None,
            model_kwargs=model_kwargs or None,
            generator=generator,
            return_scores=return_scores,
            streamer=streamer,
        )
        # our hypotheses exclude the forced prefix (it belongs to the prompt): drop it from tokens and scores
        hyp_ids = [[list(hyp.tokens)[len(prefix):] for hyp in nbest] for nbest in nbests]
        scores = [
            [None if hyp.pos_scores is None else [-float(s) for s in hyp.pos_scores][len(prefix):] for hyp in nbest]
            for nbest in nbests
        ]
        return hyp_ids, scores

    def _generation_config(self, decoding: DecodingOptions):
        # generate fills the None fields of this copy from the model's generation config. A forced_bos_token_id left
        # there is harmless: the target language code is already in our decoder prompt, and generate only forces BOS
        # at the first decoding step, which our two-token prompt skips.
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = decoding.max_output_len
        config.num_return_sequences = decoding.n_best
        config.do_sample = decoding.sampling
        config.num_beams = 1 if decoding.sampling else decoding.beam_size
        config.length_penalty = decoding.len_penalty
        # Pasero stops a sentence as soon as beam_size hypotheses have finished
        config.early_stopping = True if config.num_beams > 1 else False
        config.temperature = decoding.temperature if decoding.sampling else None
        config.top_k = (decoding.sampling_topk or None) if decoding.sampling else None
        config.top_p = decoding.sampling_topp if decoding.sampling else None
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id
        return config

    def _generate(
        self, encoder_out, attention_mask, prompt, model_kwargs, decoding, streamer=None
    ) -> list[list[list[int]]]:
        batch_size = attention_mask.size(0)
        if decoding.max_output_len == 0:
            return [[[]] for _ in range(batch_size)]
        decoder_input_ids = torch.tensor([prompt] * batch_size, device=attention_mask.device)
        sequences = self.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_out.last_hidden_state),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            generation_config=self._generation_config(decoding),
            streamer=streamer,
            **model_kwargs,
        )
        eos = self.tokenizer.eos_token_id
        generated = [_cut_at_eos(row[len(prompt):].tolist(), eos) for row in sequences]
        per_sentence = decoding.n_best
        return [generated[i * per_sentence:(i + 1) * per_sentence] for i in range(batch_size)]

    def _forced_pass(self, encoder_out, attention_mask, prompt, rows, model_kwargs, layers) -> dict[str, Any]:
        """Teacher-forced decoder pass over `rows` ((sentence, token ids) pairs): log-probs and decoder layers."""
        device = attention_mask.device
        dec_layers = [request for request in layers if request.side == "dec"]
        width = max(len(prompt) - 1 + len(tokens) for _, tokens in rows)
        vocab_size = self.model.config.get_text_config().vocab_size
        chunk = max(1, _FORCED_PASS_FLOATS // max(1, width * vocab_size))
        pos_scores: list[list[float]] = []
        layer_outputs: dict[str, list[np.ndarray]] = {request.name: [] for request in dec_layers}
        offset = len(prompt) - 1  # decoder position that predicts the first hypothesis token
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            sentence_ids = torch.tensor([sentence for sentence, _ in part], device=device)
            decoder_inputs = [prompt + tokens[:-1] if tokens else prompt for _, tokens in part]
            decoder_input_ids, _ = _pad(decoder_inputs, self.tokenizer.pad_token_id, device)
            out = self.model(
                encoder_outputs=BaseModelOutput(
                    last_hidden_state=encoder_out.last_hidden_state.index_select(0, sentence_ids)
                ),
                attention_mask=attention_mask.index_select(0, sentence_ids),
                decoder_input_ids=decoder_input_ids,
                use_cache=False,
                output_attentions=any(request.kind for request in dec_layers),
                output_hidden_states=any(not request.kind for request in dec_layers),
                return_dict=True,
                **model_kwargs,
            )
            log_probs = torch.log_softmax(out.logits.float(), dim=-1)
            for row, (sentence, tokens) in enumerate(part):
                positions = torch.arange(offset, offset + len(tokens), device=device)
                token_ids = torch.tensor(tokens, dtype=torch.long, device=device)
                pos_scores.append((-log_probs[row, positions, token_ids]).tolist())
                src_len = int(attention_mask[sentence].sum())
                for request in dec_layers:
                    layer_outputs[request.name].append(decoder_layer(out, request, row, offset, len(tokens), src_len))
        return {"pos_scores": pos_scores, "layers": layer_outputs}

    def _decode_prompts(self, prompts: list[list[int]], decoding: DecodingOptions, return_scores: bool, streamer=None):
        """Decoder-only models: continue each prompt (left-padded), scores from the generation logits."""
        device = self.model.device
        width = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
        config = self._generation_config(decoding)
        config.pad_token_id = pad
        config.return_dict_in_generate = True
        config.output_logits = True
        if decoding.max_output_len == 0:
            return [[self._hypothesis(None, ids, [], [], decoding, return_scores)] for ids in prompts]
        stop = {}
        if decoding.stop_sequences:  # generation ends once a stop string is produced (cut from `detok`)
            config.stop_strings = list(decoding.stop_sequences)
            stop = {"tokenizer": self.tokenizer}
        out = self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=config, streamer=streamer, **stop
        )
        transition = self.model.compute_transition_scores(
            out.sequences, out.logits, getattr(out, "beam_indices", None), normalize_logits=True
        )
        eos = self.tokenizer.eos_token_id
        results: list[list[Hypothesis]] = [[] for _ in prompts]
        for row, sequence in enumerate(out.sequences):
            sentence = row // decoding.n_best
            tokens = _cut_at_eos(sequence[width:].tolist(), eos)
            pos_scores = (-transition[row, : len(tokens)].float()).tolist()
            hypothesis = self._hypothesis(None, prompts[sentence], tokens, pos_scores, decoding, return_scores)
            results[sentence].append(hypothesis)
        return results

    def _hypothesis(self, source, prompt, tokens, pos_scores, decoding, return_scores) -> Hypothesis:
        """`pos_scores` is None after Pasero's greedy search without `return_scores`: no scores then."""
        hypothesis: Hypothesis = {
            "src_tokens": self.tokenizer.convert_ids_to_tokens(source) if source is not None else None,
            "prompt_tokens": self.tokenizer.convert_ids_to_tokens(prompt),
            "tokens": self.tokenizer.convert_ids_to_tokens(tokens),
            "detok": self.tokenizer.decode(tokens, skip_special_tokens=True),
        }
        if decoding.stop_sequences:
            hypothesis["detok"] = prompting.text_before_stop(self.tokenizer, tokens, decoding.stop_sequences)
        if hypothesis["src_tokens"] is None:
            del hypothesis["src_tokens"]
        if pos_scores is not None:
            score = float(sum(pos_scores))
            hypothesis["score"] = score
            hypothesis["normalized_score"] = score / (len(tokens) + 1) ** decoding.len_penalty
            if return_scores:
                hypothesis["pos_scores"] = [float(value) for value in pos_scores]
        return hypothesis

    def _empty_hypothesis(self, prompt, return_scores, layers) -> Hypothesis:
        """The output of a blank input: nothing is decoded, the layers are empty arrays of the right rank."""
        hypothesis = self._hypothesis([], prompt, [], [], self.options, return_scores)
        config = self.model.config.get_text_config()
        dim = getattr(config, "d_model", None) or getattr(config, "hidden_size", 0)
        for request in layers:
            heads = getattr(config, f"{'encoder' if request.side == 'enc' else 'decoder'}_attention_heads", None)
            hypothesis[request.name] = empty_layer(request, dim, heads or getattr(config, "num_attention_heads", 0))
        return hypothesis

    # ----------------------------------------------------------------------------------------------------------------
    # Whole files

    get_inference_corpus = staticmethod(get_inference_corpus)

    def decode_corpus(
        self,
        corpus: InferenceCorpus,
        *,
        buffer_size: int = 100,
        continue_: bool = False,
        verbose: bool = False,
        bleu_tok: str | None = None,
        teacher_forcing: bool = False,
        return_layers: Sequence[str] = (),
        progress: bool | None = None,
        output_stream: TextIO | None = None,
        metrics: Sequence[str] | None = None,
        eval_lc: bool = False,
        spbleu_model: str | None = None,
        **options: Any,
    ) -> list[list[Hypothesis]]:
        """Decode a whole corpus; write outputs in input order; compute BLEU and chrF when it has a reference.

        Reads `buffer_size` lines at a time, decodes them in length-sorted batches and writes their outputs in input
        order (`buffer_size=1` decodes line by line, for interactive use). With a reference, line pairs with an empty
        side are skipped (as in training) and `self.metrics` gets `bleu` and `chrf`. The output file is written to
        `<output>.partial` then renamed when complete; `continue_=True` keeps the complete outputs of an interrupted
        run and decodes only the remaining lines. `verbose` writes Pasero's S-/A-/I-/H-/D-/P- lines. In interactive
        use (standard input, `buffer_size=1`, no reference) a line `!name=value` (e.g. `!beam_size=1`) changes a
        decoding option for the following lines instead of being translated. Outputs go to
        `corpus.output_path`, else to `output_stream` or standard output (`output_path=False`: nowhere).

        `metrics` picks the scores (bleu, chrf, chrf++, spbleu with `spbleu_model`, len_ratio; default bleu and chrf);
        `eval_lc` makes them case-insensitive.

        Returns the n-best lists of the lines decoded by this call.
        """
        if metrics is not None:
            check_metrics(metrics, spbleu_model)  # before decoding anything
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if teacher_forcing and corpus.ref_path is None:
            raise ValueError("teacher forcing needs a reference file (-r/--reference)")
        if continue_ and not corpus.output_path:
            raise ValueError("--continue needs an output file (-o/--output)")
        self.metrics = {}
        pairs = read_pairs(corpus)
        output_path = corpus.output_path if isinstance(corpus.output_path, str) else None
        partial_path = partial_output_path(output_path) if output_path else None
        done = resume_outputs(output_path, verbose) if continue_ else []
        if output_path:
            os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)

        kept_refs: list[str] = []
        hypotheses: list[str] = []
        outputs: list[list[Hypothesis]] = []
        truncated = 0
        layers = list(return_layers)
        if verbose:
            layers.append(f"dec_{self._num_layers('dec') - 1}_cross_attn")
        out_file = open(partial_path, "w", encoding="utf-8") if partial_path else None
        sink = out_file if out_file else (output_stream or (sys.stdout if corpus.output_path is None else None))
        try:
            for entry in done:
                pair = next(pairs, None)
                if pair is None:
                    break
                kept_refs.append(pair[1])
                hypotheses.append(detok_of_entry(entry, verbose))
                if sink:
                    sink.write(entry + "\n")
            if done:
                logger.warning("%s: %d lines already decoded, decoding the rest", output_path, len(done))
            bar = tqdm(
                desc=f"decoding {corpus.corpus_id}", unit=" lines", file=sys.stderr,
                disable=(not progress) if progress is not None else (corpus.source_path is None),
            )
            line_id = len(hypotheses)
            interactive = corpus.source_path is None and corpus.ref_path is None and buffer_size == 1
            while buffer := list(itertools.islice(pairs, buffer_size)):
                if interactive and (command := _OPTION_COMMAND.fullmatch(buffer[0][0])):
                    options = self._apply_command(options, command["name"], command["value"])
                    continue
                sources = [source for source, _ in buffer]
                refs = [ref for _, ref in buffer]
                nbests, count = self._decode(
                    sources,
                    source_lang=corpus.source_lang,
                    target_lang=corpus.target_lang,
                    domain=corpus.domain,
                    teacher_forcing=refs if teacher_forcing else None,
                    return_scores=verbose,
                    return_layers=layers,
                    options=options,
                )
                truncated += count
                outputs += nbests
                for nbest, ref in zip(nbests, refs):
                    best = nbest[0]
                    hypotheses.append(best["detok"])
                    if ref is not None:
                        kept_refs.append(ref)
                    if sink:
                        sink.write(format_hypothesis(best, line_id, verbose) + "\n")
                    line_id += 1
                if sink:
                    sink.flush()
                bar.update(len(buffer))
            bar.close()
        finally:
            if out_file:
                out_file.close()
        if partial_path:
            os.replace(partial_path, output_path)
        self._warn_truncated(truncated)
        if corpus.ref_path is not None and hypotheses:
            self.metrics = corpus_scores(
                hypotheses, kept_refs, bleu_tok=bleu_tok or _default_bleu_tok(corpus.target_lang),
                metrics=DEFAULT_METRICS if metrics is None else metrics, lowercase=eval_lc, spbleu_model=spbleu_model)
        return outputs

    def _apply_command(self, options: dict[str, Any], name: str, value: str) -> dict[str, Any]:
        """Interactive `!name=value` line: the options with this one changed, or unchanged (and an error logged)."""
        updated = {**options, name: yaml.safe_load(value)}
        try:
            self.options.replace(updated, origin="interactive command")
        except ValueError as error:
            logger.error("%s", error)
            return options
        logger.warning("decoding option %s set to %r", name, updated[name])
        return updated

    # ----------------------------------------------------------------------------------------------------------------
    # Model and tokenizer details

    def _check_language(self, lang: str | None, side: str) -> str | None:
        declared = self.source_langs if side == "source" else self.target_langs
        if lang is None:
            return declared[0] if len(declared) == 1 else None
        if declared and lang not in declared:
            raise ValueError(f"unknown {side} language {lang!r}: this model supports {', '.join(declared)}")
        if self.languages.codes:
            self.languages.check([lang], side)  # the model's codes, a user mapping or the NLLB table (en -> eng_Latn)
        elif self._uses_lang_codes(side) and self._lang_token(lang) is None:
            raise ValueError(
                f"unknown {side} language {lang!r}: the tokenizer has no language code for it "
                f"(looked for {lang!r}, '__{lang}__' and '<lang:{lang}>')"
            )
        return lang

    def _uses_lang_codes(self, side: str) -> bool:
        tokenizer = self.tokenizer
        if hasattr(tokenizer, "source_lang_code"):  # PaseroTokenizer: language codes only where its flags say
            if side == "source":
                return bool(tokenizer.source_lang_code)
            return bool(tokenizer.target_lang_code or tokenizer.lang_code)
        if side == "target" and self.target_code_in_source:
            return True
        return hasattr(tokenizer, "src_lang" if side == "source" else "tgt_lang")

    def _set_tokenizer_languages(self, source_lang: str | None, target_lang: str | None) -> None:
        """Point the tokenizer at the languages (NLLB/M2M100/Pasero tokenizers place language codes themselves)."""
        self.languages.set_tokenizer_languages(self.tokenizer, source_lang, target_lang)

    def _lang_token(self, lang: str) -> str | None:
        if lang in self._special_tokens and lang in self._vocab:
            return lang
        for candidate in (f"__{lang}__", f"<lang:{lang}>"):
            if candidate in self._vocab:
                return candidate
        return None

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
        codes = int(bool(getattr(self.tokenizer, "lang_code", False)) or self.target_code_in_source)
        codes += int(bool(getattr(self.tokenizer, "source_lang_code", False)))
        return [insert_domain_tag(ids, self._vocab[token], codes) if ids else ids for ids in sources]

    def _encode_targets(self, targets: Sequence[str]) -> list[list[int]]:
        ids = self.tokenizer(list(targets), add_special_tokens=False)["input_ids"]
        return [list(target) + [self.tokenizer.eos_token_id] for target in ids]

    def _decoder_prompt(self, target_lang: str | None) -> list[int]:
        """Decoder start token, then the target language code for models that expect one."""
        if not self.is_encoder_decoder:
            return []
        if hasattr(self.tokenizer, "decoder_prefix_ids"):  # the tokenizer knows its model's decoder layout
            return list(self.tokenizer.decoder_prefix_ids())
        start = getattr(self.model.config, "decoder_start_token_id", None)
        if start is None:
            start = self.model.generation_config.decoder_start_token_id
        prompt = [start]
        if target_lang is not None and self.languages.forces_target_code and self.languages.codes:
            prompt.append(self.tokenizer.convert_tokens_to_ids(self.languages.target_code_token(self.tokenizer, target_lang)))
        elif target_lang is not None and self._uses_lang_codes("target"):
            token = self._lang_token(target_lang)
            prompt.append(self._vocab[token])
        return prompt

    def _model_kwargs(self, source_lang, target_lang, domain) -> dict[str, Any]:
        """Languages and domain, for models whose forward takes them (Pasero adapters)."""
        values = {"source_lang": source_lang, "target_lang": target_lang, "domain": domain}
        return {key: value for key, value in values.items() if value is not None and key in self._forward_params}

    def _encoder_params(self) -> set[str]:
        return set(inspect.signature(self.model.get_encoder().forward).parameters)

    def _max_source_len(self, decoding: DecodingOptions) -> int | None:
        if decoding.max_source_len is not None:
            return decoding.max_source_len
        config = self.model.config.get_text_config()
        names = ("encoder_max_len", "max_source_positions", "max_position_embeddings", "n_positions")
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _num_layers(self, side: str) -> int:
        config = self.model.config.get_text_config()
        names = ("encoder_layers",) if side == "enc" else ("decoder_layers", "num_hidden_layers", "n_layer")
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int):
                return value
        raise ValueError(f"cannot find the number of {side} layers in the model config")

    def _parse_layers(self, names: Sequence[str]) -> list[LayerRequest]:
        if names and self.backend is not None:
            self.backend.check_layers(names)
        if not self.is_encoder_decoder:
            prompting.check_causal_layers(names)
        return parse_layer_names(names, self._num_layers)

    @contextlib.contextmanager
    def _attention_for(self, layers):
        """Eager attention while attention weights are requested (SDPA does not return them), then back."""
        wants_attention = any(request.kind for request in layers)
        current = getattr(self.model.config, "_attn_implementation", None)
        if not wants_attention or current == "eager":
            yield
            return
        self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.model.set_attn_implementation(current)

    @staticmethod
    def _warn_truncated(count: int) -> None:
        if count:
            logger.warning("%d source line(s) longer than the maximum source length were truncated", count)


LANG_CODE_FLAGS = ("lang_code", "source_lang_code", "target_lang_code")


def _declared_languages(inference_yaml: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    sources = list(inference_yaml.get("source_langs") or [])
    targets = list(inference_yaml.get("target_langs") or [])
    for pair in inference_yaml.get("lang_pairs") or []:
        source, _, target = str(pair).partition("-")
        sources.append(source)
        targets.append(target)
    return list(dict.fromkeys(sources)), list(dict.fromkeys(targets))


def lines_per_batch(decoding: DecodingOptions) -> int:
    """Most lines in a decoding batch: `decoding.lines_per_batch`, or by default as many lines as fit in 256 decoder
    rows (lines x beams, or x `n_best`), which bounds beam search's memory without slowing it down."""
    if decoding.lines_per_batch is not None:
        return decoding.lines_per_batch
    rows_per_line = max(1 if decoding.sampling else decoding.beam_size, decoding.n_best)
    return max(1, _MAX_DECODER_ROWS // rows_per_line)


def _pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids.to(device), mask.to(device)


def _truncate(ids: list[int], max_len: int, eos_id: int | None) -> list[int]:
    """Keep the first tokens and the final EOS (if the sequence ends with one)."""
    if eos_id is not None and ids and ids[-1] == eos_id:
        return ids[: max_len - 1] + [eos_id]
    return ids[:max_len]


def _cut_at_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids


def _default_bleu_tok(target_lang: str | None) -> str:
    """sacrebleu's tokenizer for a target language: 'zh' for Chinese (as Pasero), '13a' otherwise."""
    lang = (target_lang or "").lower()
    return "zh" if lang.startswith(("zh", "zho", "cmn")) else "13a"

