"""One served model: its `TextGenerator`, its device and the thread that decodes its requests in dynamic batches.

Requests become `Job`s in the model's queue. The decoding thread takes the oldest job, then, for up to
`batch_wait_ms`, the jobs that can share its batch (same languages and decoding options, no token streaming, no
seeded sampling) until `max_batch_tokens` input tokens, and decodes them all with one `TextGenerator.decode` call,
which sorts them by length and splits them as `pasero-decode` does: outputs are those of `pasero-decode`. Jobs whose
client went away before their batch started are dropped.

Clients usually send their next request as soon as they get an answer, and the answers of one batch all go out at
once: a batch that closed before all of them came back would split the following batches (10 + 6 instead of 16,
each decoded for as long as its longest sentence): at beam 5 with 16 clients on the 30 MB model, 1.3x the CPU time
per request of whole batches (benchmarks/RESULTS.md, "What limits serving throughput"). So, while fewer requests have arrived since the last batch was answered than it
answered, the window stays open for up to `_RETURN_WAIT` of that batch's decoding time (at least `_MAX_WAITS`
windows): a 2 s batch may wait 100 ms for its clients, a lone client waits for nobody.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pasero_hf.generation import TextGenerator
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.serving.errors import GenerationCancelled, RequestError
from pasero_hf.serving.limits import ServerLimits
from pasero_hf.serving.metrics import Metrics
from pasero_hf.serving.streaming import TokenStreamer

logger = logging.getLogger(__name__)

# Most batch_wait_ms windows that one batch waits for requests to join it.
_MAX_WAITS = 10
# Longest wait for the clients of the last batch to come back, as a fraction of its decoding time.
_RETURN_WAIT = 0.05


@dataclass
class Job:
    """Inputs to decode with the same languages and options, and where their outputs go."""

    inputs: list[str]
    languages: dict[str, str]  # source_lang, target_lang, domain (those given)
    options: dict[str, Any]  # DecodingOptions fields, already validated
    num_tokens: int
    future: asyncio.Future
    streamer: TokenStreamer | None = None
    cancelled: bool = False
    submitted: float = 0.0  # time.monotonic() when queued

    def batch_key(self):
        """Jobs with equal keys can be decoded in one batch; None: this one decodes alone."""
        if self.streamer is not None or (self.options.get("sampling") and self.options.get("seed") is not None):
            return None  # a seed reproduces a sample only in a batch of its own
        return tuple(sorted(self.languages.items())), tuple(sorted(self.options.items()))

    def cancel(self) -> None:
        self.cancelled = True
        if self.streamer is not None:
            self.streamer.cancel()


def _resolve(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ModelWorker:
    """A loaded model with its request queue and decoding thread (`start()` / `stop()`)."""

    def __init__(self, name: str, generator: TextGenerator, device: str, limits: ServerLimits, metrics: Metrics,
                 path: str = ""):
        self.name = name
        self.generator = generator
        self.device = device
        self.path = path
        self.limits = limits
        self.metrics = metrics
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._held: collections.deque[Job] = collections.deque()  # taken from the queue, left for a later batch
        # the last batch: when its answers went out, how many, and how long it decoded
        self._answered_at, self._answered, self._last_duration = 0.0, 0, 0.0
        self._thread = threading.Thread(target=self._run, name=f"pasero-serve:{name}", daemon=True)

    @classmethod
    def load(cls, name: str, path: str, device: str, limits: ServerLimits, metrics: Metrics, **options) -> ModelWorker:
        generator = TextGenerator.from_pretrained(path, device=device, **options)
        _declare_bilingual_languages(generator)
        return cls(name, generator, device, limits, metrics, path=str(path))

    # ----------------------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        job.submitted = time.monotonic()
        self._queue.put(job)
        self.metrics.queue_size.inc(self.name)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def queue_size(self) -> int:
        return self._queue.qsize() + len(self._held)

    # ----------------------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while (batch := self._next_batch()) is not None:
            self.metrics.queue_size.dec(self.name, value=len(batch))
            live = [job for job in batch if not job.cancelled and not job.future.done()]
            if live:
                self.metrics.batch_size.observe(self.name, sum(len(job.inputs) for job in live))
                start = time.monotonic()
                self._decode(live)
                self._answered_at = time.monotonic()
                self._answered, self._last_duration = len(live), self._answered_at - start

    def _next_batch(self) -> list[Job] | None:
        first = self._held.popleft() if self._held else self._queue.get()
        if first is None:
            return None
        batch = [first]
        key = first.batch_key()
        if key is None or not self.limits.batching:
            return batch
        tokens = first.num_tokens
        for job in list(self._held):  # older jobs first
            if job.batch_key() == key and tokens + job.num_tokens <= self.limits.max_batch_tokens:
                self._held.remove(job)
                batch.append(job)
                tokens += job.num_tokens
        # A sliding window: the batch closes once no request has arrived for batch_wait_ms (clients answered together
        # come back spread over more than that), or after _MAX_WAITS windows in all.
        wait = self.limits.batch_wait_ms / 1000
        now = time.monotonic()
        deadline, last_call = now + wait, now + _MAX_WAITS * wait
        # the clients of the last batch that have not come back yet (see the module docstring)
        returning = self._answered - sum(job.submitted >= self._answered_at for job in batch)
        return_call = self._answered_at + max(_MAX_WAITS * wait, _RETURN_WAIT * self._last_duration)
        while tokens < self.limits.max_batch_tokens:
            until = min(deadline, last_call) if returning <= 0 else max(min(deadline, last_call), return_call)
            try:
                job = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if job is None:  # stop() after this batch
                self._queue.put(None)
                break
            deadline = time.monotonic() + wait
            returning -= job.submitted >= self._answered_at
            if job.batch_key() == key and tokens + job.num_tokens <= self.limits.max_batch_tokens:
                batch.append(job)
                tokens += job.num_tokens
            else:
                self._held.append(job)
        return batch

    def _decode(self, jobs: list[Job]) -> None:
        """Decode the jobs of one batch and hand each its n-best lists; on error, retry them one by one so that one
        bad request (an unknown language...) fails alone."""
        head = jobs[0]
        try:
            outputs = self.generator.decode(
                *[text for job in jobs for text in job.inputs],
                **head.languages,
                return_scores=True,
                streamer=head.streamer,
                **head.options,
            )
        except GenerationCancelled:
            self._finish(head, error=RequestError(499, "request cancelled", "cancelled"))
            return
        except Exception as error:  # noqa: BLE001 - every failure goes back to its request
            if len(jobs) > 1:
                for job in jobs:
                    self._decode([job])
                return
            if isinstance(error, ValueError):
                failure = RequestError(422, f"Input validation error: {error}", "validation")
            else:
                logger.exception("decoding failed (model %s)", self.name)
                failure = RequestError(424, f"Request failed during generation: {type(error).__name__}: {error}",
                                       "generation")
            self._finish(head, error=failure)
            return
        start = 0
        for job in jobs:
            self._finish(job, result=outputs[start:start + len(job.inputs)])
            start += len(job.inputs)

    @staticmethod
    def _finish(job: Job, result: Any = None, error: BaseException | None = None) -> None:
        loop = job.future.get_loop()
        if job.streamer is not None:
            job.streamer.emit("error" if error is not None else "done", error if error is not None else result)
        # a streamed request reads its events, not its future: the error travels as an event only
        loop.call_soon_threadsafe(_resolve, job.future, result, None if job.streamer is not None else error)


def _declare_bilingual_languages(generator: TextGenerator) -> None:
    """A converted bilingual Pasero model (its tokenizer places no language codes) declares no languages, but its
    tokenizer knows them: declare them, so that `/info` and the playground show them and other languages are refused
    instead of silently translating into the only language the model knows."""
    tokenizer = generator.tokenizer
    flags = ("lang_code", "source_lang_code", "target_lang_code")
    if any(getattr(tokenizer, flag, True) for flag in flags):
        return
    if not generator.source_langs and getattr(tokenizer, "src_lang", None):
        generator.source_langs = [tokenizer.src_lang]
    if not generator.target_langs and getattr(tokenizer, "tgt_lang", None):
        generator.target_langs = [tokenizer.tgt_lang]


# MODEL[:DEVICE] with DEVICE "cpu", "cuda", "cuda:N", "mps" or a GPU number N
_MODEL_SPEC = re.compile(r"^(?P<model>.+?)(?::(?P<device>cpu|cuda(?::\d+)?|mps|\d+))?$")


def parse_model_spec(spec: str) -> tuple[str, str]:
    """`"models/tiny:0"` -> `("models/tiny", "cuda:0")`; no device means CPU."""
    match = _MODEL_SPEC.match(spec)
    device = match["device"] or "cpu"
    return match["model"].rstrip("/"), f"cuda:{device}" if device.isdigit() else device


def load_workers(specs: list[str], limits: ServerLimits, metrics: Metrics | None = None,
                 **options: Any) -> dict[str, ModelWorker]:
    """Load every `MODEL[:DEVICE]` (a model directory or repo id: `resolve_model_dir`); each is named after its
    directory (the last part of a repo id). `options` go to `TextGenerator.from_pretrained` (dtype, trust_remote_code, decoding defaults)."""
    metrics = metrics or Metrics()
    workers: dict[str, ModelWorker] = {}
    for spec in specs:
        model, device = parse_model_spec(spec)
        path = resolve_model_dir(model)
        # named as the user wrote it: a repo id's local copy is a snapshot directory named by its commit
        name = Path(model).name or path.resolve().name
        if name in workers:
            raise ValueError(f"two models are named {name!r} ({workers[name].path} and {path}): rename one directory")
        logger.info("loading %s on %s", path, device)
        workers[name] = ModelWorker.load(name, str(path), device, limits, metrics, **options)
    return workers
