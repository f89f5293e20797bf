"""Where a model lives: the one place that turns what a user typed (a model directory, a training run's directory,
...) into a local directory that `from_pretrained` loads.

Every entry point that accepts a model (`TextGenerator.from_pretrained`, `pasero-decode`, training's `--ckpt`...)
goes through `resolve_model_dir`, so a new way of naming a model (a Hub repo id) is added here once.
"""

from __future__ import annotations

import os
from pathlib import Path

# The models of a training run's directory, in the order Pasero picks them (it also had a 'model_latest')
RUN_MODELS = ("model_best", "model_last")


def _is_model(directory: Path) -> bool:
    return (directory / "config.json").is_file()


def _models_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and _is_model(p))


def _local_model_dir(model_dir: Path, checkpoint: str | None) -> Path:
    """A model directory itself, or the model a training run wrote into it (`checkpoint`, else model_best, else
    model_last)."""
    if checkpoint is not None:
        candidate = model_dir / checkpoint
        if _is_model(candidate):
            return candidate
        available = ", ".join(_models_in(model_dir)) or "none"
        raise FileNotFoundError(f"{model_dir}: no model {checkpoint!r} (no {candidate / 'config.json'}); models in "
                                f"this directory: {available}")
    if _is_model(model_dir):
        return model_dir
    for name in RUN_MODELS:
        if _is_model(model_dir / name):
            return model_dir / name
    if (model_dir / "inference.yaml").is_file() and any(model_dir.glob("*.bin")):
        raise FileNotFoundError(
            f"{model_dir} has no config.json: it looks like an original Pasero model, convert it first "
            f"with `pasero-convert {model_dir} OUTPUT_DIR`"
        )
    raise FileNotFoundError(
        f"{model_dir} has no config.json, nor has its {' or '.join(RUN_MODELS)} (the models a training run writes): "
        "no model found; checkpoint=NAME (--ckpt NAME) picks another subdirectory"
    )


def resolve_model_dir(
    name_or_path: str | os.PathLike, *, checkpoint: str | None = None, revision: str | None = None
) -> Path:
    """Return the local directory holding the `save_pretrained` model named by `name_or_path`.

    `name_or_path` is a model directory or a training run's directory (MODEL_DIR), where `model_best`, then
    `model_last` is picked, as in Pasero; `checkpoint` names another model in it (`checkpoint-2000`, `model_last`).

    Raises FileNotFoundError naming what was looked for when there is no such model.
    """
    model_dir = Path(name_or_path)
    if model_dir.is_dir():
        return _local_model_dir(model_dir, checkpoint)
    raise FileNotFoundError(f"model directory not found: {model_dir}")
