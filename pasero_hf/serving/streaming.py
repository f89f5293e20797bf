"""Token streaming: a `transformers`-style streamer that hands tokens from the decoding thread to the event loop, and
the incremental detokenization that turns them into text pieces."""

from __future__ import annotations

import asyncio
from typing import Any

from pasero_hf.serving.errors import GenerationCancelled


class TokenStreamer:
    """Receives `put(ids)` / `end()` from the search (`TextGenerator.decode(streamer=...)`), in the decoding thread,
    and queues `("token", id)` events for the request's coroutine. The first `put` is the decoder prompt (as with
    `generate`): it becomes a `("start", None)` event, which tells the request that validation passed. Once
    `cancel()`ed (client gone, stop sequence), the next `put` raises `GenerationCancelled`, which ends the search."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.events: asyncio.Queue = asyncio.Queue()
        self._loop = loop
        self._started = False
        self.cancelled = False

    def put(self, ids) -> None:
        if self.cancelled:
            raise GenerationCancelled()
        if not self._started:
            self._started = True
            self.emit("start", None)
            return
        self.emit("token", int(ids.reshape(-1)[0]))

    def end(self) -> None:
        """The worker sends the final ("done", hypotheses) event itself: it holds the scores that the search returns."""

    def cancel(self) -> None:
        self.cancelled = True

    def emit(self, kind: str, value: Any) -> None:
        self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class IncrementalDetokenizer:
    """Text pieces of a growing token sequence whose concatenation is the detokenized sequence.

    A piece is released only once the text before it can no longer change: detokenization may rewrite the last word
    (Pasero's inline casing puts `<T>`/`<U>` after the word they capitalize; byte-level BPE completes characters), so
    the text after the last space is held back until a later token or `flush()`.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        stable = text[: max(text.rfind(" "), 0)]
        if len(stable) <= len(self.emitted) or not stable.startswith(self.emitted):
            return ""
        piece, self.emitted = stable[len(self.emitted):], stable
        return piece

    def flush(self, final_text: str | None = None) -> str:
        """The rest of the text (`final_text`: the full output if the caller has it, e.g. cut at a stop sequence)."""
        text = final_text if final_text is not None else self.tokenizer.decode(self.ids, skip_special_tokens=True)
        piece = text[len(self.emitted):] if text.startswith(self.emitted) else ""
        self.emitted = text
        return piece


def token_pieces(tokenizer, ids: list[int], final_text: str) -> list[str]:
    """The text piece of each token of a finished output, as streaming would have sent them (they add up to
    `final_text`)."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces = [detokenizer.add(token_id) for token_id in ids]
    if pieces:
        pieces[-1] += detokenizer.flush(final_text)
    return pieces
