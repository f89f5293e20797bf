"""Both CPU emulations of multi-process training in one `torchrun` launch (starting the processes and loading torch
and transformers is most of a launch's time): fsdp_worker.py (a sharded step and a sharded checkpoint round trip),
then tp_worker.py (tensor-parallel forward, backward and generate()), in the same gloo process group.

`torchrun --nproc-per-node 2 parallel_worker.py MODEL_DIR INPUTS.pt OUT_DIR [PLAN.json]`: writes OUT_DIR/stepped.pt
and OUT_DIR/reload.pt (fsdp_worker.py), OUT_DIR/tp.pt (tp_worker.py, with the tensor-parallel plan of PLAN.json).
"""

import sys
from pathlib import Path

import fsdp_worker  # the script's directory is on sys.path
import torch.distributed as dist
import tp_worker


def main() -> None:
    model_dir, inputs_path, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    fsdp_worker.run(model_dir, inputs_path, out_dir)
    tp_worker.run(model_dir, inputs_path, str(out_dir / "tp.pt"), sys.argv[4] if len(sys.argv) > 4 else None)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
