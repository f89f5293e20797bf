"""Which search runs on a batch, carried by one `DecodingOptions`: Pasero's exact search (`beam_search.py`), the
model's own `generate`, teacher forcing of given outputs, or an external engine (`ctranslate2_backend`).

Pasero models (`model_type == "pasero"`) are decoded with `pasero_search`, which reproduces the original
`pasero-decode` outputs exactly; other encoder-decoders with `model.generate` (their own beam search, logits processors
and generation config keep working as their users expect). `search="pasero"` or `search="hf"` overrides this choice.
With `generate`, scores and requested decoder layers come from one teacher-forced pass over the final hypotheses.
The encoder runs once per batch, whichever search runs and whatever layers are requested.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from pasero_hf.generation import prompting
from pasero_hf.generation.beam_search import pasero_search
from pasero_hf.generation.decoding_options import DecodingOptions
from pasero_hf.generation.hypothesis import Hypothesis
from pasero_hf.generation.layer_outputs import LayerRequest, decoder_layer, encoder_layer
from pasero_hf.generation.model_info import ModelInfo

# Rows x positions x vocabulary floats computed at once by the teacher-forced pass (bounds its memory to ~512 MiB).
_FORCED_PASS_FLOATS = 2**27
# Without `lines_per_batch`, a batch holds at most this many decoder rows (lines x beams). Beam search's memory grows
# with its rows (the self-attention cache and the rows x vocabulary scores of each step) while, past a few hundred
# rows, speed no longer does: measured on the Bible test set at beam 5, 2048-token batches decoded as fast as
# 4096-token ones (~111 lines, 555 rows) with ~220 MiB less peak memory (benchmarks/RESULTS.md, decoding).
_MAX_DECODER_ROWS = 256


def lines_per_batch(decoding: DecodingOptions) -> int:
    """Most lines in a decoding batch: `decoding.lines_per_batch`, or by default as many lines as fit in 256 decoder
    rows (lines x beams, or x `n_best`), which bounds beam search's memory without slowing it down."""
    if decoding.lines_per_batch is not None:
        return decoding.lines_per_batch
    return max(1, _MAX_DECODER_ROWS // max(decoding.num_beams, decoding.n_best))


class Search:
    """Decodes batches of encoded sources with a model (or an engine standing in for it)."""

    def __init__(self, model, tokenizer, info: ModelInfo, backend=None):
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        # None: the PyTorch model searches; else an engine (ctranslate2_backend) that decodes each batch, `model`
        # then being its stand-in that carries the configuration
        self.backend = backend

    def uses_pasero_search(self, decoding: DecodingOptions) -> bool:
        if decoding.search == "auto":
            return self.info.prefers_pasero_search
        return decoding.search == "pasero"

    def check_layers(self, layers: list[LayerRequest]) -> None:
        if layers and self.backend is not None:
            self.backend.check_layers([request.name for request in layers])

    @contextlib.contextmanager
    def attention_for(self, layers: list[LayerRequest]):
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

    def run(
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
        """Per source, its hypotheses best first: tokens after the prompt, log-probabilities, requested layers."""
        if not self.info.is_encoder_decoder:
            if targets is not None:
                raise ValueError("teacher_forcing needs an encoder-decoder model")
            nbests = self._continue_prompts(sources, decoding, streamer)
            for source, nbest in zip(sources, nbests):
                for hyp in nbest:
                    hyp.layers.update(prompting.causal_layers(self.model, source, hyp.tokens, layers))
            return nbests
        if self.backend is not None:
            nbests = self._run_backend(sources, targets, prompt, decoding, return_scores, layers)
            if streamer is not None:  # the engine returns whole hypotheses: the stream gets the tokens at the end
                streamer.put(torch.tensor([prompt]))
                for token in nbests[0][0].tokens:  # EOS included
                    streamer.put(torch.tensor([token]))
                streamer.end()
            return nbests
        input_ids, attention_mask = _pad(sources, self.tokenizer.pad_token_id, self.model.device)
        pasero = targets is None and self.uses_pasero_search(decoding)
        dec_layers = [request for request in layers if request.side == "dec"]
        # pasero_search runs the encoder itself: ours is only needed for generate, teacher forcing or layers, and
        # then pasero_search takes its outputs instead of encoding again
        encoder_out = None
        if not pasero or layers:
            encoder_out = self._encode(input_ids, attention_mask, model_kwargs, layers)
        if targets is not None:
            nbests = [[Hypothesis(target, None, None, None)] for target in targets]
        elif pasero:
            nbests = self._pasero_search(input_ids, encoder_out, attention_mask, prompt, model_kwargs, decoding,
                                         return_scores, streamer)
        else:
            nbests = self._generate(encoder_out, attention_mask, prompt, model_kwargs, decoding, streamer)

        rows = [(sentence, hyp) for sentence, nbest in enumerate(nbests) for hyp in nbest]
        if rows and (not pasero or dec_layers):  # generate and teacher forcing give no scores
            forced = self._forced_pass(encoder_out, attention_mask, prompt, [(s, hyp.tokens) for s, hyp in rows],
                                       model_kwargs, dec_layers)
            for row, (_, hyp) in enumerate(rows):
                if not pasero:
                    hyp.pos_scores = forced["pos_scores"][row]
                for request in dec_layers:
                    hyp.layers[request.name] = forced["layers"][request.name][row]
        for sentence, hyp in rows:
            for request in layers:
                if request.side == "enc":
                    hyp.layers[request.name] = encoder_layer(encoder_out, request, sentence, len(sources[sentence]))
        return nbests

    def _encode(self, input_ids, attention_mask, model_kwargs, layers) -> BaseModelOutput:
        """Encoder outputs, with the hidden states and attentions that the requested `enc_*` layers need."""
        enc_kinds = {request.kind for request in layers if request.side == "enc"}
        encoder_kwargs = {key: value for key, value in model_kwargs.items() if key in self.info.encoder_params}
        return self.model.get_encoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states="" in enc_kinds,
            output_attentions="_self_attn" in enc_kinds,
            return_dict=True,
            **encoder_kwargs,
        )

    def _pasero_search(self, input_ids, encoder_out, attention_mask, prompt, model_kwargs, decoding, return_scores,
                       streamer):
        generator = None
        if decoding.sampling and decoding.seed is not None:
            generator = torch.Generator(device=attention_mask.device).manual_seed(decoding.seed)
        prefix = prompt[1:]
        nbests = pasero_search(
            self.model, input_ids, attention_mask, options=decoding, prefix_ids=prefix or None,
            model_kwargs=model_kwargs or None, generator=generator, return_scores=return_scores, streamer=streamer,
            encoder_outputs=None if encoder_out is None else BaseModelOutput(last_hidden_state=encoder_out.last_hidden_state),
        )
        # our hypotheses exclude the forced prefix (it belongs to the prompt): drop it from tokens and scores
        return [[Hypothesis(hyp.tokens[len(prefix):], None, None,
                            None if hyp.pos_scores is None else hyp.pos_scores[len(prefix):]) for hyp in nbest]
                for nbest in nbests]

    def generation_config(self, decoding: DecodingOptions):
        """The model's generation config with our options applied (generate fills its None fields from the model's).

        A forced_bos_token_id left there is harmless: the target language code is already in our decoder prompt, and
        generate only forces BOS at the first decoding step, which our two-token prompt skips."""
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = decoding.max_output_len
        config.num_return_sequences = decoding.n_best
        config.do_sample = decoding.sampling
        config.num_beams = decoding.num_beams
        config.length_penalty = decoding.len_penalty
        # Pasero stops a sentence as soon as beam_size hypotheses have finished
        config.early_stopping = True if config.num_beams > 1 else False
        config.temperature = decoding.temperature if decoding.sampling else None
        config.top_k = (decoding.sampling_topk or None) if decoding.sampling else None
        config.top_p = decoding.sampling_topp if decoding.sampling else None
        config.repetition_penalty = float(decoding.repeat_penalty)
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id
        return config

    def _generate(self, encoder_out, attention_mask, prompt, model_kwargs, decoding, streamer) -> list[list[Hypothesis]]:
        batch_size = attention_mask.size(0)
        if decoding.max_output_len == 0:
            return [[Hypothesis([], None, None, None)] for _ in range(batch_size)]
        decoder_input_ids = torch.tensor([prompt] * batch_size, device=attention_mask.device)
        with _max_length_notice_silenced():
            sequences = self.model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoder_out.last_hidden_state),
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                generation_config=self.generation_config(decoding),
                streamer=streamer,
                **model_kwargs,
            )
        eos = self.tokenizer.eos_token_id
        generated = [_cut_at_eos(row[len(prompt):].tolist(), eos) for row in sequences]
        per_sentence = decoding.n_best
        return [[Hypothesis(tokens, None, None, None) for tokens in generated[i * per_sentence:(i + 1) * per_sentence]]
                for i in range(batch_size)]

    def _forced_pass(self, encoder_out, attention_mask, prompt, rows, model_kwargs, dec_layers) -> dict[str, Any]:
        """Teacher-forced decoder pass over `rows` ((sentence, token ids) pairs): log-probs and decoder layers."""
        device = attention_mask.device
        width = max(len(prompt) - 1 + len(tokens) for _, tokens in rows)
        chunk = max(1, _FORCED_PASS_FLOATS // max(1, width * self.info.vocab_size))
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
                pos_scores.append(log_probs[row, positions, token_ids].tolist())
                src_len = int(attention_mask[sentence].sum())
                for request in dec_layers:
                    layer_outputs[request.name].append(decoder_layer(out, request, row, offset, len(tokens), src_len))
        return {"pos_scores": pos_scores, "layers": layer_outputs}

    def _continue_prompts(self, prompts: list[list[int]], decoding: DecodingOptions, streamer):
        """Decoder-only models: continue each prompt (left-padded), scores from the generation logits."""
        if decoding.max_output_len == 0:
            return [[Hypothesis([], None, None, [])] for _ in prompts]
        device = self.model.device
        width = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
        config = self.generation_config(decoding)
        config.pad_token_id = pad
        config.return_dict_in_generate = True
        config.output_logits = True
        stop = {}
        if decoding.stop_sequences:  # generation ends once a stop string is produced (cut from `detok`)
            config.stop_strings = list(decoding.stop_sequences)
            stop = {"tokenizer": self.tokenizer}
        with _max_length_notice_silenced():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, generation_config=config, streamer=streamer,
                **stop,
            )
        transition = self.model.compute_transition_scores(
            out.sequences, out.logits, getattr(out, "beam_indices", None), normalize_logits=True
        )
        eos = self.tokenizer.eos_token_id
        results: list[list[Hypothesis]] = [[] for _ in prompts]
        for row, sequence in enumerate(out.sequences):
            tokens = _cut_at_eos(sequence[width:].tolist(), eos)
            pos_scores = transition[row, : len(tokens)].float().tolist()
            results[row // decoding.n_best].append(Hypothesis(tokens, None, None, pos_scores))
        return results

    def _run_backend(self, sources, targets, prompt, decoding, return_scores, layers):
        """A batch decoded by the engine (`self.backend`), which gives Pasero's negative log-likelihoods."""
        nbests = self.backend.decode_batch(sources, targets, prompt, decoding, return_scores, attention=bool(layers))
        results: list[list[Hypothesis]] = []
        for nbest in nbests:
            results.append([])
            for tokens, pos_scores, score, attention in nbest:
                hypothesis = Hypothesis(
                    tokens, None if score is None else -score, None,
                    None if pos_scores is None else [-value for value in pos_scores],
                )
                if attention is not None:  # none when scoring references (teacher forcing)
                    hypothesis.layers = {request.name: attention for request in layers}
                results[-1].append(hypothesis)
        return results


class NoticeFilter(logging.Filter):
    """Drops the transformers log records that contain all of `fragments`."""

    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not all(fragment in message for fragment in self.fragments)


@contextlib.contextmanager
def generation_notice_silenced(*fragments: str):
    """While our own `generate` call runs (never globally): drop the `transformers.generation.utils` notice made of
    `fragments`, one that users cannot act on."""
    logger = logging.getLogger("transformers.generation.utils")
    notice_filter = NoticeFilter(*fragments)
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


def _max_length_notice_silenced():
    """`generate` warns that `max_new_tokens` wins over the model's `max_length`, which for us it always does
    (`max_output_len` is the option)."""
    return generation_notice_silenced("seem to have been set. `max_new_tokens` will take precedence")


def _pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids.to(device), mask.to(device)


def _cut_at_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids
