"""Atomic file writing, the project's one mechanism for it (standard library only, so every layer can use it)."""

import contextlib
import os
from collections.abc import Iterable, Iterator


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
