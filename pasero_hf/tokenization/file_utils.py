"""Atomic file writing, the project's one mechanism for it (standard library only, so every layer can use it)."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds, removed when it fails,
    so that readers never see half a file. Missing parent directories are created."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp_path = os.path.join(directory, f".{name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_lines_atomically(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write `lines` (each ending with a newline) to `path` atomically."""
    with atomic_path(path) as tmp_path, open(tmp_path, "w", encoding="utf-8", newline="\n") as out_file:
        out_file.writelines(lines)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` (UTF-8) atomically."""
    with atomic_path(path) as tmp_path, open(tmp_path, "w", encoding="utf-8") as out_file:
        out_file.write(text)


def replace_directory(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the fully written `staging` directory to `final`, replacing it.

    Directories cannot be swapped in one rename: the old one is first moved aside to `final.old`, so a crash leaves
    either the old or the new directory under one of the two names; `recover_directory` puts the old one back.
    """
    final = Path(final)
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_directory(final: str | os.PathLike) -> None:
    """Undo a `replace_directory` interrupted between its two renames."""
    final = Path(final)
    old = final.with_name(final.name + ".old")
    if old.exists() and not final.exists():
        os.replace(old, final)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh staging directory beside `path` to write a whole directory into; it replaces `path` when the block
    succeeds (`replace_directory`) and is removed when it fails, so that no half-written directory is left."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield staging
        replace_directory(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
