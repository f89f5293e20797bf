"""Where a model lives: the one place that turns what a user typed (a model directory, ...) into a local directory
that `from_pretrained` loads.

Every entry point that accepts a model (`TextGenerator.from_pretrained`, `pasero-decode`, ...) goes through
`resolve_model_dir`, so a new way of naming a model (a training run's directory, a Hub repo id) is added here once.
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_model_dir(
    name_or_path: str | os.PathLike, *, checkpoint: str | None = None, revision: str | None = None
) -> Path:
    """Return the local directory holding the `save_pretrained` model named by `name_or_path`.

    Raises FileNotFoundError naming what was looked for when there is no such model.
    """
    model_dir = Path(name_or_path)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    if not (model_dir / "config.json").is_file():
        if (model_dir / "inference.yaml").is_file():
            raise FileNotFoundError(
                f"{model_dir} has no config.json: it looks like an original Pasero model, convert it first "
                f"with `pasero-convert {model_dir} OUTPUT_DIR`"
            )
        raise FileNotFoundError(f"{model_dir} has no config.json: not a Hugging Face model directory")
    return model_dir
