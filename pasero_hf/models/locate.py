"""Where a model lives: the one place that turns what a user typed (a model directory, a training run's directory,
...) into a local directory that `from_pretrained` loads.

Every entry point that accepts a model (`TextGenerator.from_pretrained`, `pasero-decode`, training's `--ckpt`...)
goes through `resolve_model_dir`, so a new way of naming a model (a Hub repo id) is added here once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# `user/name` or `name` as the Hub spells repo ids (letters, digits, `-`, `_`, `.`; no `--`/`..`; <= 96 chars)
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")

# The models of a training run's directory, in the order Pasero picks them (it also had a 'model_latest')
RUN_MODELS = ("model_best", "model_last")
# Pasero bottleneck adapters saved alone: their tensors, and the json naming their base model
ADAPTERS_FILE = "adapters.safetensors"
ADAPTERS_INFO = "pasero_adapters.json"


def _is_model(directory: Path) -> bool:
    # an adapter directory (a LoRA or bottleneck-adapter run's model_best) is a model too: it names its base
    return any((directory / name).is_file() for name in ("config.json", "adapter_config.json", ADAPTERS_INFO))


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
    Otherwise, when no such local path exists, it is a Hub repo id (`user/name`, at `revision`: a branch, tag or
    commit), downloaded into the Hugging Face cache (`HF_HOME`; `HF_HUB_OFFLINE=1` uses the cache only).

    Raises FileNotFoundError naming what was looked for when there is no such model.
    """
    model_dir = Path(name_or_path)
    # -- a Hub repo id: not a local path, spelled like a repo id ------------------------------------------------------
    if not model_dir.exists() and looks_like_repo_id(str(name_or_path)):
        model_dir = download_from_hub(str(name_or_path), revision=revision)
    elif revision is not None:
        raise FileNotFoundError(f"revision={revision!r} needs a Hub repo id, but {name_or_path} is a local path")
    # -- a local directory: a model, or a training run's directory ---------------------------------------------------
    if model_dir.is_dir():
        return _local_model_dir(model_dir, checkpoint)
    raise FileNotFoundError(f"model directory not found: {model_dir}")


def looks_like_repo_id(name: str) -> bool:
    """Whether `name` is spelled like a Hub repo id (`user/name`); local-looking paths (`./x`, `/x`, `~`) are not."""
    return bool(REPO_ID.match(name)) and "--" not in name and ".." not in name and not name.startswith(".")


def download_from_hub(repo_id: str, *, revision: str | None = None) -> Path:
    """`snapshot_download` of a model repo, with errors that name the repo and revision.

    Raises FileNotFoundError: unknown repo, unknown revision, or no network (or offline mode) and nothing cached.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision or 'main'}"
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{at}: revision {revision!r} not found in Hub repo {repo_id}") from None
    except GatedRepoError:
        raise FileNotFoundError(f"{at}: the repo is gated; request access and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{repo_id}: neither a local directory nor a Hub model repo (or it is private: log in, or set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError:
        raise FileNotFoundError(
            f"{at}: the Hub cannot be reached (no network or HF_HUB_OFFLINE=1) and the model is not in the cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')})"
        ) from None
