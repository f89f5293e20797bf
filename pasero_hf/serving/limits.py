"""What one server accepts and how it batches: every limit is a `pasero-serve` option and is reported by `/info`."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ServerLimits:
    """Bounds on requests, and dynamic batching settings.

    Attributes:
        max_input_tokens: longest input (prompt or source sentence) in tokens, special tokens included.
        max_new_tokens: most tokens generated per output (`max_new_tokens` / `max_output_len` / `max_tokens`).
        max_inputs: most inputs in one request (`input` of `/{model}/decode`).
        max_body_bytes: largest request body.
        max_concurrent_requests: requests being served at once (all models); more get 429.
        request_timeout: seconds a request may wait and run before it gets 504 (its work is then dropped).
        max_stop_sequences, max_best_of: TGI's limits on `stop` and `best_of`.
        batching: group concurrent requests to one model into one decoding batch.
        batch_wait_ms: a batch stays open while requests keep arriving less than this apart (10 times this at most).
        max_batch_tokens: most input tokens in one batch.
    """

    max_input_tokens: int = 1024
    max_new_tokens: int = 512
    max_inputs: int = 64
    max_body_bytes: int = 1_000_000
    max_concurrent_requests: int = 64
    request_timeout: float = 60.0
    max_stop_sequences: int = 4
    max_best_of: int = 2
    batching: bool = True
    batch_wait_ms: float = 5.0
    max_batch_tokens: int = 4096

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "batching" and not (value >= 0 if field.name == "batch_wait_ms" else value > 0):
                raise ValueError(f"server limit {field.name} must be > 0, got {value}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
