"""Train a translation model: `accelerate launch recipes/train_mt.py -c CONFIG.yaml [--option value ...]`.

Every option of the YAML file can be overridden on the command line (`--lr 1e-4`, `--model-dir DIR`, `-s en -t es`);
`--help` lists them; `--dry-run` checks the configuration and data and exits. Rerunning the same command resumes from
the last checkpoint unless `--reset` is given. `pasero-train` runs the same code (`pasero_hf.cli.train`).
"""

import sys

from pasero_hf.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
