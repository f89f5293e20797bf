"""A training run's directory is a model name: TextGenerator, pasero-decode and training's --ckpt pick model_best,
then model_last (Pasero's order), or the model named by checkpoint=/--ckpt; a directory with no model says what was
looked for."""

import shutil

import pytest

from pasero_hf.cli.decode import main as decode_main
from pasero_hf.generation import TextGenerator
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.training.preflight import initial_checkpoint

SOURCE = "And God said, Let there be light."


@pytest.fixture
def run_dir(pasero_tiny_dir, tmp_path):
    """MODEL_DIR as training leaves it: model_last and checkpoint-4 (the tiny model), training.yaml, train.log."""
    run = tmp_path / "models" / "en-es"
    shutil.copytree(pasero_tiny_dir, run / "model_last")
    shutil.copytree(pasero_tiny_dir, run / "checkpoint-4")
    (run / "training.yaml").write_text("lr: 0.001\n", encoding="utf-8")
    (run / "train.log").write_text("", encoding="utf-8")
    return run


def test_model_best_then_model_last(run_dir):
    assert resolve_model_dir(run_dir) == run_dir / "model_last"
    shutil.copytree(run_dir / "model_last", run_dir / "model_best")
    assert resolve_model_dir(run_dir) == run_dir / "model_best"
    assert resolve_model_dir(run_dir, checkpoint="checkpoint-4") == run_dir / "checkpoint-4"
    assert resolve_model_dir(run_dir / "model_last") == run_dir / "model_last"  # a model directory is itself


def test_a_directory_without_model_names_what_was_looked_for(run_dir, tmp_path):
    shutil.rmtree(run_dir / "model_last")
    with pytest.raises(FileNotFoundError, match=r"has no config.json, nor has its model_best or model_last"):
        resolve_model_dir(run_dir)
    with pytest.raises(FileNotFoundError, match=r"no model 'model_9'.*models in this directory: checkpoint-4"):
        resolve_model_dir(run_dir, checkpoint="model_9")
    with pytest.raises(Exception, match=r"ckpt: .*has no config.json"):
        initial_checkpoint(str(run_dir))


def test_text_generator_and_pasero_decode_take_the_run_directory(run_dir, pasero_tiny_dir, tmp_path, capsys):
    expected = TextGenerator.from_pretrained(pasero_tiny_dir).decode(SOURCE, beam_size=1)[0][0]["detok"]
    generator = TextGenerator.from_pretrained(run_dir, beam_size=1)
    assert generator.decode(SOURCE)[0][0]["detok"] == expected
    source = tmp_path / "test.en"
    source.write_text(SOURCE + "\n", encoding="utf-8")
    for extra in ([], ["--ckpt", "checkpoint-4"]):
        output = tmp_path / f"out{len(extra)}.es"
        assert decode_main([str(run_dir), *extra, "-i", str(source), "-o", str(output), "-t", "es",
                            "--beam-size", "1"]) == 0
        assert output.read_text(encoding="utf-8").strip() == expected
    with pytest.raises(SystemExit):
        decode_main([str(run_dir), "--ckpt", "model_9", "-i", str(source), "-t", "es"])
    assert "no model 'model_9'" in capsys.readouterr().err


def test_training_ckpt_takes_a_run_directory(run_dir):
    assert initial_checkpoint(str(run_dir)) == run_dir / "model_last"
