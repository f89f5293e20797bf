from pathlib import Path

import pytest

from pasero_hf.tokenization import PaseroBPE, load_vocabulary


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="\n") as text_file:
        return text_file.read().split("\n")[:-1]


@pytest.fixture(scope="session")
def read_lines():
    """Lines of a text file without their line breaks (only '\\n' ends a line, as in the fixtures)."""
    return _read_lines


@pytest.fixture(scope="session")
def models_dir(fixtures_dir) -> Path:
    return fixtures_dir / "pasero-models"


@pytest.fixture(scope="session")
def edge_dir(fixtures_dir) -> Path:
    return fixtures_dir / "tokenization-edge"


@pytest.fixture(scope="session")
def load_bpe(models_dir):
    """Cached PaseroBPE per (model, with dictionary as vocabulary)."""
    cache = {}

    def load(model: str, with_vocabulary: bool = False) -> PaseroBPE:
        key = (model, with_vocabulary)
        if key not in cache:
            vocabulary = load_vocabulary(models_dir / model / "dict.txt") if with_vocabulary else None
            cache[key] = PaseroBPE.from_file(models_dir / model / "bpecodes", vocabulary=vocabulary)
        return cache[key]

    return load
