"""`pasero-serve`: serve models over HTTP (Pasero's API, the TGI protocol, OpenAI chat routes, a web playground).

Examples:
    pasero-serve models/tiny-en-es --port 8000                  # http://127.0.0.1:8000/ is the playground
    pasero-serve models/tiny-en-es:cpu models/llama:0 --host 0.0.0.0 --max-concurrent-requests 32
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

from pasero_hf.serving.limits import ServerLimits

logger = logging.getLogger("pasero_hf.serve")

_LIMIT_HELP = {
    "max_input_tokens": "longest input in tokens",
    "max_new_tokens": "most generated tokens per output",
    "max_inputs": "most inputs per /decode request",
    "max_body_bytes": "largest request body in bytes",
    "max_concurrent_requests": "requests served at once; more get 429",
    "request_timeout": "seconds before a request gets 504",
    "max_stop_sequences": "most TGI stop sequences",
    "max_best_of": "largest TGI best_of",
    "batch_wait_ms": "a batch stays open while requests arrive less than this apart (ms)",
    "max_batch_tokens": "most input tokens per batch",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pasero-serve",
        description="Serve translation and language models over HTTP: Pasero's API (/list, /help, /MODEL/decode, "
        "/MODEL/stream, /MODEL/info), the Text Generation Inference protocol (/generate, /generate_stream, /info, "
        "/health, /metrics), OpenAI chat (/v1/chat/completions) and a web playground (/).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    parser.add_argument("models", nargs="+", metavar="MODEL[:DEVICE]",
                        help="model directories (or repo ids), each optionally followed by its device: cpu (default), "
                        "N or cuda:N (GPU N), mps")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--dtype", help="load the weights in this dtype (float32, bfloat16, float16)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run the models' own Python code")
    parser.add_argument("--backend", choices=("pytorch", "ctranslate2"),
                        help="decoding engine (default: ctranslate2 for a pasero-export directory, else pytorch); "
                             "ctranslate2 on a PyTorch model exports it once into a cache. Streamed responses of "
                             "ctranslate2 arrive in one piece, once the hypothesis is complete")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="decode requests one at a time (no dynamic batching)")
    limits = parser.add_argument_group("limits (reported by /info)")
    defaults = ServerLimits()
    for field in dataclasses.fields(ServerLimits):
        if field.name == "batching":
            continue
        limits.add_argument(f"--{field.name.replace('_', '-')}", type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name),
                            help=f"{_LIMIT_HELP[field.name]} (default: {getattr(defaults, field.name)})")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    import uvicorn

    from pasero_hf.serving import create_app, load_workers

    try:
        limits = ServerLimits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ServerLimits)})
        options = {"dtype": args.dtype} if args.dtype else {}
        if args.backend:
            options["backend"] = args.backend
        workers = load_workers(args.models, limits, trust_remote_code=args.trust_remote_code, **options)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"pasero-serve: error: {error}", file=sys.stderr)
        return 2
    app = create_app(workers, limits)
    logger.info("serving %s on http://%s:%d/", ", ".join(workers), args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, limit_concurrency=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
