"""The sample corpora are package data: an installed (non-editable) pasero-hf reads them without the checkout."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL_SKIPPED = {".git", ".venv", "build", "dist", "tests", "models", "runs", "outputs", "benchmarks", "spaces"}


def skipped(directory: str, names: list[str]) -> set[str]:
    """What the build does not need: the checkout's own outputs, environments and tests, and the temporary files of
    a corpus being decompressed by a test running in parallel (renamed away while the tree is copied)."""
    top = Path(directory) == REPO
    return {n for n in names if (top and n in TOP_LEVEL_SKIPPED) or n == "__pycache__" or n.endswith(".egg-info")
            or (n.startswith(".") and n.endswith(".tmp"))}


@pytest.mark.slow
def test_a_non_editable_install_reads_the_sample_corpora(tmp_path):
    source = tmp_path / "src"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPO, source, symlinks=True, ignore=skipped)
    target = tmp_path / "site-packages"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    samples = target / "pasero_hf" / "data" / "samples"
    assert samples.is_dir() and not samples.is_symlink()
    shutil.rmtree(source)  # nothing may reach back into a checkout
    code = (
        "import json, pasero_hf.data.sample_data as s\n"
        "bible = s.bible_en_es_dir()\n"
        "print(json.dumps({'module': s.__file__, 'bible': str(bible),\n"
        "    'train': len((bible / 'train.en').read_text(encoding='utf-8').splitlines()),\n"
        "    'pairs': sorted(p.name for p in s.iso_codes_dir().iterdir() if p.is_dir()),\n"
        "    'dialogue': (s.SAMPLE_DATA_DIR / 'dialogue' / 'train.jsonl').is_file()}))"
    )
    run = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{code}"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["module"].startswith(str(target))
    assert found["bible"].startswith(str(target)) and found["train"] > 1000
    assert found["pairs"] == ["en-ar", "en-de", "en-fr", "en-it", "en-ja", "en-ko", "en-ru", "en-zh"]
    assert found["dialogue"]


def test_the_checkout_reaches_the_samples_through_the_package(bible_dir):
    from pasero_hf.data import sample_data

    assert sample_data.SAMPLE_DATA_DIR.parent == Path(sample_data.__file__).resolve().parent
    assert bible_dir == sample_data.SAMPLE_DATA_DIR / "bible-en-es"
    assert (REPO / "recipes" / "data" / "bible-en-es" / "train.en").samefile(bible_dir / "train.en")
