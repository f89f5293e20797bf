"""Training run that records, per rank and step, the batches it trained on and a checksum of the parameters.

Launched by test_distributed.py: `accelerate launch --config_file CFG ddp_probe.py OUT_DIR -c CONFIG.yaml ...`.
Writes OUT_DIR/probe.rank{R}.json.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import prepare_trainer


class ParameterChecksums(TrainerCallback):
    def __init__(self, model, record):
        self.model = model
        self.record = record

    def on_step_end(self, args, state, control, **kwargs):
        with torch.no_grad():
            total = sum(float(p.double().sum()) + float(p.double().abs().sum()) for p in self.model.parameters())
        self.record["checksums"].append(total)


def main() -> None:
    out_dir = Path(sys.argv[1])
    trainer, _, resume = prepare_trainer(load_training_config(sys.argv[2:]))
    record = {"rank": trainer.args.process_index, "world_size": trainer.args.world_size,
              "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps, "batches": [], "checksums": []}
    fetch = trainer.get_batch_samples

    def recording_fetch(epoch_iterator, num_batches, device):
        batches, num_items = fetch(epoch_iterator, num_batches, device)
        record["batches"].append([hashlib.sha1(b["input_ids"].numpy().tobytes()).hexdigest() for b in batches])
        return batches, num_items

    trainer.get_batch_samples = recording_fetch
    trainer.add_callback(ParameterChecksums(trainer.model, record))
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_final_checkpoint()
    record["losses"] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    (out_dir / f"probe.rank{record['rank']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
