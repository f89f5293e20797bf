"""Checkpoint averaging (fairseq's, Pasero's, Marian's): the element-wise mean of the weights of the last N
checkpoints of a training run, written as a `save_pretrained` directory that every loader takes.

    pasero-average-checkpoints models/de-en --last 5 -o models/de-en/model_average

The output holds the newest checkpoint's configuration and tokenizer files and the averaged `model.safetensors`; it
is written to a temporary directory and renamed, so an interrupted run leaves no half model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from pasero_hf.tokenization.file_utils import atomic_directory
from pasero_hf.training import checkpoints

# training state of a checkpoint: not part of the averaged model
_STATE_FILES = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "scaler.pt",
                checkpoints.COMPLETE_MARKER, checkpoints.DATA_STATE}


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    state = checkpoints.read_weights(directory)
    if not state:
        raise FileNotFoundError(f"{directory}: no .safetensors weights")
    return state


def last_checkpoints(model_dir: str | os.PathLike, last: int) -> list[Path]:
    """The `last` most recent complete checkpoint-STEP directories of a training run, oldest first."""
    if last < 1:
        raise ValueError(f"--last must be >= 1, got {last}")
    found = checkpoints.complete_checkpoints(Path(model_dir))
    if len(found) < last:
        raise ValueError(f"{model_dir}: {last} checkpoints asked, {len(found)} complete checkpoint(s) found "
                         f"({', '.join(p.name for p in found) or 'none'}); keep_last sets how many training keeps")
    return found[-last:]


def average_weights(directories: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean (computed in float64, stored in each tensor's dtype) of the weights of `directories`."""
    states = [_weights(directory) for directory in directories]
    keys = set(states[0])
    for directory, state in zip(directories[1:], states[1:]):
        if set(state) != keys:
            raise ValueError(f"{directory} and {directories[0]} hold different weights (e.g. "
                             f"{sorted(keys ^ set(state))[:3]}): cannot average them")
    averaged = {}
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            total = sum(state[key].double() for state in states)
            averaged[key] = (total / len(states)).to(tensor.dtype)
        else:
            averaged[key] = tensor.clone()
    return averaged


def average_checkpoints(model_dir: str | os.PathLike, last: int, output: str | os.PathLike) -> Path:
    """Average the last `last` checkpoints of training run `model_dir` into the model directory `output`."""
    directories = last_checkpoints(model_dir, last)
    averaged = average_weights(directories)
    output = Path(output)
    with atomic_directory(output) as staging:
        newest = directories[-1]
        for path in newest.iterdir():
            if path.is_file() and path.name not in _STATE_FILES and path.suffix != ".safetensors" \
                    and not path.name.startswith("rng_state"):
                shutil.copy2(path, staging / path.name)
        save_file({k: v.contiguous() for k, v in averaged.items()}, str(staging / "model.safetensors"),
                  metadata={"format": "pt", "averaged_checkpoints": ",".join(p.name for p in directories)})
    return output
