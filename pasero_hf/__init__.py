"""pasero-hf: Pasero's machine-translation essentials as a first-class citizen of the Hugging Face ecosystem.

Importing the package registers its configurations, models, tokenizers and pipelines with the `transformers`
Auto classes (see `pasero_hf.registration`), so that `AutoModelForSeq2SeqLM.from_pretrained(path)` works. The
registration happens when the Auto classes are first imported: `import pasero_hf.tokenization` alone imports neither
torch nor transformers.
"""

__version__ = "0.1.0"

from pasero_hf.registration import register_when_auto_classes_load  # noqa: E402

register_when_auto_classes_load()
