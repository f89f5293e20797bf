"""Train a translation model: `accelerate launch recipes/train_mt.py -c CONFIG.yaml [--option value ...]`.

Every option of the YAML file can be overridden on the command line (`--lr 1e-4`, `--model-dir DIR`, `-s en -t es`);
`--help` lists them. Rerunning the same command resumes from the last checkpoint unless `--reset` is given.
"""

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
    if result.is_main_process:
        print(f"best model: {result.best_dir}\nlast model: {result.last_dir}\nsteps: {result.global_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
