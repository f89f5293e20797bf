"""The sample corpora bundled with pasero-hf (package data `pasero_hf/data/samples/`, which is `recipes/data/` in a
checkout): the Bible en-es corpus (compressed, decompressed on first use), the iso-codes phrase corpora and a few
dialogues. A non-editable install carries them too."""

import lzma
import os
import shutil
from pathlib import Path

SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "samples"


def _cache_dir(directory: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pasero_hf" / "sample_data" / directory.name


def decompress_corpus(directory: Path) -> Path:
    """Decompress every `*.xz` file in `directory`, once; returns the directory holding the decompressed files.

    That is `directory` itself, or, where it cannot be written (an installed package in a read-only location), a
    copy under the user's cache directory (`$XDG_CACHE_HOME/pasero_hf/sample_data/NAME`). Writes to a temporary name
    then renames, so an interrupted run never leaves a truncated corpus behind.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"sample data directory not found: {directory}")
    target_dir = directory if os.access(directory, os.W_OK) else _cache_dir(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted(directory.iterdir()):
        in_place = target_dir == directory
        if not source.is_file() or (in_place and source.suffix != ".xz"):  # a cached copy takes the LICENSE too
            continue
        target = target_dir / (source.stem if source.suffix == ".xz" else source.name)
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with (lzma.open(source, "rb") if source.suffix == ".xz" else open(source, "rb")) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    return target_dir


def bible_en_es_dir() -> Path:
    """Directory with the Bible en-es corpus: `{train,valid,test}.{en,es,ref}`."""
    return decompress_corpus(SAMPLE_DATA_DIR / "bible-en-es")


def iso_codes_dir() -> Path:
    """Directory with the iso-codes phrase corpora: `en-XX/train.{en,XX}`."""
    return SAMPLE_DATA_DIR / "iso-codes"
