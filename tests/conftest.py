import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bible_dir() -> Path:
    """Decompressed bundled Bible en-es corpus (train/valid/test .en/.es)."""
    from pasero_hf.data.sample_data import bible_en_es_dir

    return bible_en_es_dir()


def pytest_configure(config):
    # Tests run on 2 cores; more torch threads than cores makes everything slower.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
