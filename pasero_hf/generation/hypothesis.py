"""The hypothesis type every search returns, and how `TextGenerator` formats it for its users.

Score convention: a `Hypothesis` holds log-probabilities (higher is better), as `torch.log_softmax` gives them; every
search (Pasero's, `generate`, teacher forcing, CTranslate2) fills it that way. `TextGenerator` outputs follow
`pasero-decode` instead: `HypothesisFormatter` is the one place that turns a hypothesis into Pasero's dict, where
`score` and `pos_scores` are negative log-likelihoods in nats (lower is better) and `normalized_score` is
`score / (len(tokens) + 1) ** len_penalty`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from pasero_hf.generation.layer_outputs import LayerRequest, empty_layer
from pasero_hf.generation.model_info import ModelInfo
from pasero_hf.generation.prompting import text_before_stop


@dataclasses.dataclass
class Hypothesis:
    """One decoding output.

    Attributes:
        tokens: generated ids: the forced prefix (if any), then the output, ending with EOS unless decoding hit the
            `max_output_len` cap. The decoder start token is not included.
        score: sum of the log-probabilities of `tokens` (higher is better).
        normalized_score: `score / (len(tokens) + 1) ** len_penalty`, the key Pasero ranks n-best lists by.
        pos_scores: log-probability of each token in `tokens`.
        The three scores are None after greedy search with `return_scores=False`.
        cross_attention: `(len(tokens), source_len)` cross-attention of the last decoder layer averaged over heads
            (source padding removed); only when `output_attentions=True`.
        layers: requested layer outputs by name (`enc_3`, `dec_1_cross_attn`, ...; see `layer_outputs`).
    """

    tokens: list[int]
    score: float | None
    normalized_score: float | None
    pos_scores: list[float] | None
    cross_attention: Tensor | None = None
    layers: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


Output = dict[str, Any]


class HypothesisFormatter:
    """Pasero's output dicts (`src_tokens`, `prompt_tokens`, `tokens`, `detok`, scores, layers) from hypotheses."""

    def __init__(self, tokenizer, info: ModelInfo):
        self.tokenizer = tokenizer
        self.info = info

    def format(self, hypothesis: Hypothesis, source: Sequence[int] | None, prompt: Sequence[int],
               len_penalty: float, return_scores: bool, stop_sequences: Sequence[str] | None = None) -> Output:
        """`pos_scores` None (Pasero's greedy search without `return_scores`): no scores, unless the search gave
        its total `score` alone. With `stop_sequences`, `detok` ends before the first one."""
        tokens = hypothesis.tokens
        output: Output = {
            "src_tokens": self._source_tokens(source) if source is not None else None,
            "prompt_tokens": self.tokenizer.convert_ids_to_tokens(prompt),
            "tokens": self.tokenizer.convert_ids_to_tokens(tokens),
            "detok": (text_before_stop(self.tokenizer, tokens, stop_sequences) if stop_sequences
                      else self.tokenizer.decode(tokens, skip_special_tokens=True)),
        }
        if output["src_tokens"] is None:
            del output["src_tokens"]
        if hypothesis.pos_scores is not None:
            pos_scores = [-float(value) for value in hypothesis.pos_scores]
            score = float(sum(pos_scores))
            output["score"] = score
            output["normalized_score"] = score / (len(tokens) + 1) ** len_penalty
            if return_scores:
                output["pos_scores"] = pos_scores
        elif hypothesis.score is not None:
            output["score"] = -hypothesis.score
            output["normalized_score"] = -hypothesis.score / (len(tokens) + 1) ** len_penalty
        output.update(hypothesis.layers)
        return output

    def _source_tokens(self, ids: Sequence[int]) -> list[str]:
        # a Pasero tokenizer with a target dictionary reads ids as target ids unless told they are source ids
        if getattr(self.tokenizer, "separate_vocabs", False) and hasattr(self.tokenizer, "target_dictionary"):
            return self.tokenizer.convert_ids_to_tokens(ids, use_source_tokenizer=True)
        return self.tokenizer.convert_ids_to_tokens(ids)

    def empty(self, prompt: Sequence[int], layers: Sequence[LayerRequest], return_scores: bool) -> Output:
        """The output of a blank input: nothing is decoded, the layers are empty arrays of the right rank."""
        output = self.format(Hypothesis([], None, None, []), [], prompt, 1.0, return_scores)
        for request in layers:
            output[request.name] = empty_layer(request, self.info.hidden_size, self.info.num_heads(request.side))
        return output
