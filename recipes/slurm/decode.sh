#!/bin/bash
# `sbatch [SBATCH OPTIONS] recipes/slurm/decode.sh MODEL_DIR [pasero-decode options]`: decode on an allocated node
# (its first GPU when it has one), e.g.
#   sbatch --gpus 1 recipes/slurm/decode.sh models/TED/de-en -i test.de -r test.en -o test.out.en
# `scancel -b -s INT JOB` stops it; resubmitting with --continue resumes the output file.
#SBATCH --job-name=pasero-decode
#SBATCH --output=slurm-%j.out
set -uo pipefail
PYTHON=${PYTHON:-python3}
[ $# -gt 0 ] || { echo "usage: sbatch recipes/slurm/decode.sh MODEL_DIR [pasero-decode options]" >&2; exit 2; }
exec "$PYTHON" -m pasero_hf.cli.decode "$@"
