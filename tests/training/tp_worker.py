"""Tensor-parallel forward, backward and generate() of a saved tiny Pasero model (CPU emulation with gloo).

`run(MODEL_DIR, INPUTS.pt, OUT.pt, PLAN.json or None)` in each process of `torchrun --nproc-per-node 2` (through
parallel_worker.py): from_pretrained(..., tp_plan="auto") shards the model with PaseroConfig.base_model_tp_plan (or
with the plan of PLAN.json); rank 0 writes logits, full gradients and generated ids.
"""

import json
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoModelForSeq2SeqLM

import pasero_hf.models  # noqa: F401  (registers the Pasero classes with the Auto classes)
from pasero_hf.training.loss import label_smoothed_nll_sum


def run(model_dir: str, inputs_path: str, out_path: str, plan_path: str | None = None) -> None:
    # a model whose config has no base_model_tp_plan (M2M100) gets an explicit plan: PLAN.json
    plan = json.loads(Path(plan_path).read_text()) if plan_path else "auto"
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, tp_plan=plan)
    inputs = torch.load(inputs_path, weights_only=True)
    model.train()
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   decoder_input_ids=inputs["decoder_input_ids"]).logits
    loss, _, count = label_smoothed_nll_sum(logits, inputs["labels"], 0.1)
    (loss / count).backward()
    grads = {}
    for name, param in model.named_parameters():
        grad = param.grad
        grads[name] = grad.full_tensor() if hasattr(grad, "full_tensor") else grad
    sharded = [name for name, param in model.named_parameters() if hasattr(param, "placements")
               and any(p.is_shard() for p in param.placements)]
    model.eval()
    with torch.no_grad():
        generated = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                   max_new_tokens=8, num_beams=1, do_sample=False)
    logits = logits.full_tensor() if hasattr(logits, "full_tensor") else logits  # a collective: every rank
    if dist.get_rank() == 0:
        torch.save({"logits": logits.detach(), "grads": grads, "generated": generated, "sharded": sharded}, out_path)
    dist.barrier()
