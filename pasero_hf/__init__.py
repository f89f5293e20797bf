"""pasero-hf: Pasero's machine-translation essentials as a first-class citizen of the Hugging Face ecosystem.

Importing the package registers its configurations, models, tokenizers and pipelines with the `transformers`
Auto classes (see `pasero_hf.registration`), so that `AutoModelForSeq2SeqLM.from_pretrained(path)` works.
"""

import os
import sys

__version__ = "0.1.0"

# The streaming tokenization CLIs must start in milliseconds: they need neither torch nor the Auto classes,
# and registering those imports both (about 2 s here).
_LIGHT_CLIS = {"pasero-tokenize", "pasero-detokenize", "pasero-build-dict", "pasero-build-tokenizer"}


def _started_as_light_cli() -> bool:
    return bool(sys.argv) and os.path.basename(sys.argv[0]) in _LIGHT_CLIS


if not _started_as_light_cli():
    from pasero_hf.registration import register_all

    register_all()
