"""The LM recipe under DDP through the same Accelerate configs as MT: 2 processes train as 1 process with the same
effective batch (the MT check of tests/training/test_distributed.py, on a causal LM with LoRA)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.lm.conftest import lm_options
from tests.training.test_distributed import HERE as TRAINING_TESTS
from tests.training.test_distributed import accelerate_launch, assert_probes_match

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_lm_ddp_two_processes_match_one_process_with_the_same_effective_batch(llama_dir, prompt_data, tmp_path):
    """virtual_dp_size 2: one process accumulates global batches 0 and 1, two processes take one each: different
    prompts on each rank, identical parameters after every step, and the losses and LoRA weights of one process."""
    runs = {}
    for name, accelerate_config in (("one", "cpu.yaml"), ("two", "cpu_ddp.yaml")):
        out = tmp_path / name
        out.mkdir()
        options = lm_options(llama_dir, prompt_data, out / "model", "--task", "lm", "-s", "en", "-t", "es",
                             "--batch-size", "64", "--virtual-dp-size", "2", "--max-steps", "3",
                             "--valid-interval", "3", "--log-interval", "1", "--lora-rank", "4",
                             "--save-trainable-only")
        accelerate_launch(accelerate_config, TRAINING_TESTS / "ddp_probe.py", str(out), *options)
        runs[name] = out

    assert_probes_match(runs["one"], runs["two"], steps=3)
    adapters = {name: load_file(str(run / "model" / "model_last" / "adapter_model.safetensors"))
                for name, run in runs.items()}
    assert adapters["one"].keys() == adapters["two"].keys() and adapters["one"]
    for key, weight in adapters["one"].items():
        assert torch.allclose(weight, adapters["two"][key], atol=1e-5), key
