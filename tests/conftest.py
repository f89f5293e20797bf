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
    # pytest-xdist hands out whole files (--dist loadfile) in the order of pytest_collection_modifyitems below, not
    # sorted by their number of tests (its default, which puts one-test files that run for minutes last)
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


HEAVY_MARKERS = ("slow", "distributed")


def pytest_collection_modifyitems(config, items):
    """Files with `slow` or `distributed` tests first, each file's tests in their order. `make test` hands whole
    files to its two workers (`--dist loadfile`) in this order: the longest files start first and the short ones fill
    in at the end, so that both workers finish together instead of one running a long file alone at the end."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    heavy = {name for name, tests in files.items()
             if any(test.get_closest_marker(marker) for test in tests for marker in HEAVY_MARKERS)}
    items[:] = [item for name in sorted(files, key=lambda name: name not in heavy) for item in files[name]]


# Debian's Chromium (scripts/system-packages.txt), driven by Playwright: its own browser download is unreachable here.
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling hosts that this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path):
    """A fresh headless Chromium page (Playwright, Debian's chromium); tests save screenshots as artifacts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at (screenshots): tests/artifacts/, ignored by git."""
    path = REPO_ROOT / "tests" / "artifacts"
    path.mkdir(exist_ok=True)
    return path
