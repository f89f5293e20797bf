"""Checkpoint directories: which ones are complete, atomic replacement of `model_best`/`model_last`, rotation.

A checkpoint is `MODEL_DIR/checkpoint-STEP` as written by the Hugging Face Trainer (model and tokenizer as
`save_pretrained` files, optimizer, scheduler, RNG and trainer state) plus our `data_state.json` and, written
last, `checkpoint_complete.json`. A directory without that marker is the remains of an interrupted save: it is
never resumed from.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.tokenization.file_utils import write_text_atomically

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
DATA_STATE = "data_state.json"
CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")


def read_weights(path: Path, pattern: str = "*.safetensors") -> dict[str, Any]:
    """The tensors of weights file `path`, or of every file matching `pattern` in directory `path` ({} when none
    matches). `.bin` files load with `weights_only=True`."""
    from transformers.modeling_utils import load_state_dict

    files = sorted(path.glob(pattern)) if path.is_dir() else [path]
    state: dict[str, Any] = {}
    for file in files:
        state.update(load_state_dict(str(file)))
    return state


def check_loaded(result, ckpt: Path, option: str, allowed_missing: set[str]) -> None:
    """Fail when `load_state_dict(strict=False)`'s `result` has unexpected keys or missing keys outside
    `allowed_missing`."""
    missing = [key for key in result.missing_keys if key not in allowed_missing]
    if missing or result.unexpected_keys:
        raise ConfigError(f"{option}: {ckpt} does not match the model: missing {missing[:5]}, unexpected "
                          f"{result.unexpected_keys[:5]}")


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_PATTERN.fullmatch(path.name)
    return int(match.group(1)) if match else None


def complete_checkpoints(model_dir: Path) -> list[Path]:
    """Complete `checkpoint-N` directories of `model_dir`, oldest first."""
    if not model_dir.is_dir():
        return []
    found = [p for p in model_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None
             and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(model_dir: Path) -> Path | None:
    checkpoints = complete_checkpoints(model_dir)
    return checkpoints[-1] if checkpoints else None


def remove_incomplete_checkpoints(model_dir: Path) -> list[Path]:
    """Delete the leftovers of interrupted saves (checkpoint directories without the marker); returns them."""
    if not model_dir.is_dir():
        return []
    removed = []
    for path in model_dir.iterdir():
        if path.is_dir() and checkpoint_step(path) is not None and not (path / COMPLETE_MARKER).is_file():
            logger.warning("removing incomplete checkpoint %s (interrupted save)", path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def mark_complete(checkpoint_dir: Path, step: int) -> None:
    write_json_atomically(checkpoint_dir / COMPLETE_MARKER, {"step": step})


def rotate_checkpoints(model_dir: Path, keep_last: int, keep_interval: int | None = None) -> None:
    """Keep the `keep_last` most recent complete checkpoints, and those of every `keep_interval`-th step."""
    for path in complete_checkpoints(model_dir)[:-keep_last]:
        if keep_interval and checkpoint_step(path) % keep_interval == 0:
            continue
        shutil.rmtree(path, ignore_errors=True)


def write_json_atomically(path: Path, content: Any) -> None:
    write_text_atomically(path, json.dumps(content, indent=1))


def log_state_file(rank: int) -> str:
    return f"log_state_{rank}.json"


def read_log_state(checkpoint_dir: Path, rank: int) -> dict | None:
    path = checkpoint_dir / log_state_file(rank)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_data_state(checkpoint_dir: Path) -> dict | None:
    path = checkpoint_dir / DATA_STATE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def restore_data_position(train_stream, checkpoint_dir: Path) -> None:
    """The stream continues where the run of `checkpoint_dir` was (a warning when its corpora or seed differ)."""
    data_state = read_data_state(checkpoint_dir)
    if data_state is not None:
        try:
            train_stream.load_state_dict(data_state)
        except ValueError as error:
            logger.warning("not restoring the data position of %s: %s", checkpoint_dir, error)
    logger.info("resuming from %s", checkpoint_dir)
