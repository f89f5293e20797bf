"""The decoding state of an encoder-decoder search: the model, its key/value cache and the inputs that follow the rows
of the batch (encoder states, source mask) as beams are expanded, reordered and finished sentences dropped."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput


class _ReorderOnUpdateLayer(DynamicLayer):
    """A self-attention cache layer whose beam reordering waits for the next `update`, which then builds the reordered
    and extended keys and values in one copy (`DynamicLayer` makes two at every step: the reordered copy, then the
    concatenation). Its `keys` and `values` are only up to date after `update`."""

    def __init__(self):
        super().__init__()
        self._pending_rows: Tensor | None = None

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.get_seq_length() == 0:
            return
        if self._pending_rows is not None:
            beam_idx = self._pending_rows.index_select(0, beam_idx)
        self._pending_rows = beam_idx

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if self._pending_rows is None:
            return super().update(key_states, value_states, *args, **kwargs)
        self.keys = _select_and_append(self.keys, self._pending_rows, key_states)
        self.values = _select_and_append(self.values, self._pending_rows, value_states)
        self._pending_rows = None
        return self.keys, self.values


def _select_and_append(cached: Tensor, rows: Tensor, new: Tensor) -> Tensor:
    """`torch.cat([cached[rows], new], dim=-2)` without the intermediate `cached[rows]`."""
    length = cached.size(-2)
    output = cached.new_empty(rows.numel(), *cached.shape[1:-2], length + new.size(-2), cached.size(-1))
    torch.index_select(cached, 0, rows, out=output[..., :length, :])
    output[..., length:, :] = new
    return output


class DecodingState:
    """The model, its cache and the inputs that follow the rows of the decoding batch (encoder states, source mask)."""

    def __init__(self, model: torch.nn.Module, attention_mask: Tensor, model_kwargs: dict[str, Any] | None,
                 output_attentions: bool):
        self.model = model
        self.attention_mask = attention_mask
        self.model_kwargs = dict(model_kwargs or {})
        self.output_attentions = output_attentions
        self.encoder_hidden: Tensor | None = None
        self.cache = None

    def first_step(
        self, input_ids: Tensor | None, decoder_input_ids: Tensor, encoder_outputs: BaseModelOutput | None
    ):
        """Runs the encoder (unless its outputs are given) and the whole decoder prompt, once per sentence."""
        out = self.model(
            input_ids=None if encoder_outputs is not None else input_ids,
            encoder_outputs=encoder_outputs,
            attention_mask=self.attention_mask,
            decoder_input_ids=decoder_input_ids,
            cache=EncoderDecoderCache(Cache(layer_class_to_replicate=_ReorderOnUpdateLayer), DynamicCache()),
            use_cache=True,
            output_attentions=self.output_attentions,
            return_dict=True,
            **self.model_kwargs,
        )
        self.encoder_hidden = out.encoder_last_hidden_state
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        if self.cache is None:
            raise ValueError(f"{type(self.model).__name__} returned no cache with use_cache=True")
        return out

    def step(self, decoder_input_ids: Tensor):
        out = self.model(
            input_ids=None,
            encoder_outputs=BaseModelOutput(last_hidden_state=self.encoder_hidden),
            attention_mask=self.attention_mask,
            decoder_input_ids=decoder_input_ids,
            cache=self.cache,
            use_cache=True,
            output_attentions=self.output_attentions,
            return_dict=True,
            **self.model_kwargs,
        )
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out

    def select_rows(self, rows: Tensor, sentences: Tensor | None = None) -> None:
        """Keeps (and duplicates) decoder rows: beam expansion, beam reordering and removal of finished sentences.

        `rows` index the current decoder rows, and each new row belongs to the sentence of the row it copies;
        `sentences` index the current sentences when some are removed (None: all stay). The beams of a sentence share
        its encoder states and cross-attention keys and values: a model that takes them once per sentence
        (`supports_shared_encoder_states`) keeps one copy, which changes only when sentences are removed; otherwise
        they follow the rows, but need not move when beams are only reordered (moving them at every step would cost
        as much as the decoder itself).
        """
        if not isinstance(self.cache, EncoderDecoderCache):
            self._select_source_rows(rows, cache_too=True)
        elif self.shares_source:
            self.cache.self_attention_cache.reorder_cache(rows)
            if sentences is not None:
                self.cache.cross_attention_cache.reorder_cache(sentences)
                self._select_source_rows(sentences, cache_too=False)
        else:
            self.cache.self_attention_cache.reorder_cache(rows)
            if sentences is not None or rows.numel() != self.encoder_hidden.size(0):
                self.cache.cross_attention_cache.reorder_cache(rows)
                self._select_source_rows(rows, cache_too=False)

    @property
    def shares_source(self) -> bool:
        """Whether the model takes one copy of the encoder states per sentence for all its beams."""
        return isinstance(self.cache, EncoderDecoderCache) and getattr(
            self.model, "supports_shared_encoder_states", False
        )

    def _select_source_rows(self, rows: Tensor, cache_too: bool) -> None:
        if cache_too:
            self.cache.reorder_cache(rows)
        self.encoder_hidden = self.encoder_hidden.index_select(0, rows)
        self.attention_mask = self.attention_mask.index_select(0, rows)
