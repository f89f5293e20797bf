"""Decoding: Pasero-exact search, the `TextGenerator` API and whole-corpus decoding with BLEU/chrF."""

from pasero_hf.generation.beam_search import Hypothesis, pasero_search, score_targets
from pasero_hf.generation.inference_corpus import InferenceCorpus, get_inference_corpus
from pasero_hf.generation.text_generator import TextGenerator

__all__ = ["Hypothesis", "InferenceCorpus", "TextGenerator", "get_inference_corpus", "pasero_search", "score_targets"]
