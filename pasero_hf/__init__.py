"""pasero-hf: Pasero's machine-translation essentials as a first-class citizen of the Hugging Face ecosystem.

`import pasero_hf` (and `import pasero_hf.tokenization`) imports neither torch nor transformers: the tokenization
commands start in milliseconds. The `transformers` Auto classes learn our model types, tokenizer and "translation"
pipeline (`pasero_hf.registration`) when `pasero_hf.models` is imported, which every pasero-hf entry point does
(`TextGenerator`, the commands, training, serving), or with `pasero_hf.register()`::

    import pasero_hf.models  # registers AutoConfig/AutoModel/AutoModelForSeq2SeqLM/AutoTokenizer and the pipeline
    from transformers import AutoModelForSeq2SeqLM
    model = AutoModelForSeq2SeqLM.from_pretrained("converted")
"""

__version__ = "0.1.0"


def register() -> None:
    """Register pasero-hf's configurations, models, tokenizer and pipeline with `transformers` (idempotent); the same
    as `import pasero_hf.models`."""
    from pasero_hf.registration import register_all

    register_all()
