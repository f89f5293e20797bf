"""`pasero-serve`: Pasero's HTTP API, the Text Generation Inference protocol and OpenAI chat routes, with dynamic
batching, limits and a web playground (FastAPI + uvicorn). Decoding goes through `TextGenerator`."""

from pasero_hf.serving.app import create_app, model_info
from pasero_hf.serving.limits import ServerLimits
from pasero_hf.serving.metrics import Metrics
from pasero_hf.serving.worker import ModelWorker, load_workers, parse_model_spec

__all__ = ["Metrics", "ModelWorker", "ServerLimits", "create_app", "load_workers", "model_info", "parse_model_spec"]
