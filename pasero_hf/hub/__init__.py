"""Sharing on the Hugging Face Hub: push models and adapters (one commit per push), model cards rendered from
`model_cards/`, the Gradio Space. Pulling is `pasero_hf.models.locate.resolve_model_dir` (a repo id wherever a model
directory works)."""

from pasero_hf.hub.adapters import load_adapter_model
from pasero_hf.hub.cards import CardError, check_card, gather_facts, render_model_card, write_model_card
from pasero_hf.hub.push import PushError, push_space, push_to_hub

__all__ = [
    "CardError",
    "PushError",
    "check_card",
    "gather_facts",
    "load_adapter_model",
    "push_space",
    "push_to_hub",
    "render_model_card",
    "write_model_card",
]
