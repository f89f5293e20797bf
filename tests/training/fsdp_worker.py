"""One FSDP2 training step and a sharded checkpoint round trip on CPU (gloo): CPU emulation of fsdp.yaml, for a
Pasero model or a pretrained one (AutoModelForSeq2SeqLM, as `--model` loads it).

`run(MODEL_DIR, INPUTS.pt, OUT_DIR)` in each process of `torchrun --nproc-per-node 2` (through parallel_worker.py):
each rank trains on its half of the batch with the trainer's token normalisation; rank 0 writes the full parameters
after the step to OUT_DIR/stepped.pt and the result of the save/reload check to OUT_DIR/reload.pt.
"""

from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForSeq2SeqLM

import pasero_hf.models  # noqa: F401  (registers the Pasero classes with the Auto classes)
from pasero_hf.training.loss import label_smoothed_nll_sum


def sharded_model(model_dir: str) -> torch.nn.Module:
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=torch.float32)  # Pasero, or a pretrained M2M100
    for stack in (model.get_encoder(), model.get_decoder()):
        for layer in stack.layers:
            fully_shard(layer)
    fully_shard(model)
    return model


def run(model_dir: str, inputs_path: str, out_dir: Path) -> None:
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    model = sharded_model(model_dir)
    inputs = torch.load(inputs_path, weights_only=True)
    rows = slice(rank * len(inputs["labels"]) // world_size, (rank + 1) * len(inputs["labels"]) // world_size)
    mine = {key: value[rows] for key, value in inputs.items()}
    total_tokens = int((inputs["labels"] != -100).sum())

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)  # Adam would amplify float noise of ~0 gradients
    model.train()
    logits = model(input_ids=mine["input_ids"], attention_mask=mine["attention_mask"],
                   decoder_input_ids=mine["decoder_input_ids"]).logits
    loss, _, _ = label_smoothed_nll_sum(logits, mine["labels"], 0.1)
    # FSDP averages gradients over ranks, as DDP does: the trainer's normalisation (x world size / global tokens)
    (loss * world_size / total_tokens).backward()
    optimizer.step()
    full = {name: param.full_tensor().detach().clone() for name, param in model.named_parameters()}
    if rank == 0:
        torch.save(full, out_dir / "stepped.pt")

    checkpoint_dir = out_dir / "sharded-checkpoint"
    saved = {name: tensor.to_local().clone() for name, tensor in model.state_dict().items()}
    dcp.save(model.state_dict(), checkpoint_id=str(checkpoint_dir))
    reloaded_model = sharded_model(model_dir)  # fresh weights: the step is not in them
    state = reloaded_model.state_dict()
    dcp.load(state, checkpoint_id=str(checkpoint_dir))
    reloaded_model.load_state_dict(state)
    exact = all(torch.equal(saved[name], tensor.to_local()) for name, tensor in reloaded_model.state_dict().items())
    shards_differ = any(saved[name].shape != full_param.shape for name, full_param in full.items() if name in saved)
    flags = torch.tensor([float(exact), float(shards_differ)])
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    if rank == 0:
        torch.save({"exact": bool(flags[0]), "sharded": bool(flags[1])}, out_dir / "reload.pt")
    dist.barrier()
