"""`TextGenerator`: Pasero's decoding API on top of a Hugging Face model and tokenizer.

```python
from pasero_hf.generation.text_generator import TextGenerator

generator = TextGenerator.from_pretrained("models/bible-en-es", beam_size=5)
nbest = generator.decode("In the beginning.", source_lang="en", target_lang="es", return_scores=True)
nbest[0][0]["detok"], nbest[0][0]["score"], nbest[0][0]["pos_scores"]
```

A facade over pieces with one job each: `ModelInfo` (what the model is), `InputEncoder` (how sources become model
inputs), `Search` (which search runs, with one `DecodingOptions`), `HypothesisFormatter` (what the user gets; the score
convention is documented in `hypothesis.py`) and `inference_corpus.decode_corpus` (whole files, partial outputs and
resume).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel

from pasero_hf.data.prompts import PromptFormat
from pasero_hf.generation import inference_corpus, prompting
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
from pasero_hf.generation.hypothesis import HypothesisFormatter, Output
from pasero_hf.generation.inference_corpus import InferenceCorpus, get_inference_corpus
from pasero_hf.generation.inputs import LANG_CODE_FLAGS, InputEncoder, warn_truncated
from pasero_hf.generation.layer_outputs import parse_layer_names
from pasero_hf.generation.model_info import ModelInfo
from pasero_hf.generation.search import Search, lines_per_batch
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.models.onednn import onednn_linear_layers
from pasero_hf.tokenization.model_languages import ModelLanguages

logger = logging.getLogger(__name__)

# what `decode` returns per hypothesis: Pasero's dict (see `hypothesis.py` for its keys and score convention)
Hypothesis = Output
__all__ = ["TextGenerator", "lines_per_batch"]


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
        target_code_in_source: bool = False,
        domain_tag: bool = False,
        domains: Sequence[str] = (),
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.options = options or DecodingOptions()
        self.options.validate()
        self.onednn = onednn
        self.metrics: dict[str, float] = {}
        self.info = ModelInfo(model)
        # how the model family marks languages (NLLB/M2M100/mBART codes, Marian >>xx<<, T5 task prefix)
        self.inputs = InputEncoder(tokenizer, self.info, languages, source_langs, target_langs, target_code_in_source,
                                   domain_tag, domains)
        self.search = Search(model, tokenizer, self.info, backend)
        self.formatter = HypothesisFormatter(tokenizer, self.info)
        self.feature_extractor = None  # speech models (Whisper): turns audio into the encoder's input features

    # what callers read of the pieces
    is_encoder_decoder = property(lambda self: self.info.is_encoder_decoder)
    source_langs = property(lambda self: self.inputs.source_langs)
    target_langs = property(lambda self: self.inputs.target_langs)
    languages = property(lambda self: self.inputs.languages)
    backend = property(lambda self: self.search.backend)

    @property
    def target_code_in_source(self) -> bool:
        """Prefix sources with the target language code (inference.yaml `lang_code`, plain tokenizer)."""
        return self.inputs.target_code_in_source

    @target_code_in_source.setter
    def target_code_in_source(self, value: bool) -> None:
        self.inputs.target_code_in_source = value

    @property
    def domain_tag(self) -> bool:
        """Prefix sources with `<domain:xx>` after their language codes (inference.yaml `domain_tag`)."""
        return self.inputs.domain_tag

    @domain_tag.setter
    def domain_tag(self, value: bool) -> None:
        self.inputs.domain_tag = value

    @property
    def prompts(self) -> PromptFormat | None:
        """Decoder-only models: how inputs become prompts (translation template, chat template; inference.yaml)."""
        return self.inputs.prompts

    @prompts.setter
    def prompts(self, value: PromptFormat | None) -> None:
        self.inputs.prompts = value

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
        the weights); a LoRA directory given as `path` (a LoRA run's model_best) loads its base model by itself, and
        so does a directory of Pasero bottleneck adapters of a pretrained model (chosen by `source_lang`,
        `target_lang` or `domain` as in Pasero models).
        """
        model_dir = resolve_model_dir(path, checkpoint=checkpoint, revision=revision)
        model_dir, adapter_dir = prompting.adapter_directories(model_dir, adapter)
        if adapter_dir is not None and backend == "ctranslate2":
            raise ValueError("adapters are decoded with the PyTorch backend (or export a merged LoRA model)")
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
        # model files may carry Pasero options we do not implement: defaults, not errors
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
        # a tokenizer that cannot place the code itself (a plain Hugging Face one): sources get it here
        target_code_in_source = code_flags.get("lang_code", False) and not hasattr(tokenizer, "lang_code")
        generator = cls(model, tokenizer, decoding, source_langs=source_langs, target_langs=target_langs,
                        onednn=onednn, languages=languages, backend=engine, target_code_in_source=target_code_in_source,
                        domain_tag=bool(inference_yaml.get("domain_tag")), domains=inference_yaml.get("domains") or ())
        if is_speech_model(model.config):
            generator.feature_extractor = load_feature_extractor(model_dir)
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
        hypotheses, truncated = self.decode_counting_truncation(
            list(sentences), source_lang=source_lang, target_lang=target_lang, domain=domain,
            teacher_forcing=teacher_forcing, return_scores=return_scores, return_layers=return_layers,
            options=options, streamer=streamer,
        )
        warn_truncated(truncated)
        return hypotheses

    def decode_audio(self, *audio, source_lang: str | None = None, target_lang: str | None = None,
                     task: str | None = None, **options: Any) -> list[list[Hypothesis]]:
        """Translate or transcribe audio with a speech model (Whisper): `audio` are files (wav, flac, ogg, mp3),
        manifests or `Utterance`s; `task` "translate" or "transcribe" (default: transcribe when `target_lang` is
        `source_lang` or not given). See `pasero_hf.generation.audio_inputs`."""
        return decode_audio(self, audio, source_lang=source_lang, target_lang=target_lang, task=task, **options)

    @torch.inference_mode()
    def decode_counting_truncation(self, sentences: list[str], source_lang=None, target_lang=None, domain=None,
                                   teacher_forcing=None, return_scores=False, return_layers=(), options=None,
                                   streamer=None) -> tuple[list[list[Hypothesis]], int]:
        """`decode`, also returning how many sources were truncated instead of warning (callers warn once)."""
        decoding = self.options.replace(options, origin="decoding options") if options else self.options
        source_lang = self.inputs.check_language(source_lang, "source")
        target_lang = self.inputs.check_language(target_lang, "target")
        if not self.info.is_encoder_decoder:
            prompting.check_causal_layers(return_layers)  # a decoder-only model has dec_N and dec_N_self_attn
        layers = parse_layer_names(return_layers, self.info.num_layers)
        self.search.check_layers(layers)
        if streamer is not None and len(sentences) != 1:
            raise ValueError(f"token streaming decodes one sentence at a time, got {len(sentences)}")
        inputs = self.inputs.encode(sentences, source_lang, target_lang, domain, teacher_forcing,
                                    decoding.max_source_len)
        sources, prompt = inputs.sources, inputs.prompt

        results: list[list[Hypothesis] | None] = [None] * len(sentences)
        pending = [index for index, ids in enumerate(sources) if ids]
        for index in set(range(len(sentences))) - set(pending):
            results[index] = [self.formatter.empty(prompt, layers, return_scores)]
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        lengths = [len(sources[index]) for index in pending]
        with self.search.attention_for(layers), onednn_linear_layers(self.model, self.onednn):
            for batch in length_sorted_batches(lengths, decoding.batch_size, lines_per_batch(decoding)):
                indices = [pending[position] for position in batch]
                nbests = self.search.run(
                    [sources[index] for index in indices],
                    None if inputs.targets is None else [inputs.targets[index] for index in indices],
                    prompt, inputs.model_kwargs, decoding, return_scores, layers, streamer,
                )
                for index, nbest in zip(indices, nbests):
                    # a decoder-only model continues its source: that is its prompt
                    source, hyp_prompt = ((sources[index], prompt) if self.info.is_encoder_decoder
                                          else (None, sources[index]))
                    results[index] = [self.formatter.format(hyp, source, hyp_prompt, decoding.len_penalty,
                                                            return_scores, decoding.stop_sequences)
                                      for hyp in nbest]
        return results, inputs.truncated  # type: ignore[return-value]

    def alignment_layer(self) -> str:
        """The layer whose cross-attention gives the `A-` alignment lines of verbose outputs (the last decoder one)."""
        return f"dec_{self.info.num_layers('dec') - 1}_cross_attn"

    # ----------------------------------------------------------------------------------------------------------------
    # Whole files

    get_inference_corpus = staticmethod(get_inference_corpus)

    def decode_corpus(self, corpus: InferenceCorpus, **settings: Any) -> list[list[Hypothesis]]:
        """Decode a whole corpus; write outputs in input order; compute BLEU and chrF when it has a reference.

        Reads `buffer_size` lines at a time, decodes them in length-sorted batches and writes their outputs in input
        order (`buffer_size=1` decodes line by line, for interactive use). With a reference, line pairs with an empty
        side are skipped (as in training) and `self.metrics` gets `bleu` and `chrf`. The output file is written to
        `<output>.partial` then renamed when complete; `continue_=True` keeps the complete outputs of an interrupted
        run and decodes only the remaining lines. `verbose` writes Pasero's S-/A-/I-/H-/D-/P- lines. Outputs go to
        `corpus.output_path`, else to `output_stream` or standard output (`output_path=False`: nowhere).

        `metrics` picks the scores (bleu, chrf, chrf++, spbleu with `spbleu_model`, len_ratio; default bleu and chrf);
        `eval_lc` makes them case-insensitive. `teacher_forcing=True` scores the references instead; `return_layers`
        as in `decode`; `progress` shows a bar (default: for files). Other keywords are `DecodingOptions` fields for
        this call. The settings and their defaults: `pasero_hf.generation.inference_corpus.decode_corpus`.

        Returns the n-best lists of the lines decoded by this call.
        """
        return inference_corpus.decode_corpus(self, corpus, **settings)


def _declared_languages(inference_yaml: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    sources = list(inference_yaml.get("source_langs") or [])
    targets = list(inference_yaml.get("target_langs") or [])
    for pair in inference_yaml.get("lang_pairs") or []:
        source, _, target = str(pair).partition("-")
        sources.append(source)
        targets.append(target)
    return list(dict.fromkeys(sources)), list(dict.fromkeys(targets))
