"""Where a model lives: the one place that turns what a user typed (a model directory, ...) into a local directory
that `from_pretrained` loads.

Every entry point that accepts a model (`TextGenerator.from_pretrained`, `pasero-decode`, ...) goes through
`resolve_model_dir`, so a new way of naming a model (a training run's directory, a Hub repo id) is added here once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# `user/name` or `name` as the Hub spells repo ids (letters, digits, `-`, `_`, `.`; no `--`/`..`; <= 96 chars)
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def resolve_model_dir(
    name_or_path: str | os.PathLike, *, checkpoint: str | None = None, revision: str | None = None
) -> Path:
    """Return the local directory holding the `save_pretrained` model named by `name_or_path`.

    `name_or_path` is a local directory or, when no such directory exists, a Hub repo id (`user/name`, at
    `revision`: a branch, tag or commit), downloaded into the Hugging Face cache (`HF_HOME`; `HF_HUB_OFFLINE=1`
    uses the cache only).

    Raises FileNotFoundError naming what was looked for when there is no such model.
    """
    model_dir = Path(name_or_path)
    # -- a Hub repo id: not a local directory, spelled like a repo id -------------------------------------------------
    if not model_dir.exists() and looks_like_repo_id(str(name_or_path)):
        model_dir = download_from_hub(str(name_or_path), revision=revision)
    elif revision is not None:
        raise FileNotFoundError(f"revision={revision!r} needs a Hub repo id, but {name_or_path} is a local path")
    # -- a local directory ------------------------------------------------------------------------------------------
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
