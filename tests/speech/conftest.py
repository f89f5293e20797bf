"""Speech fixtures: clips spoken by espeak-ng from the bundled sentences (several languages, rates and formats), a
tiny random Whisper built offline, and one short training run that learns the clips by heart (shared by the tests)."""

import csv
import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    from pasero_hf.data.speech_sample import make_speech_sample

    return make_speech_sample(tmp_path_factory.mktemp("speech-sample"))


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory, speech_dir) -> Path:
    from pasero_hf.models.whisper import save_tiny_random_whisper

    with open(speech_dir / "train.tsv", encoding="utf-8", newline="") as lines:
        texts = [row["text"] for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return save_tiny_random_whisper(tmp_path_factory.mktemp("whisper") / "tiny", texts)


@pytest.fixture(scope="session")
def trained_speech_run(tmp_path_factory, speech_dir, tiny_whisper_dir, repo_root):
    """The sample config (`task: st`) trained to step 20, then the same command rerun to step 40 (a resume):
    (run directory, first result, second result)."""
    from pasero_hf.training.config import load_training_config
    from pasero_hf.training.run import train

    model_dir = tmp_path_factory.mktemp("st-run") / "run"
    argv = ["-c", str(repo_root / "recipes/configs/speech-sample.yaml"), "--data-dir", str(speech_dir),
            "--model", str(tiny_whisper_dir), "--model-dir", str(model_dir), "--valid-interval", "20",
            "--log-interval", "10", "--warmup", "5"]
    first = train(load_training_config(argv + ["--max-steps", "20"]))
    second = train(load_training_config(argv + ["--max-steps", "40"]))
    return model_dir, first, second


@pytest.fixture(scope="session")
def sox():
    """Runs Debian's sox (installed by scripts/system-deps.sh)."""
    assert shutil.which("sox"), "sox is installed by `make test` (scripts/system-packages.txt)"

    def run(*args) -> None:
        subprocess.run(["sox", *map(str, args)], check=True, capture_output=True)

    return run
