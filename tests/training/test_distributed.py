"""Multi-process training on CPU: 2-process DDP through accelerate (gloo), plus CPU emulations of tensor
parallelism and FSDP2 with plain torch.distributed (stock accelerate runs neither on CPU)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.distributed


def launch(command: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    """Runs a launcher in its own process group; on timeout the whole group is killed, so worker processes of a
    hung collective do not outlive the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{command[2]} timed out after {timeout} s:\n{stderr[-4000:]}")
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def accelerate_launch(config_file: str, script: Path, *args: str) -> subprocess.CompletedProcess:
    return launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(REPO / "accelerate_configs" / config_file), "--main_process_port", "0", str(script), *args])


def assert_probes_match(one_dir: Path, two_dir: Path, steps: int) -> None:
    """ddp_probe.py records: 1 process accumulating 2 micro-batches = 2 ranks taking one each (different data per
    rank, the same parameters on both after every step, the same losses)."""
    one = json.loads((one_dir / "probe.rank0.json").read_text())
    ranks = [json.loads((two_dir / f"probe.rank{r}.json").read_text()) for r in (0, 1)]
    assert one["world_size"] == 1 and one["gradient_accumulation_steps"] == 2
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["gradient_accumulation_steps"] == 1

    for step in range(steps):
        rank_batches = [r["batches"][step][0] for r in ranks]
        assert rank_batches[0] != rank_batches[1]                  # different data on each rank
        assert rank_batches == one["batches"][step]                 # = the micro-batches of the 1-process step
        assert ranks[0]["checksums"][step] == ranks[1]["checksums"][step]  # identical parameters
    assert ranks[0]["losses"] == pytest.approx(one["losses"], rel=1e-5)


def test_ddp_two_processes_match_one_process_with_the_same_effective_batch(write_config, tmp_path):
    """virtual_dp_size 2: one process accumulates global batches 0 and 1, two processes take one each. Both see the
    same data per step, so losses and weights must match; the two ranks train on different data with identical
    parameters after every step, and the loss is not multiplied by the world size."""
    config = write_config(virtual_dp_size=2, max_steps=3, valid_interval=3, log_interval=1)
    runs = {}
    for name, accelerate_config in (("one", "cpu.yaml"), ("two", "cpu_ddp.yaml")):
        out = tmp_path / name
        out.mkdir()
        accelerate_launch(accelerate_config, HERE / "ddp_probe.py", str(out), "-c", str(config),
                          "--model-dir", str(out / "model"))
        runs[name] = out

    assert_probes_match(runs["one"], runs["two"], steps=3)
    last_two = load_file(str(runs["two"] / "model" / "model_last" / "model.safetensors"))
    last_one = load_file(str(runs["one"] / "model" / "model_last" / "model.safetensors"))
    for key in last_one:
        assert torch.allclose(last_one[key], last_two[key], atol=1e-5), key


def tiny_pasero(tmp_path: Path) -> tuple[Path, dict]:
    """A saved tiny Pasero model (no dropout) and a batch for it."""
    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

    torch.manual_seed(0)
    config = PaseroConfig(vocab_size=48, embed_dim=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, dropout=0.0)
    model = PaseroForConditionalGeneration(config)
    model_dir = tmp_path / "tiny-pasero"
    model.save_pretrained(model_dir)
    labels = torch.randint(4, 48, (4, 6))
    labels[1, 4:] = -100
    labels[:, -1] = torch.where(labels[:, -1] == -100, labels[:, -1], torch.tensor(2))
    decoder_input_ids = torch.cat([torch.full((4, 1), 2), labels[:, :-1].clamp(min=1)], dim=1)
    input_ids = torch.randint(4, 48, (4, 7))
    input_ids[:, -1] = 2
    attention_mask = torch.ones_like(input_ids)
    input_ids[2, 5:], attention_mask[2, 5:] = 1, 0
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
              "decoder_input_ids": decoder_input_ids}
    torch.save(inputs, tmp_path / "inputs.pt")
    return model_dir, inputs


def torchrun(script: Path, *args: str) -> None:
    launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            str(script), *args])


def run_parallel_workers(model_dir: Path, inputs: dict, out_dir: Path, plan: dict | None = None) -> Path:
    """parallel_worker.py (fsdp_worker.py, then tp_worker.py with `plan`, default: the model's own) on `model_dir` and
    the batch `inputs` (saved as out_dir/inputs.pt), in one torchrun launch; their results are in `out_dir`."""
    plan_args = []
    if plan is not None:
        (out_dir / "plan.json").write_text(json.dumps(plan))
        plan_args = [str(out_dir / "plan.json")]
    torchrun(HERE / "parallel_worker.py", str(model_dir), str(out_dir / "inputs.pt"), str(out_dir), *plan_args)
    return out_dir


@pytest.fixture(scope="module")
def tiny_pasero_parallel(tmp_path_factory) -> tuple[Path, dict, Path]:
    """A tiny Pasero model, its batch and the directory of the TP and FSDP workers' results on them."""
    out_dir = tmp_path_factory.mktemp("parallel")
    model_dir, inputs = tiny_pasero(out_dir)
    return model_dir, inputs, run_parallel_workers(model_dir, inputs, out_dir)


def test_tensor_parallel_cpu_emulation_matches_single_process(tiny_pasero_parallel):
    """from_pretrained(tp_plan="auto") under torchrun (gloo, CPU): logits, gradients, generate() = 1 process."""
    check_tensor_parallel(*tiny_pasero_parallel)


def check_tensor_parallel(model_dir: Path, inputs: dict, out_dir: Path) -> None:
    """tp_worker.py's results on `model_dir` and the batch `inputs` (run_parallel_workers) = one process."""
    from transformers import AutoModelForSeq2SeqLM

    import pasero_hf.models  # noqa: F401  (registers the Pasero classes with the Auto classes)
    from pasero_hf.training.loss import label_smoothed_nll_sum

    result = torch.load(out_dir / "tp.pt", weights_only=True)
    assert any("q_proj" in name for name in result["sharded"])  # the plan really sharded the attention

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   decoder_input_ids=inputs["decoder_input_ids"]).logits
    loss, _, count = label_smoothed_nll_sum(logits, inputs["labels"], 0.1)
    (loss / count).backward()
    assert torch.allclose(result["logits"], logits.detach(), atol=1e-5)
    for name, param in model.named_parameters():
        assert torch.allclose(result["grads"][name], param.grad, atol=1e-5), name
    model.eval()
    generated = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                               max_new_tokens=8, num_beams=1, do_sample=False)
    assert torch.equal(result["generated"], generated)


def test_fsdp2_cpu_emulation_step_and_sharded_checkpoint(tiny_pasero_parallel):
    """fully_shard (gloo, CPU): a sharded step on half a batch per rank = the unsharded step on the whole batch;
    a sharded checkpoint reloads exactly."""
    check_fsdp_step(*tiny_pasero_parallel)


def check_fsdp_step(model_dir: Path, inputs: dict, out_dir: Path) -> None:
    """fsdp_worker.py's results on `model_dir` and the batch `inputs` (run_parallel_workers) = one unsharded step."""
    from transformers import AutoModelForSeq2SeqLM

    import pasero_hf.models  # noqa: F401  (registers the Pasero classes with the Auto classes)
    from pasero_hf.training.loss import label_smoothed_nll_sum

    reload = torch.load(out_dir / "reload.pt", weights_only=True)
    assert reload == {"exact": True, "sharded": True}

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)  # Adam would amplify float noise of ~0 gradients
    model.train()
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   decoder_input_ids=inputs["decoder_input_ids"]).logits
    loss, _, count = label_smoothed_nll_sum(logits, inputs["labels"], 0.1)
    (loss / count).backward()
    optimizer.step()
    stepped = torch.load(out_dir / "stepped.pt", weights_only=True)
    for name, param in model.named_parameters():
        assert torch.allclose(stepped[name], param.detach(), atol=1e-5), name
