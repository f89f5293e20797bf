"""Beam search with one copy of the source per sentence (`supports_shared_encoder_states`, Pasero models) must decode
exactly like the generic path that copies encoder states and cross-attention keys/values for every beam."""

import pytest
import torch
from transformers import AutoTokenizer

from pasero_hf.generation.beam_search import pasero_search
from pasero_hf.models.pasero import PaseroForConditionalGeneration


@pytest.fixture(scope="module")
def model_and_batch(pasero_tiny_dir, bible_dir):
    model = PaseroForConditionalGeneration.from_pretrained(pasero_tiny_dir).eval()
    model.set_attn_implementation("eager")  # cross-attention weights are compared too
    tokenizer = AutoTokenizer.from_pretrained(pasero_tiny_dir)
    # lines of very different lengths, so that sentences finish at different steps and get dropped from the batch
    lines = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:12]
    batch = tokenizer(lines, padding=True, return_tensors="pt")
    return model, batch["input_ids"], batch["attention_mask"]


def _decode(model, input_ids, attention_mask, shared: bool, **options):
    model.supports_shared_encoder_states = shared
    try:
        return pasero_search(model, input_ids, attention_mask, output_attentions=True, **options)
    finally:
        del model.supports_shared_encoder_states  # back to the class attribute


@pytest.mark.parametrize("options", [
    dict(beam_size=4, n_best=4, max_output_len=40),
    dict(beam_size=3, max_output_len=8),  # the cap: unfinished hypotheses
    dict(beam_size=1, max_output_len=40),  # greedy search drops finished sentences too
])
def test_shared_source_decodes_like_per_beam_copies(model_and_batch, options):
    model, input_ids, attention_mask = model_and_batch
    assert PaseroForConditionalGeneration.supports_shared_encoder_states
    shared = _decode(model, input_ids, attention_mask, True, **options)
    copied = _decode(model, input_ids, attention_mask, False, **options)
    assert len(shared) == len(copied) == input_ids.size(0)
    for nbest_shared, nbest_copied in zip(shared, copied):
        assert [hyp.tokens for hyp in nbest_shared] == [hyp.tokens for hyp in nbest_copied]
        for a, b in zip(nbest_shared, nbest_copied):
            assert a.pos_scores == pytest.approx(b.pos_scores, abs=1e-4)
            torch.testing.assert_close(a.cross_attention, b.cross_attention, atol=1e-5, rtol=1e-4)


def test_cross_attention_takes_one_source_per_group_of_beams(model_and_batch):
    model, input_ids, attention_mask = model_and_batch
    encoder_states = model.get_encoder()(input_ids=input_ids[:2], attention_mask=attention_mask[:2]).last_hidden_state
    cross_attention = model.get_decoder().layers[0].encoder_attn
    queries = torch.randn(6, 1, model.config.embed_dim, generator=torch.Generator().manual_seed(0))
    grouped, _ = cross_attention(queries, key_value_states=encoder_states)
    per_beam, _ = cross_attention(queries, key_value_states=encoder_states.repeat_interleave(3, dim=0))
    torch.testing.assert_close(grouped, per_beam)
    with pytest.raises(ValueError, match="whole number of beams"):
        cross_attention(queries[:5], key_value_states=encoder_states)
