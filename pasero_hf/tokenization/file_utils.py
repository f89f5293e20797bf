"""File helpers shared by the tokenization modules (standard library only)."""

import os
from collections.abc import Iterable


def write_lines_atomically(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write `lines` (each ending with a newline) to `path` via a temporary file, so readers never see half a file."""
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp_path = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp_path, "w", encoding="utf-8", newline="\n") as out_file:
            out_file.writelines(lines)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
