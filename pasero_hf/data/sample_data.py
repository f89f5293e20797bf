"""The sample corpora bundled with the repository under `recipes/data/` (compressed; decompressed on first use)."""

import lzma
import os
import shutil
from pathlib import Path

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "recipes" / "data"


def decompress_corpus(directory: Path) -> Path:
    """Decompress every `*.xz` file in `directory` next to itself, once; returns `directory`.

    Writes to a temporary name then renames, so an interrupted run never leaves a truncated corpus behind.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"sample data directory not found: {directory}")
    for compressed in sorted(directory.glob("*.xz")):
        target = compressed.with_suffix("")
        if target.exists() and target.stat().st_mtime >= compressed.stat().st_mtime:
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with lzma.open(compressed, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    return directory


def bible_en_es_dir() -> Path:
    """Directory with the Bible en-es corpus: `{train,valid,test}.{en,es,ref}`."""
    return decompress_corpus(SAMPLE_DATA_DIR / "bible-en-es")


def iso_codes_dir() -> Path:
    """Directory with the iso-codes phrase corpora: `en-XX/train.{en,XX}`."""
    return SAMPLE_DATA_DIR / "iso-codes"
