"""Pasero-compatible decoding (beam search, greedy search, sampling) for any Hugging Face encoder-decoder.

The original Pasero `pasero-decode` ranks and stops beam search differently from `transformers.generate`:

- a finished hypothesis is ranked by `score / (len(tokens) + 1) ** len_penalty`, where `tokens` counts the forced
  decoder prefix and the final EOS but not the decoder start token (`transformers` divides by the sequence length);
- a sentence stops as soon as `beam_size` hypotheses have finished, each step considering the `2 * beam_size` best
  continuations and finishing those that end with EOS among the first `beam_size` of them;
- at the `max_output_len` cap only the finished hypotheses are returned, or, if none finished, the best unfinished
  beam alone.

Pasero has a repetition penalty for greedy search and sampling only; beam search here applies it as `generate`'s beam
search does (to each beam's log-probabilities, so that its score and `pos_scores` include the penalty).

`pasero_search` reproduces these rules (and torch's `topk` tie-breaking, by using the same candidate layout), so that
its outputs match Pasero's token for token. It only needs the standard encoder-decoder interface: a forward taking
`input_ids`/`attention_mask` or `encoder_outputs`, `decoder_input_ids`, `cache` and `use_cache`, whose cache has
`reorder_cache(indices)` (`transformers.EncoderDecoderCache` does). Decoding is batched over sentences and beams, with
a key/value cache. A model whose decoder takes one copy of the encoder states per sentence for all its beams
(`supports_shared_encoder_states`, as Pasero's) keeps a single copy of the source and of its cross-attention keys and
values, and done sentences are dropped at once; with other models they are copied per beam, and done sentences are
dropped in groups (each removal copies the cross-attention cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from transformers.modeling_outputs import BaseModelOutput

from pasero_hf.generation.decoding_options import DecodingOptions
from pasero_hf.generation.decoding_state import DecodingState
from pasero_hf.generation.hypothesis import Hypothesis
from pasero_hf.generation.model_info import ModelInfo
from pasero_hf.models.pasero.modeling_pasero import shift_tokens_right

__all__ = ["Hypothesis", "pasero_search", "beam_search", "sample", "score_targets"]


def _decoder_prompt(
    prefix_ids: Tensor | Sequence[int] | None, batch_size: int, start_id: int, device: torch.device
) -> Tensor:
    """`(batch, prompt_len)` decoder prompt: the decoder start token followed by the forced prefix."""
    start = torch.full((batch_size, 1), start_id, dtype=torch.long, device=device)
    if prefix_ids is None:
        return start
    prefix = torch.as_tensor(prefix_ids, dtype=torch.long, device=device)
    if prefix.dim() == 1:
        prefix = prefix.unsqueeze(0).expand(batch_size, -1)
    if prefix.dim() != 2 or prefix.size(0) != batch_size:
        raise ValueError(
            f"prefix_ids must have shape (prefix_len,) or (batch_size={batch_size}, prefix_len), "
            f"got {tuple(prefix.shape)}"
        )
    return torch.cat([start, prefix], dim=1)


def _last_layer_attention(out) -> Tensor:
    """`(rows, queries, source_len)` cross-attention of the last decoder layer, averaged over heads."""
    attentions = getattr(out, "cross_attentions", None)
    if not attentions or attentions[-1] is None:
        raise ValueError(
            "output_attentions=True but the model returned no cross-attention weights: SDPA/flash attention does not "
            "compute them; call model.set_attn_implementation('eager') first"
        )
    return attentions[-1].float().mean(dim=1)


# Removing done sentences from the batch copies their cache: unless that copy is free, wait until this fraction of the
# rows is done.
_COMPACT_FRACTION = 0.25


def _worth_compacting(alive: Tensor, free: bool = False) -> bool:
    """`free`: the model keeps one copy of the source per sentence (`supports_shared_encoder_states`), so dropping
    sentences costs almost nothing: the self-attention cache is copied at every step anyway (`_ReorderOnUpdateLayer`
    selects the remaining rows in that copy), and the encoder side is small."""
    done = int((~alive).sum())
    return done > 0 and (free or done >= _COMPACT_FRACTION * alive.numel())


def _normalize(score: Tensor, length: int, len_penalty: float) -> float:
    # The float32 division mirrors Pasero's, so that equal normalized scores tie (and keep their order) as in Pasero.
    return (score / (length + 1) ** len_penalty).item()


def _make_hypothesis(tokens: Tensor, pos_scores: Tensor | None, score: Tensor | None, attention: Tensor | None,
                     source_mask: Tensor, len_penalty: float) -> Hypothesis:
    return Hypothesis(
        tokens=tokens.tolist(),
        score=None if score is None else score.item(),
        normalized_score=None if score is None else _normalize(score, len(tokens), len_penalty),
        pos_scores=None if pos_scores is None else pos_scores.tolist(),
        cross_attention=None if attention is None else attention[:, source_mask].cpu(),
    )


def _penalize_repeats(scores: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """`transformers`' `RepetitionPenaltyLogitsProcessor`, in place: the scores of the tokens in each row of `seen`
    (the decoder input so far) divided by `penalty` when positive, multiplied when negative; once per token."""
    if penalty == 1.0:
        return scores
    values = scores.gather(1, seen)
    return scores.scatter_(1, seen, torch.where(values < 0, values * penalty, values / penalty))


def _prompt_scores(logits: Tensor, prompt: Tensor) -> Tensor:
    """`(batch, prompt_len - 1)` log-probabilities of the forced prefix tokens (empty without prefix)."""
    lprobs = logits[:, :-1].float().log_softmax(dim=-1)
    return lprobs.gather(2, prompt[:, 1:].unsqueeze(2)).squeeze(2)


def _output_len_cap(model: torch.nn.Module, prompt_len: int, max_output_len: int) -> int:
    """Total decoder length (start token + prefix + output) at which decoding stops, as Pasero computes it."""
    if max_output_len < 1:
        raise ValueError(f"max_output_len must be at least 1, got {max_output_len}")
    max_len = prompt_len + max_output_len
    model_max = ModelInfo(model).max_decoder_len
    if model_max is not None:
        max_len = min(max_len, model_max)
    if max_len <= prompt_len:
        raise ValueError(f"the decoder prompt ({prompt_len} tokens) already fills the model's {model_max} positions")
    return max_len


@torch.inference_mode()
def beam_search(
    model: torch.nn.Module,
    input_ids: Tensor | None,
    attention_mask: Tensor,
    *,
    beam_size: int = 5,
    max_output_len: int = 100,
    len_penalty: float = 1.0,
    repeat_penalty: float = 1.0,
    prefix_ids: Tensor | Sequence[int] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    output_attentions: bool = False,
    encoder_outputs: BaseModelOutput | None = None,
) -> list[list[Hypothesis]]:
    """Pasero's beam search; returns, per sentence, its finished hypotheses best first (see the module docstring).

    Use `pasero_search`, which also routes `beam_size=1` to greedy search as Pasero does; this function also runs
    with `beam_size=1`, which gives the greedy outputs.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    ids = ModelInfo(model).special_ids()
    device = attention_mask.device
    batch_size = attention_mask.size(0)
    k = beam_size
    prompt = _decoder_prompt(prefix_ids, batch_size, ids.decoder_start, device)
    prompt_len = prompt.size(1)
    max_len = _output_len_cap(model, prompt_len, max_output_len)
    source_masks = attention_mask.bool()

    state = DecodingState(model, attention_mask, model_kwargs, output_attentions)
    out = state.first_step(input_ids, prompt, encoder_outputs)
    # Pasero adds the prefix log-probabilities to each beam's score before the first choice
    prefix_scores = _prompt_scores(out.logits, prompt)

    # Row layout: one row per sentence at the first step, `k` rows per sentence (its beams) after it.
    tokens = torch.cat([prompt, prompt.new_full((batch_size, max_len - prompt_len), ids.eos)], dim=1)
    pos_scores = torch.zeros(batch_size, max_len, device=device)
    pos_scores[:, 1:prompt_len] = prefix_scores
    attention = None
    if output_attentions:
        attention = torch.zeros(batch_size, max_len, attention_mask.size(1), device=device)
        attention[:, 1:prompt_len] = _last_layer_attention(out)[:, :-1]
    beam_scores: Tensor | None = None
    sentence_ids = torch.arange(batch_size, device=device)  # original index of each active sentence
    finished: list[list[tuple[Tensor, Tensor, Tensor, Tensor | None]]] = [[] for _ in range(batch_size)]
    finished_counts = torch.zeros(batch_size, dtype=torch.long, device=device)
    candidate_rank = torch.arange(2 * k, device=device)
    vocab_size = out.logits.size(-1)
    if 2 * k > vocab_size:
        raise ValueError(f"beam_size={k} is too large for a vocabulary of {vocab_size}")
    # The (rows, vocab) log-probabilities and scores are the largest tensors of a step. Allocated afresh at each step,
    # such large blocks come from mmap and their pages fault in again every time: with 400-500 rows, that made the
    # log-softmax, addition and top-k of a step 2.5x slower than in reused buffers.
    lprobs_buffer = torch.empty(batch_size * k, vocab_size, device=device)
    scores_buffer = torch.empty_like(lprobs_buffer)

    for step in range(prompt_len, max_len):
        if step > prompt_len:
            out = state.step(tokens[:, step - 1 : step])
        lprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1, out=lprobs_buffer[: out.logits.size(0)])
        lprobs = _penalize_repeats(lprobs, tokens[:, :step], repeat_penalty)
        step_attention = _last_layer_attention(out)[:, -1] if output_attentions else None
        out = None  # frees the logits before the next step allocates its own
        active = sentence_ids.numel()
        if beam_scores is None:
            offsets = prefix_scores.sum(dim=1, keepdim=True)  # (B, 1): all beams start equal
            rows_per_sentence = 1
        else:
            offsets = beam_scores.unsqueeze(1)
            rows_per_sentence = k
        scores = torch.add(lprobs, offsets, out=scores_buffer[: lprobs.size(0)])
        top = scores.view(active, -1).topk(2 * k, dim=1)  # up to k of the 2k best may end with EOS
        beam_ids = top.indices.div(vocab_size, rounding_mode="floor")
        rows = beam_ids + rows_per_sentence * torch.arange(active, device=device).unsqueeze(1)  # (B, 2k)
        words = top.indices.fmod(vocab_size)
        token_scores = lprobs.view(-1).gather(0, (rows * vocab_size + words).view(-1)).view(active, 2 * k)
        ends = words.eq(ids.eos) & ~top.values.isinf()

        for b, j in ends[:, :k].nonzero().tolist():
            sentence = int(sentence_ids[b])
            if len(finished[sentence]) >= k:
                continue
            row = rows[b, j]
            hyp_tokens = torch.cat([tokens[row, 1:step], words[b, j : j + 1]])
            hyp_pos = torch.cat([pos_scores[row, 1:step], token_scores[b, j : j + 1]])
            hyp_attention = None
            if attention is not None:
                hyp_attention = torch.cat([attention[row, 1:step], step_attention[row].unsqueeze(0)])
            finished[sentence].append((hyp_tokens, hyp_pos, top.values[b, j], hyp_attention))
            finished_counts[sentence] += 1

        alive = finished_counts[sentence_ids] < k
        if not alive.any():
            break
        compact = _worth_compacting(alive, free=state.shares_source)
        keep = alive if compact else torch.ones_like(alive)
        # the k best continuations that do not end with EOS, in rank order
        chosen = torch.topk(candidate_rank + ends * 2 * k, k=k, dim=1, largest=False).indices
        chosen = chosen[keep]
        new_rows = rows[keep].gather(1, chosen).view(-1)
        new_words = words[keep].gather(1, chosen).view(-1)
        beam_scores = top.values[keep].gather(1, chosen).view(-1)

        tokens = tokens.index_select(0, new_rows)
        tokens[:, step] = new_words
        pos_scores = pos_scores.index_select(0, new_rows)
        pos_scores[:, step] = token_scores[keep].gather(1, chosen).view(-1)
        if attention is not None:
            attention = attention.index_select(0, new_rows)
            attention[:, step] = step_attention.index_select(0, new_rows)
        state.select_rows(new_rows, sentences=keep.nonzero().squeeze(1) if compact else None)
        sentence_ids = sentence_ids[keep]

    results: list[list[Hypothesis]] = []
    best_unfinished = {s: i * k for i, s in enumerate(sentence_ids.tolist())}  # beam 0 of each active sentence
    for s in range(batch_size):
        if finished[s]:
            candidates = finished[s]
        else:  # hit the cap without any finished hypothesis
            row = best_unfinished[s]
            candidates = [(
                tokens[row, 1:max_len],
                pos_scores[row, 1:max_len],
                beam_scores[row],
                None if attention is None else attention[row, 1:max_len],
            )]
        nbest = [
            _make_hypothesis(t, p, score, a, source_masks[s], len_penalty) for t, p, score, a in candidates
        ]
        nbest.sort(key=lambda hyp: -hyp.normalized_score)  # stable: ties keep their finishing order
        results.append(nbest)
    return results


def _filter_top_p(lprobs: Tensor, top_p: float) -> tuple[Tensor, Tensor]:
    """Nucleus: the most probable tokens whose summed probability stays within `top_p`, plus the one crossing it."""
    probs, order = lprobs.exp().sort(dim=-1, descending=True)
    inside = probs.cumsum(dim=-1) <= top_p
    crossing = inside.sum(dim=-1, keepdim=True).clamp_(max=inside.size(1) - 1)
    inside.scatter_(1, crossing, True)
    width = int(crossing.max()) + 1
    return probs[:, :width].masked_fill(~inside[:, :width], 0.0), order[:, :width]


@torch.inference_mode()
def sample(
    model: torch.nn.Module,
    input_ids: Tensor | None,
    attention_mask: Tensor,
    *,
    max_output_len: int = 100,
    len_penalty: float = 1.0,
    greedy: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repeat_penalty: float = 1.0,
    prefix_ids: Tensor | Sequence[int] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    output_attentions: bool = False,
    generator: torch.Generator | None = None,
    encoder_outputs: BaseModelOutput | None = None,
    return_scores: bool = True,
    streamer=None,
) -> list[list[Hypothesis]]:
    """Greedy search (`greedy=True`) or random sampling, one hypothesis per sentence, as Pasero's `sampling`.

    Sampling draws from the temperature-scaled distribution, restricted to the `top_k` most probable tokens or to the
    `top_p` nucleus (not both); Pasero 1.1 applies the temperature only to ensembles, this applies it always.
    `repeat_penalty` divides positive logits (multiplies negative ones) of every token already in the decoder input,
    the start token and prefix included, as Pasero does. A sentence stops at EOS or after `max_output_len` tokens.
    `pos_scores` are the log-probabilities under the model (after the repeat penalty, before temperature, top-k and
    top-p). Greedy search with `return_scores=False` skips the log-softmax, as Pasero does (the argmax of the logits
    is the same token): its hypotheses have no scores. `streamer` (a `transformers` streamer: `put(ids)`, `end()`;
    one sentence only) gets the decoder prompt, then each generated token as it is chosen, as `generate` does.
    """
    if streamer is not None and attention_mask.size(0) != 1:
        raise ValueError(f"a streamer needs a single sentence, got {attention_mask.size(0)}")
    if top_k and top_p < 1.0:
        raise ValueError("top_k and top_p cannot be combined: set top_k=0 or top_p=1.0")
    if top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"need top_k >= 0 and 0 < top_p <= 1, got top_k={top_k}, top_p={top_p}")
    if not greedy and temperature <= 0:
        raise ValueError(f"sampling needs a positive temperature, got {temperature}")
    ids = ModelInfo(model).special_ids()
    device = attention_mask.device
    batch_size = attention_mask.size(0)
    prompt = _decoder_prompt(prefix_ids, batch_size, ids.decoder_start, device)
    prompt_len = prompt.size(1)
    max_len = _output_len_cap(model, prompt_len, max_output_len)
    source_masks = attention_mask.bool()

    state = DecodingState(model, attention_mask, model_kwargs, output_attentions)
    out = state.first_step(input_ids, prompt, encoder_outputs)
    if streamer is not None:
        streamer.put(prompt.cpu())
    tokens = torch.cat([prompt, prompt.new_full((batch_size, max_len - prompt_len), ids.pad)], dim=1)
    pos_scores = torch.zeros(batch_size, max_len, device=device)
    pos_scores[:, 1:prompt_len] = _prompt_scores(out.logits, prompt)
    attention = None
    if output_attentions:
        attention = torch.zeros(batch_size, max_len, attention_mask.size(1), device=device)
        attention[:, 1:prompt_len] = _last_layer_attention(out)[:, :-1]
    sentence_ids = torch.arange(batch_size, device=device)
    scored = return_scores or not greedy
    lprobs_buffer = torch.empty(batch_size, out.logits.size(-1), device=device) if scored else None  # see beam_search
    alive = torch.ones(batch_size, dtype=torch.bool, device=device)  # rows of done sentences may stay a while
    results: list[list[Hypothesis] | None] = [None] * batch_size

    def finish(rows: Tensor, length: int) -> None:
        for row, s in zip(rows.tolist(), sentence_ids[rows].tolist()):
            pos = pos_scores[row, 1:length] if scored else None
            hyp = _make_hypothesis(
                tokens[row, 1:length], pos, None if pos is None else pos.sum(),
                None if attention is None else attention[row, 1:length], source_masks[s], len_penalty,
            )
            results[s] = [hyp]

    for step in range(prompt_len, max_len):
        if step > prompt_len:
            out = state.step(tokens[:, step - 1 : step])
        logits = out.logits[:, -1].float()
        if repeat_penalty != 1.0:  # on a copy: `logits` may be the model's output (a view of it)
            logits = _penalize_repeats(logits.clone(), tokens[:, :step], repeat_penalty)
        if not scored:
            next_words = logits.argmax(dim=-1)
            next_scores = None
        elif greedy:  # Pasero's argmax of the log-probabilities; `max` also gives their value
            lprobs = torch.log_softmax(logits, dim=-1, out=lprobs_buffer[: logits.size(0)])
            next_scores, next_words = lprobs.max(dim=-1)
        else:
            lprobs = torch.log_softmax(logits, dim=-1, out=lprobs_buffer[: logits.size(0)])
            sampling_lprobs = lprobs if temperature == 1.0 else (logits / temperature).log_softmax(dim=-1)
            if top_k:
                top = sampling_lprobs.topk(top_k, dim=-1)
                probs, candidates = top.values.exp(), top.indices
            elif top_p < 1.0:
                probs, candidates = _filter_top_p(sampling_lprobs, top_p)
            else:
                probs, candidates = sampling_lprobs.exp(), None
            next_words = torch.multinomial(probs, 1, replacement=True, generator=generator)
            next_words = (next_words if candidates is None else candidates.gather(1, next_words)).squeeze(1)
            next_scores = lprobs.gather(1, next_words.unsqueeze(1)).squeeze(1)
        tokens[:, step] = next_words
        if streamer is not None:
            streamer.put(next_words.cpu())
        if next_scores is not None:
            pos_scores[:, step] = next_scores
        if attention is not None:
            attention[:, step] = _last_layer_attention(out)[:, -1]
        out = logits = None  # frees the logits before the next step allocates its own

        done = alive if step == max_len - 1 else next_words.eq(ids.eos) & alive
        if done.any():
            finish(done.nonzero().squeeze(1), step + 1)
            alive = alive & ~done
            if not alive.any():
                break
            if _worth_compacting(alive, free=state.shares_source):
                keep = alive.nonzero().squeeze(1)
                tokens, pos_scores = tokens[keep], pos_scores[keep]
                sentence_ids, alive = sentence_ids[keep], alive[keep]
                if attention is not None:
                    attention = attention[keep]
                state.select_rows(keep, sentences=keep)
    if streamer is not None:
        streamer.end()
    return results  # type: ignore[return-value]


def pasero_search(
    model: torch.nn.Module,
    input_ids: Tensor | None,
    attention_mask: Tensor,
    options: DecodingOptions | None = None,
    *,
    beam_size: int = 5,
    max_output_len: int = 100,
    len_penalty: float = 1.0,
    n_best: int = 1,
    sampling: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repeat_penalty: float = 1.0,
    prefix_ids: Tensor | Sequence[int] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    output_attentions: bool = False,
    generator: torch.Generator | None = None,
    encoder_outputs: BaseModelOutput | None = None,
    return_scores: bool = True,
    streamer=None,
) -> list[list[Hypothesis]]:
    """Decodes a batch of source sentences the way Pasero's `pasero-decode` does.

    Args:
        model: any `transformers` encoder-decoder (in eval mode); its config gives the decoder start, EOS and
            padding ids and, if it says, the longest decoder sequence.
        input_ids, attention_mask: `(batch, source_len)` tokenized sources (either padding side).
        options: the search options as one `DecodingOptions` (`TextGenerator`'s), instead of the keyword arguments
            `beam_size` to `top_p`.
        beam_size: beam search with this many beams; 1 means greedy search. Ignored when `sampling`.
        max_output_len: at most this many generated tokens (EOS included, prefix excluded).
        len_penalty: exponent of the length normalization used to rank finished hypotheses.
        n_best: how many hypotheses to return per sentence (at most `beam_size`; 1 for greedy search and sampling).
            A sentence can have fewer: only finished ones are kept when decoding stops at the cap.
        sampling: sample instead of searching, with `temperature` and either `top_k` or `top_p`.
        repeat_penalty: Pasero's (and `transformers`') repetition penalty, > 0 (1: none); beam search applies it to
            the log-probabilities, as `generate` does (Pasero has it for greedy search and sampling only).
        prefix_ids: forced decoder prefix after the start token (e.g. a target language code), shape `(prefix_len,)`
            for all sentences or `(batch, prefix_len)`. It is part of each hypothesis' tokens and score, as in Pasero.
        model_kwargs: extra keyword arguments for every forward call, the same for the whole batch (e.g. the
            `source_lang`, `target_lang` or `domain` that select a Pasero model's adapters).
        output_attentions: also return each hypothesis' cross-attention (needs eager attention).
        generator: random generator for sampling, for reproducible samples.
        encoder_outputs: the encoder's outputs for `input_ids`, if the caller already has them (saves encoding
            twice); `input_ids` is then not used and may be None.
        return_scores: False lets greedy search skip the log-softmax (its hypotheses then have no scores), as
            Pasero does; beam search and sampling always score.
        streamer: gets each generated token as soon as it is chosen (greedy search and sampling of one sentence),
            with the `transformers` streamer interface (`put(ids)`, `end()`).

    Returns:
        for each sentence, its hypotheses best first (by `normalized_score`).
    """
    if options is not None:
        return pasero_search(
            model, input_ids, attention_mask, **options.search_kwargs(), prefix_ids=prefix_ids,
            model_kwargs=model_kwargs, output_attentions=output_attentions, generator=generator,
            encoder_outputs=encoder_outputs, return_scores=return_scores, streamer=streamer,
        )
    if n_best < 1:
        raise ValueError(f"n_best must be at least 1, got {n_best}")
    if not repeat_penalty > 0:
        raise ValueError(f"repeat_penalty must be > 0 (1: none), got {repeat_penalty}")
    if sampling or beam_size == 1:
        if n_best > 1:
            raise ValueError(f"n_best={n_best} needs beam search: greedy search and sampling give one hypothesis")
        return sample(
            model, input_ids, attention_mask, max_output_len=max_output_len, len_penalty=len_penalty,
            greedy=not sampling, temperature=temperature, top_k=top_k, top_p=top_p, repeat_penalty=repeat_penalty,
            prefix_ids=prefix_ids, model_kwargs=model_kwargs, output_attentions=output_attentions,
            generator=generator, encoder_outputs=encoder_outputs, return_scores=return_scores, streamer=streamer,
        )
    if streamer is not None:
        raise ValueError("token streaming needs greedy search or sampling (beam_size=1 or sampling=True)")
    if n_best > beam_size:
        raise ValueError(f"n_best={n_best} is larger than beam_size={beam_size}")
    results = beam_search(
        model, input_ids, attention_mask, beam_size=beam_size, max_output_len=max_output_len,
        len_penalty=len_penalty, repeat_penalty=repeat_penalty, prefix_ids=prefix_ids, model_kwargs=model_kwargs,
        output_attentions=output_attentions, encoder_outputs=encoder_outputs,
    )
    return [nbest[:n_best] for nbest in results]


@torch.inference_mode()
def score_targets(
    model: torch.nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    target_ids: Sequence[Sequence[int] | Tensor],
    *,
    model_kwargs: dict[str, Any] | None = None,
) -> list[Tensor]:
    """Teacher forcing: the log-probability of each token of each target (include the final EOS in the targets).

    Returns one 1-D float tensor per sentence, as long as its target.
    """
    if len(target_ids) != input_ids.size(0):
        raise ValueError(f"{len(target_ids)} targets for {input_ids.size(0)} source sentences")
    ids = ModelInfo(model).special_ids()
    targets = [torch.as_tensor(t, dtype=torch.long) for t in target_ids]
    if any(t.numel() == 0 for t in targets):
        raise ValueError("empty target: a target needs at least its EOS token")
    width = max(t.numel() for t in targets)
    labels = torch.full((len(targets), width), ids.pad, dtype=torch.long)
    for i, t in enumerate(targets):
        labels[i, : t.numel()] = t
    labels = labels.to(input_ids.device)
    decoder_input_ids = shift_tokens_right(labels, ids.pad, ids.decoder_start)
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, use_cache=False,
        return_dict=True, **(model_kwargs or {}),
    )
    lprobs = out.logits.float().log_softmax(dim=-1).gather(2, labels.unsqueeze(2)).squeeze(2)
    return [lprobs[i, : t.numel()].cpu() for i, t in enumerate(targets)]

