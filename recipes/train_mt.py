"""Train a translation model: `accelerate launch recipes/train_mt.py -c CONFIG.yaml [--option value ...]`.

Every option of the YAML file can be overridden on the command line (`--lr 1e-4`, `--model-dir DIR`, `-s en -t es`);
`--help` lists them. Rerunning the same command resumes from the last checkpoint unless `--reset` is given.
With `push_to_hub: USER/NAME`, the main process pushes model_best and its model card to the Hub at the end.
"""

import os
import sys

from pasero_hf.training.config import ConfigError, load_training_config
from pasero_hf.training.run import train


def main(argv=None) -> int:
    try:
        config = load_training_config(sys.argv[1:] if argv is None else argv)
        result = train(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"best model: {result.best_dir}\nlast model: {result.last_dir}\nsteps: {result.global_step}")
    if config.run.push_to_hub and int(os.environ.get("RANK", "0")) == 0:
        return push_best_model(config.run.push_to_hub, result)
    return 0


def push_best_model(repo_id: str, result) -> int:
    """Push model_best with its card. The recipe pushes, not `train()`: sharing (pasero_hf.hub) is a layer above
    training, which must not import it."""
    from pasero_hf.hub.cards import describe_hardware
    from pasero_hf.hub.push import PushError, push_to_hub

    if result.best_dir is None:
        print(f"error: push_to_hub: no model_best in {result.model_dir} (no validation ran)", file=sys.stderr)
        return 1
    try:
        info = push_to_hub(result.best_dir, repo_id, exist_ok=True, hardware=describe_hardware(),
                           commit_message=f"Upload model_best (step {result.global_step}) with pasero-hf")
    except PushError as error:
        print(f"error: push_to_hub: {error}", file=sys.stderr)
        return 1
    print(f"pushed: {info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
