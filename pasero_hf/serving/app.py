"""The `pasero-serve` application: Pasero's HTTP API, the TGI protocol and OpenAI's chat routes over `ModelWorker`s.

```python
from pasero_hf.serving import ServerLimits, create_app, load_workers
app = create_app(load_workers(["models/tiny-en-es:cpu"]), ServerLimits())   # then uvicorn.run(app, port=8000)
```
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse

import pasero_hf
from pasero_hf.data.prompts import RenderedPrompt
from pasero_hf.generation.decoding_options import DecodingOptions
from pasero_hf.serving.errors import RequestError, invalid
from pasero_hf.serving.limits import ServerLimits
from pasero_hf.serving.metrics import Metrics
from pasero_hf.serving.parameters import (
    PASERO_OPTIONS,
    DecodeRequest,
    parse_openai_chat,
    parse_pasero,
    parse_tgi,
)
from pasero_hf.serving.responses import Output, pasero_decode_body, tgi_body
from pasero_hf.serving.streaming import IncrementalDetokenizer, TokenStreamer
from pasero_hf.serving.worker import Job, ModelWorker

ACTIONS = {
    "GET /list": "the served models and their information",
    "GET /help": "these actions, and every decoding option with its type and default",
    "GET|POST /{model}/decode": "decode a batch of inputs (Pasero's options); top outputs, n-best lists and scores",
    "GET|POST /{model}/stream": "server-sent events, one per generated token (greedy search or sampling, one input)",
    "GET /{model}/info": "languages, architecture, decoding defaults and limits of a model",
    "GET / and /{model}": "web playground",
    "POST / | /generate | /generate_stream (also under /{model}/)": "Text Generation Inference protocol",
    "GET /info | /health | /metrics": "TGI's server information, health check and Prometheus metrics",
    "POST /v1/chat/completions, GET /v1/models": "OpenAI-compatible chat (causal LMs with a chat template)",
}
_DEFAULT_CHAT_MODELS = ("", "tgi", "dummy")  # what OpenAI-style clients send when they do not name a model


class _Admission:
    """Counts the requests being served; one too many gets TGI's 429 (the event loop is single-threaded)."""

    def __init__(self, limit: int, metrics: Metrics):
        self.limit, self.active, self.metrics = limit, 0, metrics

    def enter(self) -> None:
        if self.active >= self.limit:
            self.metrics.overloaded.inc()
            raise RequestError(429, f"Model is overloaded: {self.limit} requests are already being served "
                                    "(max_concurrent_requests)", "overloaded")
        self.active += 1

    def leave(self) -> None:
        self.active -= 1


class _MetricsMiddleware:
    """Counts responses by route and status and times them (pure ASGI: streaming and disconnects pass through)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.inc(route, str(status[0]))
            self.metrics.duration.observe(route, time.perf_counter() - start)


def model_info(worker: ModelWorker, limits: ServerLimits) -> dict[str, Any]:
    generator = worker.generator
    config = generator.model.config
    tokenizer = generator.tokenizer
    has_chat = bool(getattr(tokenizer, "chat_template", None)) and not generator.is_encoder_decoder
    return {
        "name": worker.name,
        "path": worker.path,
        "task": "translation" if generator.is_encoder_decoder else ("chat" if has_chat else "text-generation"),
        "architecture": getattr(config, "model_type", None),
        "model_class": type(generator.model).__name__,
        "parameters": sum(parameter.numel() for parameter in generator.model.parameters()),
        "device": str(generator.model.device),
        "dtype": str(generator.model.dtype).removeprefix("torch."),
        "source_langs": generator.source_langs,
        "target_langs": generator.target_langs,
        "default_source_lang": generator.source_langs[0] if len(generator.source_langs) == 1 else None,
        "default_target_lang": generator.target_langs[0] if len(generator.target_langs) == 1 else None,
        "decoding_options": dataclasses.asdict(generator.options),
        "chat_template": has_chat,
        "limits": limits.as_dict(),
    }


def _sse(payload: Any) -> str:
    return f"data:{json.dumps(payload, ensure_ascii=False)}\n\n"


def create_app(workers: dict[str, ModelWorker], limits: ServerLimits | None = None,
               metrics: Metrics | None = None) -> FastAPI:
    """The FastAPI application serving `workers` (name -> loaded model); their threads run while the app does."""
    if not workers:
        raise ValueError("create_app needs at least one model")
    limits = limits or ServerLimits()
    metrics = metrics or next(iter(workers.values())).metrics
    admission = _Admission(limits.max_concurrent_requests, metrics)
    default_name = next(iter(workers))

    @asynccontextmanager
    async def lifespan(_app):
        for worker in workers.values():
            worker.start()
        try:
            yield
        finally:
            for worker in workers.values():
                worker.stop()

    app = FastAPI(title="pasero-serve", version=pasero_hf.__version__, lifespan=lifespan, docs_url="/docs",
                  redoc_url=None)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    app.state.workers, app.state.limits, app.state.metrics = workers, limits, metrics

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        if request.url.path.startswith("/v1/"):  # OpenAI's shape, whose clients show `error.message`
            body = {"error": {"message": error.message, "type": error.error_type, "param": None, "code": None}}
            return JSONResponse(body, status_code=error.status)
        return JSONResponse(error.body(), status_code=error.status)

    # ------------------------------------------------------------------------------------------------------------
    # Reading requests

    def get_worker(name: str) -> ModelWorker:
        worker = workers.get(name)
        if worker is None:
            raise RequestError(404, f"unknown model {name!r}: this server has {', '.join(workers)}", "validation")
        return worker

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise RequestError(413, f"request body of {declared} bytes exceeds max_body_bytes "
                                    f"({limits.max_body_bytes})", "validation")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise RequestError(413, f"request body exceeds max_body_bytes ({limits.max_body_bytes})",
                                   "validation")
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_json(request: Request) -> Any:
        raw = await read_body(request)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(400, f"request body is not valid UTF-8 (byte {error.start})", "validation") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise RequestError(400, f"request body is not valid JSON: {error.msg} at line {error.lineno} column "
                                    f"{error.colno}", "validation") from None

    async def pasero_params(request: Request) -> tuple[dict[str, Any], bool]:
        """Options of a Pasero call: query string (GET), form or JSON (POST); (values, values_are_text)."""
        if request.method == "GET":
            pairs = list(request.query_params.multi_items())
        elif "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            raw = await read_body(request)
            try:
                pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                                               errors="strict")
            except UnicodeDecodeError as error:
                raise RequestError(400, f"form data is not valid UTF-8 (byte {error.start})", "validation") from None
        else:
            data = await read_json(request)
            if not isinstance(data, dict):
                raise invalid(f"the request body must be a JSON object of options, got {type(data).__name__}")
            return data, False
        values: dict[str, Any] = {}
        for key, value in pairs:
            key = key.removesuffix("[]")
            if key == "input":
                values.setdefault("input", []).append(value)
            else:
                values[key] = value
        return values, True

    def count_tokens(worker: ModelWorker, texts: list[str]) -> int:
        lengths = [len(ids) for ids in worker.generator.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        for index, length in enumerate(lengths):
            if length > limits.max_input_tokens:
                where = f"input {index}" if len(texts) > 1 else "the input"
                raise invalid(f"{where} has {length} tokens, more than max_input_tokens ({limits.max_input_tokens})")
        metrics.input_tokens.inc(worker.name, value=sum(lengths))
        return sum(lengths)

    # ------------------------------------------------------------------------------------------------------------
    # Running requests

    async def client_gone(request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    def new_job(worker: ModelWorker, request: DecodeRequest, inputs: list[str], streamer=None) -> Job:
        return Job(inputs=inputs, languages=request.languages, options=request.options,
                   num_tokens=count_tokens(worker, inputs), future=asyncio.get_running_loop().create_future(),
                   streamer=streamer)

    async def decode(http: Request, worker: ModelWorker, request: DecodeRequest, inputs: list[str]):
        job = new_job(worker, request, inputs)
        admission.enter()
        try:
            worker.submit(job)
            watcher = asyncio.ensure_future(client_gone(http))
            try:
                done, _ = await asyncio.wait({job.future, watcher}, timeout=limits.request_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
            if job.future.done():
                nbests = job.future.result()
                metrics.generated_tokens.inc(worker.name, value=sum(len(n[0]["tokens"]) for n in nbests))
                return nbests
            job.cancel()
            job.future.cancel()
            if watcher in done:
                metrics.cancelled.inc(worker.name)
                raise RequestError(499, "client closed the connection", "cancelled")
            raise RequestError(504, f"request timed out after {limits.request_timeout:g} s (request_timeout)",
                               "timeout")
        finally:
            admission.leave()

    async def start_stream(worker: ModelWorker, request: DecodeRequest) -> Job:
        """Queue a streamed job and wait until its search has started: errors before that are plain HTTP errors."""
        if len(request.inputs) != 1:
            raise invalid(f"streaming decodes one input at a time, got {len(request.inputs)} (use /decode)")
        if not request.options.get("sampling", worker.generator.options.sampling):
            request.options["beam_size"] = 1  # as Pasero's /stream: greedy search unless sampling
        job = new_job(worker, request, request.inputs, streamer=TokenStreamer(asyncio.get_running_loop()))
        admission.enter()
        try:
            worker.submit(job)
            kind, value = await asyncio.wait_for(job.streamer.events.get(), timeout=limits.request_timeout)
        except BaseException as error:
            job.cancel()
            admission.leave()
            if isinstance(error, asyncio.TimeoutError):
                raise RequestError(504, f"request timed out after {limits.request_timeout:g} s", "timeout") from None
            raise
        if kind == "error":
            admission.leave()
            raise value
        if kind == "done":  # nothing to stream (blank input)
            job.streamer.events.put_nowait((kind, value))
        return job

    async def token_events(worker: ModelWorker, job: Job, stop: list[str]) -> AsyncIterator[tuple]:
        """("token", id, piece) for each token but the last, then ("last", id, piece, hypothesis|None, text), or
        ("error", RequestError). Releases the job's admission when done, and cancels its search if the client goes
        away (the response generator is closed) or a stop sequence appears."""
        tokenizer = worker.generator.tokenizer
        detokenizer = IncrementalDetokenizer(tokenizer)
        pending = None  # the previous token: the last one is sent with the final text
        count = 0
        ended = False  # False in `finally`: the client went away (the response was closed)
        try:
            while True:
                kind, value = await asyncio.wait_for(job.streamer.events.get(), timeout=limits.request_timeout)
                if kind == "token":
                    count += 1
                    if pending is not None:
                        yield ("token", *pending)
                    pending = (value, detokenizer.add(value))
                    hit = [detokenizer.emitted.find(s) + len(s) for s in stop if s in detokenizer.emitted]
                    if hit:
                        job.cancel()
                        text = detokenizer.emitted[: min(hit)]
                        piece = pending[1][: max(0, len(pending[1]) - (len(detokenizer.emitted) - len(text)))]
                        ended = True
                        yield ("last", pending[0], piece, None, text)
                        return
                elif kind == "done":
                    hypothesis = value[0][0]
                    text = hypothesis["detok"]
                    cut = [text.find(s) + len(s) for s in stop if s in text]
                    text = text[: min(cut)] if cut else text
                    ended = True
                    if pending is None:
                        yield ("last", None, "", hypothesis, text)
                    else:
                        yield ("last", pending[0], pending[1] + detokenizer.flush(text), hypothesis, text)
                    return
                else:
                    ended = True
                    yield ("error", value)
                    return
        except asyncio.TimeoutError:
            ended = True
            yield ("error", RequestError(504, "request timed out (request_timeout)", "timeout"))
        finally:
            job.cancel()  # stops the search if it still runs
            if not ended:
                metrics.cancelled.inc(worker.name)
            metrics.generated_tokens.inc(worker.name, value=count)
            admission.leave()

    # ------------------------------------------------------------------------------------------------------------
    # Pasero's API

    @app.get("/list")
    async def list_models():
        return [model_info(worker, limits) for worker in workers.values()]

    @app.get("/help")
    async def help_():
        defaults = dataclasses.asdict(DecodingOptions())
        defaults["sampling_temperature"] = defaults["temperature"]
        options = {
            name: {"type": kind.__name__, "default": defaults.get(name, None), "help": text}
            for name, (kind, text) in PASERO_OPTIONS.items()
        }
        options["return_scores"]["default"] = True
        options["max_output_len"]["default"] = min(defaults["max_output_len"], limits.max_new_tokens)
        return {"actions": ACTIONS, "options": options, "limits": limits.as_dict()}

    @app.api_route("/{name}/decode", methods=["GET", "POST"])
    async def pasero_decode(name: str, http: Request):
        worker = get_worker(name)
        values, from_text = await pasero_params(http)
        request = parse_pasero(values, worker.generator, limits, from_text)
        start = time.perf_counter()
        nbests = await decode(http, worker, request, request.inputs)
        return pasero_decode_body(name, request.inputs, nbests, time.perf_counter() - start, request.return_scores)

    @app.api_route("/{name}/stream", methods=["GET", "POST"])
    async def pasero_stream(name: str, http: Request):
        worker = get_worker(name)
        values, from_text = await pasero_params(http)
        request = parse_pasero(values, worker.generator, limits, from_text)
        job = await start_stream(worker, request)

        async def events():
            async for event in token_events(worker, job, []):
                if event[0] == "error":
                    yield _sse({"error": event[1].message, "error_type": event[1].error_type})
                    return
                token_id, piece = event[1], event[2]
                payload = {"detok": piece}
                if token_id is not None:
                    payload.update(id=token_id, token=worker.generator.tokenizer.convert_ids_to_tokens(token_id))
                if event[0] == "last" and event[3] is not None:
                    payload["output"] = pasero_decode_body(name, request.inputs, [[event[3]]], 0.0, True)["nbest"][0][0]
                yield _sse(payload)
            yield _sse({})

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/{name}/info")
    async def pasero_info(name: str):
        return model_info(get_worker(name), limits)

    # ------------------------------------------------------------------------------------------------------------
    # TGI protocol

    async def tgi_generate(http: Request, worker: ModelWorker, *, compat: bool, force_stream: bool | None):
        body = await read_json(http)
        request = parse_tgi(body, worker.generator, limits)
        stream = request.stream if force_stream is None else force_stream
        if stream:
            request.stream = True
            return await tgi_stream(worker, request)
        inputs = request.inputs * request.best_of
        nbests = await decode(http, worker, request, inputs)
        prompt = request.inputs[0]
        result = tgi_body(worker.generator.tokenizer, request, [hyp for nbest in nbests for hyp in nbest[:1]],
                          prompt, translation=compat)
        return [result] if compat else result

    async def tgi_stream(worker: ModelWorker, request: DecodeRequest):
        job = await start_stream(worker, request)
        tokenizer = worker.generator.tokenizer
        special = set(tokenizer.all_special_ids)

        async def events():
            index = 0
            async for event in token_events(worker, job, request.stop):
                if event[0] == "error":
                    yield _sse(event[1].body())
                    return
                index += 1
                token_id, piece = event[1], event[2]
                token = {"id": token_id if token_id is not None else tokenizer.eos_token_id, "text": piece,
                         "logprob": None, "special": token_id in special}
                payload = {"index": index, "token": token, "generated_text": None, "details": None}
                if event[0] == "last":
                    hypothesis, text = event[3], event[4]
                    payload["generated_text"] = (request.inputs[0] + text) if request.return_full_text else text
                    if hypothesis is not None:
                        output = Output(tokenizer, hypothesis, request.stop)
                        if output.logprobs:
                            token["logprob"] = output.logprobs[-1]
                        finish_reason, generated = output.finish_reason, len(output.ids)
                    else:
                        finish_reason, generated = "stop_sequence", index
                    if request.details:
                        payload["details"] = {"finish_reason": finish_reason, "generated_tokens": generated,
                                              "seed": request.options.get("seed")}
                yield _sse(payload)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/")
    async def tgi_compat(http: Request):
        return await tgi_generate(http, get_worker(default_name), compat=True, force_stream=None)

    @app.post("/generate")
    async def tgi_generate_route(http: Request):
        return await tgi_generate(http, get_worker(default_name), compat=False, force_stream=False)

    @app.post("/generate_stream")
    async def tgi_generate_stream(http: Request):
        return await tgi_generate(http, get_worker(default_name), compat=False, force_stream=True)

    @app.post("/{name}/generate")
    async def tgi_generate_model(name: str, http: Request):
        return await tgi_generate(http, get_worker(name), compat=False, force_stream=False)

    @app.post("/{name}/generate_stream")
    async def tgi_generate_stream_model(name: str, http: Request):
        return await tgi_generate(http, get_worker(name), compat=False, force_stream=True)

    @app.get("/info")
    async def tgi_info():
        worker = workers[default_name]
        info = model_info(worker, limits)
        return {
            "model_id": default_name,
            "model_sha": None,
            "model_dtype": info["dtype"],
            "model_device_type": worker.generator.model.device.type,
            "model_pipeline_tag": "translation" if info["task"] == "translation" else "text-generation",
            "max_concurrent_requests": limits.max_concurrent_requests,
            "max_best_of": limits.max_best_of,
            "max_stop_sequences": limits.max_stop_sequences,
            "max_input_tokens": limits.max_input_tokens,
            "max_total_tokens": limits.max_input_tokens + limits.max_new_tokens,
            "max_client_batch_size": limits.max_inputs,
            "max_batch_total_tokens": limits.max_batch_tokens,
            "router": "pasero-serve",
            "version": pasero_hf.__version__,
            "sha": None,
            "docker_label": None,
            "models": list(workers),
            "limits": limits.as_dict(),
            "queue_size": {name: w.queue_size for name, w in workers.items()},
        }

    @app.get("/health")
    async def health():
        for worker in workers.values():
            if not worker.alive:
                raise RequestError(503, f"model {worker.name} is not running", "unhealthy")
        return Response(status_code=200)

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    # ------------------------------------------------------------------------------------------------------------
    # OpenAI chat

    @app.get("/v1/models")
    async def openai_models():
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "pasero-serve"} for name in workers
        ]}

    @app.post("/v1/chat/completions")
    async def openai_chat(http: Request):
        body = await read_json(http)
        name = body.get("model") if isinstance(body, dict) else None
        if isinstance(name, str) and name in workers:
            worker = workers[name]
        elif name is None or name in _DEFAULT_CHAT_MODELS:
            chat_models = [w for w in workers.values() if model_info(w, limits)["task"] == "chat"]
            worker = chat_models[0] if chat_models else workers[default_name]
        else:
            raise RequestError(404, f"unknown model {name!r}: this server has {', '.join(workers)}", "validation")
        generator = worker.generator
        if generator.is_encoder_decoder or not getattr(generator.tokenizer, "chat_template", None):
            raise invalid(f"model {worker.name!r} has no chat template: use /generate or /{worker.name}/decode")
        request, messages = parse_openai_chat(body, generator, limits)
        try:
            prompt = generator.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as error:  # noqa: BLE001 - a template error is the messages' fault
            raise invalid(f"`messages` do not fit the model's chat template: {error}") from None
        request.inputs = [RenderedPrompt(prompt)]  # already templated: decoded as is, whatever the model's task
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        head = {"id": completion_id, "created": created, "model": worker.name,
                "system_fingerprint": f"pasero-hf-{pasero_hf.__version__}"}
        prompt_tokens = len(generator.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if request.stream:
            job = await start_stream(worker, request)

            async def events():
                count = 0
                first = True
                async for event in token_events(worker, job, request.stop):
                    if event[0] == "error":
                        yield _sse(event[1].body())
                        return
                    count += 1
                    delta = {"role": "assistant", "content": event[2]} if first else {"content": event[2]}
                    first = False
                    finish = None
                    if event[0] == "last":
                        hypothesis = event[3]
                        finish = "stop"
                        if hypothesis is not None and Output(generator.tokenizer, hypothesis, request.stop
                                                             ).finish_reason == "length":
                            finish = "length"
                    yield _sse({**head, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        nbests = await decode(http, worker, request, request.inputs)
        output = Output(generator.tokenizer, nbests[0][0], request.stop)
        return {**head, "object": "chat.completion", "choices": [{
            "index": 0, "message": {"role": "assistant", "content": output.text}, "logprobs": None,
            "finish_reason": "length" if output.finish_reason == "length" else "stop",
        }], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(output.ids),
                      "total_tokens": prompt_tokens + len(output.ids)}}

    # ------------------------------------------------------------------------------------------------------------
    # Playground (declared last: `/{name}` must not shadow the routes above)

    playground = resources.files("pasero_hf.serving").joinpath("static/playground.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(playground)

    @app.get("/{name}", response_class=HTMLResponse)
    async def model_playground(name: str):
        get_worker(name)
        return HTMLResponse(playground)

    @app.post("/{name}")
    async def tgi_compat_model(name: str, http: Request):
        return await tgi_generate(http, get_worker(name), compat=True, force_stream=None)

    return app
