"""Models: Pasero's Transformer, NLLB-MoE, model locations and vocabulary tools. Importing this package registers
the model classes with the `transformers` Auto classes (`pasero_hf.registration`)."""

from pasero_hf.registration import register_all

register_all()
