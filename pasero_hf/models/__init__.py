"""Models: Pasero's Transformer, NLLB-MoE, Whisper helpers, model locations and vocabulary tools.

Importing this package registers the model classes with the `transformers` Auto classes (`pasero_hf.registration`):
every model a pasero-hf entry point loads comes through here, and plain `transformers` users write
`import pasero_hf.models` (or call `pasero_hf.register()`).
"""

from pasero_hf.registration import register_all

register_all()
