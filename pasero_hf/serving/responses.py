"""Turning `TextGenerator` hypotheses into the three APIs' response bodies."""

from __future__ import annotations

from typing import Any

import numpy as np

from pasero_hf.serving.parameters import DecodeRequest
from pasero_hf.serving.streaming import token_pieces


def _rounded(value: Any, digits: int = 5) -> Any:
    """JSON-ready copy: arrays become lists and floats are rounded (as Pasero's server does)."""
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item, digits) for item in value]
    if isinstance(value, np.ndarray):
        return _rounded(value.tolist(), digits)
    if isinstance(value, (float, np.floating)):
        return round(float(value), digits)
    return value


def pasero_decode_body(name: str, inputs: list[str], nbests: list[list[dict]], elapsed: float,
                       return_scores: bool) -> dict[str, Any]:
    """Pasero's `/decode` response: the top hypotheses as a dict of lists (`detok`, `tokens`, `score`...), plus the
    whole n-best lists under `nbest`, `input`, `model` and `elapsed` (seconds)."""
    if not return_scores:
        nbests = [[{k: v for k, v in hyp.items() if k != "pos_scores"} for hyp in nbest] for nbest in nbests]
    best = [nbest[0] for nbest in nbests]
    keys = list(dict.fromkeys(key for hyp in best for key in hyp))
    body: dict[str, Any] = {key: [hyp.get(key) for hyp in best] for key in keys}
    body.update(nbest=nbests, input=inputs, model=name, elapsed=elapsed)
    return _rounded(body)


class Output:
    """One finished output as TGI and OpenAI describe it: text cut at a stop sequence, token ids, pieces, logprobs."""

    def __init__(self, tokenizer, hypothesis: dict[str, Any], stop: list[str]):
        self.ids = [int(i) for i in tokenizer.convert_tokens_to_ids(hypothesis["tokens"])]
        text = hypothesis["detok"]
        self.logprobs = [-float(score) for score in hypothesis.get("pos_scores") or [0.0] * len(self.ids)]
        self.special = [token in tokenizer.all_special_tokens for token in hypothesis["tokens"]]
        self.finish_reason = "eos_token" if self.ids and self.ids[-1] == tokenizer.eos_token_id else "length"
        cuts = [text.find(sequence) + len(sequence) for sequence in stop if sequence in text]
        self.pieces = token_pieces(tokenizer, self.ids, text)
        if cuts:
            text = text[: min(cuts)]
            self.finish_reason = "stop_sequence"
            kept, length = 0, 0
            while kept < len(self.pieces) and length < len(text):
                length += len(self.pieces[kept])
                kept += 1
            self.ids, self.pieces = self.ids[:kept], self.pieces[:kept]
            self.logprobs, self.special = self.logprobs[:kept], self.special[:kept]
        self.text = text

    def tokens(self) -> list[dict[str, Any]]:
        return [
            {"id": token_id, "text": piece, "logprob": logprob, "special": special}
            for token_id, piece, logprob, special in zip(self.ids, self.pieces, self.logprobs, self.special)
        ]

    def details(self, request: DecodeRequest, prefill: list[dict]) -> dict[str, Any]:
        return {
            "finish_reason": self.finish_reason,
            "generated_tokens": len(self.ids),
            "seed": request.options.get("seed"),
            "prefill": prefill if request.decoder_input_details else [],
            "tokens": self.tokens(),
            "top_tokens": None,
        }


def prefill_tokens(tokenizer, text: str) -> list[dict[str, Any]]:
    """TGI's `prefill`: the input tokens (their logprobs are not computed: null)."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    return [{"id": int(i), "text": tokenizer.decode([i]), "logprob": None} for i in ids]


def tgi_body(tokenizer, request: DecodeRequest, nbest: list[dict], prompt: str, *, translation: bool) -> dict:
    """`/generate` response (`generated_text`, `details`); `translation`: also `translation_text`, which
    `InferenceClient.translation` reads from POST `/`."""
    outputs = sorted((Output(tokenizer, hyp, request.stop) for hyp in nbest), key=lambda o: -sum(o.logprobs))
    best = outputs[0]
    text = prompt + best.text if request.return_full_text else best.text
    body: dict[str, Any] = {"generated_text": text}
    if translation:
        body["translation_text"] = text
    if request.details:
        prefill = prefill_tokens(tokenizer, prompt) if request.decoder_input_details else []
        body["details"] = best.details(request, prefill)
        if request.best_of > 1:
            body["details"]["best_of_sequences"] = [
                {"generated_text": (prompt if request.return_full_text else "") + other.text,
                 **{k: v for k, v in other.details(request, prefill).items() if k != "top_tokens"}}
                for other in outputs[1:]
            ]
    return body
