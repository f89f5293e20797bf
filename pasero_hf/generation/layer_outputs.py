"""Layer outputs returned on request by `TextGenerator.decode`, named like Pasero's `return_layers`.

`enc_N` (src_len, dim): output of encoder layer N; `enc_N_self_attn` (src_len, heads, src_len); `dec_N` (hyp_len, dim);
`dec_N_self_attn` (hyp_len, heads, keys); `dec_N_cross_attn` (hyp_len, heads, src_len). Padding is removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

_LAYER_NAME = re.compile(r"(enc|dec)_(\d+)(_self_attn|_cross_attn)?")


class LayerRequest(NamedTuple):
    """One requested layer output: `name` as given, `side` "enc" or "dec", layer index, `kind` "", "_self_attn" or
    "_cross_attn"."""

    name: str
    side: str
    layer: int
    kind: str


def parse_layer_names(names: Sequence[str], num_layers: Callable[[str], int]) -> list[LayerRequest]:
    """Validate `names` (duplicates dropped) against the model's layer counts (`num_layers("enc" | "dec")`)."""
    requests = []
    for name in dict.fromkeys(names):
        match = _LAYER_NAME.fullmatch(name)
        if match is None or (match.group(1) == "enc" and match.group(3) == "_cross_attn"):
            raise ValueError(
                f"unknown layer name {name!r} in return_layers: expected enc_N, enc_N_self_attn, dec_N, "
                "dec_N_self_attn or dec_N_cross_attn"
            )
        request = LayerRequest(name, match.group(1), int(match.group(2)), match.group(3) or "")
        count = num_layers(request.side)
        if request.layer >= count:
            raise ValueError(f"return_layers: {name!r} but the model has {count} {request.side} layers")
        requests.append(request)
    return requests


def encoder_layer(encoder_out, request: LayerRequest, sentence: int, src_len: int) -> np.ndarray:
    """`enc_N` or `enc_N_self_attn` of one sentence, from encoder outputs with hidden states / attentions."""
    if request.kind:
        attention = encoder_out.attentions[request.layer][sentence, :, :src_len, :src_len]  # heads, src, src
        return attention.permute(1, 0, 2).float().cpu().numpy()
    # hidden_states[0] is the embedding output: layer N's output is at N + 1
    return encoder_out.hidden_states[request.layer + 1][sentence, :src_len].float().cpu().numpy()


def decoder_layer(out, request: LayerRequest, row: int, offset: int, length: int, src_len: int) -> np.ndarray:
    """`dec_N*` of one hypothesis from a teacher-forced pass, whose positions `offset..offset+length` predicted it."""
    rows = slice(offset, offset + length)
    if request.kind == "_cross_attn":
        attention = out.cross_attentions[request.layer][row, :, rows, :src_len]
    elif request.kind == "_self_attn":
        attention = out.decoder_attentions[request.layer][row, :, rows, : offset + length]
    else:
        return out.decoder_hidden_states[request.layer + 1][row, rows].float().cpu().numpy()
    return attention.permute(1, 0, 2).float().cpu().numpy()


def empty_layer(request: LayerRequest, dim: int, heads: int) -> np.ndarray:
    """The layer output of a blank input: a zero-length array of the right rank."""
    return np.zeros((0, heads, 0) if request.kind else (0, dim), dtype=np.float32)
