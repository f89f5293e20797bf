"""Checkpoint averaging: the training option average_checkpoints and pasero-average-checkpoints write a
save_pretrained directory whose weights are the element-wise mean of the last checkpoints, loadable everywhere."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

import pasero_hf.models  # noqa: F401  (registers the Auto classes)
from pasero_hf.cli.average_checkpoints import main as average_main
from pasero_hf.cli.train import main as train_main
from pasero_hf.generation import TextGenerator


def mean_of(*directories):
    states = [load_file(str(d / "model.safetensors")) for d in directories]
    return {k: sum(s[k].double() for s in states) / len(states) for k in states[0]}


@pytest.mark.slow
def test_average_checkpoints_option_and_command(write_config, tmp_path, capsys):
    config = write_config(valid_interval=2, save_interval=2, keep_last=3, average_checkpoints=True)
    assert train_main(["-c", str(config)]) == 0
    run = tmp_path / "model"
    steps = [run / f"checkpoint-{n}" for n in (2, 4, 6)]
    assert all(d.is_dir() for d in steps)
    average = load_file(str(run / "model_average" / "model.safetensors"))
    expected = mean_of(*steps)
    assert set(average) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(average[key].double(), value, rtol=0, atol=1e-6)
    assert not torch.equal(average["model.encoder.layers.0.fc1.weight"],
                           load_file(str(steps[-1] / "model.safetensors"))["model.encoder.layers.0.fc1.weight"])

    out = tmp_path / "avg2"
    assert average_main([str(run), "--last", "2", "-o", str(out)]) == 0
    expected = mean_of(*steps[1:])
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    state = model.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(state[key].double(), value, rtol=0, atol=1e-6)
    outputs = TextGenerator.from_pretrained(out, beam_size=1, max_output_len=5).decode("In the beginning")
    assert isinstance(outputs[0][0]["detok"], str)
    assert not list(tmp_path.glob(".avg2.*"))  # staging directory renamed

    with pytest.raises(SystemExit, match="2"):
        average_main([str(run), "--last", "5", "-o", str(tmp_path / "avg5")])
    assert "5 checkpoints asked, 3 complete checkpoint(s) found" in capsys.readouterr().err
    assert not (tmp_path / "avg5").exists()
