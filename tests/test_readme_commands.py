"""The README's training commands work on a fresh clone as written (with a tiny budget appended)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands(section: str) -> list[str]:
    """The commands of the first bash block after heading `section` (continuation lines joined, comments cut)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"^## {re.escape(section)}\n.*?```bash\n(.*?)```", text, re.S | re.M).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        command = line.split("#", 1)[0].strip()
        if command:
            commands.append(command)
    return commands


def runnable(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    if argv[:2] == ["accelerate", "launch"]:
        return [sys.executable, "-m", "accelerate.commands.launch", *argv[2:]]
    return argv


@pytest.mark.slow
def test_training_section_commands_run_as_written(tmp_path):
    commands = readme_commands("Training")
    prepare = next(c for c in commands if c.startswith("python recipes/demo.py"))
    launch = next(c for c in commands if "accelerate_configs/cpu.yaml" in c)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(runnable(prepare), cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    result = subprocess.run(runnable(launch) + ["--model-dir", str(tmp_path / "try"), "--max-steps", "1",
                                                "--valid-interval", "1", "--valid-max-lines", "2"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps: 1" in result.stdout
    assert (tmp_path / "try" / "model_last" / "model.safetensors").is_file()
    help_command = next(c for c in commands if c.endswith("--help"))
    assert "--lang-temperature" in subprocess.run(runnable(help_command), cwd=REPO, env=env, check=True,
                                                  capture_output=True, text=True).stdout


@pytest.mark.slow
def test_tokenization_section_commands_run_as_written(tmp_path):
    """The bash block of the Tokenization section, run as is by bash in a copy of the repository's files it uses."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Tokenization.*?```bash\n(.*?)```", text, re.S | re.M).group(1)
    work = tmp_path / "clone"
    (work / "recipes").mkdir(parents=True)
    for name in ("demo.py", "data"):
        source = REPO / "recipes" / name
        target = work / "recipes" / name
        if source.is_dir():
            shutil.copytree(source / "bible-en-es", target / "bible-en-es")
        else:
            target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-e", "-c", block], cwd=work, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = work / "models" / "bpe"
    test_en = (work / "recipes" / "data" / "bible-en-es" / "test.en").read_text(encoding="utf-8").splitlines()
    assert (out / "test.detok.en").read_text(encoding="utf-8").splitlines() == test_en
    assert (out / "dict.en.txt").stat().st_size > 0 and (out / "dict.es.txt").is_file()
