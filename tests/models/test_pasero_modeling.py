"""The Pasero Transformer as a transformers model: configuration, forward, generation, save/load."""

import math

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration, PaseroModel

# -- configuration ---------------------------------------------------------------------------------------------


def test_from_arch_presets_match_pasero_sizes():
    big = PaseroConfig.from_arch("transformer_big")
    assert (big.embed_dim, big.encoder_ffn_dim, big.encoder_attention_heads, big.encoder_layers) == (1024, 4096, 16, 6)
    small = PaseroConfig.from_arch("transformer_iwslt_de_en", encoder_layers=2)
    assert (small.embed_dim, small.encoder_ffn_dim, small.decoder_attention_heads) == (512, 1024, 4)
    assert small.encoder_layers == 2
    adapters = PaseroConfig.from_arch("adapter_transformer")
    assert adapters.encoder_adapter_dim == 64 and adapters.encoder_adapters == ["default"]
    mbart = PaseroConfig.from_arch("mbart_large")
    assert mbart.encoder_positional_encoding == "learned" and mbart.decoder_prenorm and mbart.encoder_embed_norm


def test_hf_aliases_and_special_ids():
    config = PaseroConfig(embed_dim=32, decoder_layers=3, encoder_layers=1, decoder_attention_heads=4)
    assert config.hidden_size == config.d_model == 32
    assert config.num_hidden_layers == 3  # the generation cache is sized from it: the decoder's
    assert (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id, config.bos_token_id) == (1, 2, 2, 0)
    assert config.unk_token_id == 3


def test_tp_plan_covers_all_projections():
    plan = PaseroConfig.base_model_tp_plan
    assert plan["encoder.layers.*.self_attn.q_proj"] == "colwise"
    assert plan["decoder.layers.*.encoder_attn.out_proj"] == "rowwise"
    assert plan["decoder.layers.*.fc1"] == "colwise" and plan["encoder.layers.*.fc2"] == "rowwise"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(embed_dim=10, encoder_attention_heads=3), "embed_dim \\(10\\) must be divisible by encoder_attention_heads"),
        (dict(decoder_positional_encoding="rotary"), "decoder_positional_encoding 'rotary'"),
        (dict(activation_fn="swiglu"), "activation_fn 'swiglu'"),
        (dict(encoder_adapter_dim=8, encoder_adapters=["lang:fr", "fr.de"]), "encoder_adapters: invalid adapter name 'fr.de'"),
        (dict(decoder_adapter_dim=8, decoder_adapters_by=["speaker"]), "decoder_adapters_by contains 'speaker'"),
        (dict(encoder_layers=2, encoder_adapter_dim=8, encoder_adapter_layer_ids=[5]), "encoder_adapter_layer_ids contains 5"),
        (dict(encoder_vocab_size=10, vocab_size=20), "shared_embeddings=True needs one vocabulary"),
    ],
)
def test_bad_config_errors_name_the_option(overrides, message):
    with pytest.raises(Exception, match=message):
        PaseroConfig(**overrides)


def test_unknown_arch_lists_known_ones():
    with pytest.raises(ValueError, match="unknown Pasero architecture 'transformer_huge'.*transformer_big"):
        PaseroConfig.from_arch("transformer_huge")


# -- forward ---------------------------------------------------------------------------------------------------


def test_shared_and_tied_embeddings_are_one_tensor(tiny_pasero):
    model = tiny_pasero()
    embed = model.model.encoder.embed_tokens.weight
    assert model.model.decoder.embed_tokens.weight is embed and model.lm_head.weight is embed
    untied = tiny_pasero(shared_embeddings=False, tied_output_projection=False)
    assert untied.lm_head.weight is not untied.model.decoder.embed_tokens.weight
    assert untied.model.encoder.embed_tokens.weight is not untied.model.decoder.embed_tokens.weight


def test_loss_is_plain_cross_entropy_ignoring_minus_100(tiny_pasero, source_batch):
    model = tiny_pasero()
    input_ids, attention_mask = source_batch
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100], [10, 2, -100, -100]])
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    # teacher forcing input: </s> then the labels shifted right
    decoder_input_ids = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 2], [2, 10, 2, 1]])
    logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    keep = labels != -100
    expected = -torch.log_softmax(logits, -1)[keep].gather(1, labels[keep][:, None]).mean()
    assert torch.allclose(output.loss, expected, atol=1e-6)
    assert torch.allclose(output.logits, logits)
    # Trainer's gradient accumulation: normalized by the token count of the whole accumulated batch
    accumulated = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=18)
    assert torch.allclose(accumulated.loss, expected * keep.sum() / 18, atol=1e-6)


def test_padding_does_not_change_encoder_states(tiny_pasero):
    model = tiny_pasero()
    short = torch.tensor([[5, 6, 7, 2]])
    padded = torch.tensor([[5, 6, 7, 2, 1, 1]])
    alone = model.get_encoder()(input_ids=short).last_hidden_state
    batched = model.get_encoder()(input_ids=padded, attention_mask=(padded != 1).long()).last_hidden_state
    assert torch.allclose(alone, batched[:, :4], atol=1e-5)


def _manual_forward(model: PaseroForConditionalGeneration, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pasero's post-norm Transformer written out with torch primitives, as an independent reference."""
    config = model.config
    dim = config.embed_dim

    def positions(length: int) -> torch.Tensor:
        half = dim // 2
        freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
        angles = (torch.arange(length) + config.positional_encoding_shift).float()[:, None] * freq[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def attention(module, query, key, mask=None):
        heads = dim // module.head_dim
        split = lambda x: x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(module.q_proj(query)), split(module.k_proj(key)), split(module.v_proj(key))
        scores = q @ k.transpose(-1, -2) / math.sqrt(module.head_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(query.shape)
        return module.out_proj(out)

    def ffn(layer, x):
        return layer.fc2(torch.relu(layer.fc1(x)))

    embed = model.model.encoder.embed_tokens.weight
    x = embed[source] * math.sqrt(dim) + positions(source.shape[1])
    for layer in model.model.encoder.layers:
        x = layer.self_attn_layer_norm(x + attention(layer.self_attn, x, x))
        x = layer.final_layer_norm(x + ffn(layer, x))
    memory = x
    y = embed[target] * math.sqrt(dim) + positions(target.shape[1])
    causal = torch.ones(target.shape[1], target.shape[1], dtype=torch.bool).tril()
    for layer in model.model.decoder.layers:
        y = layer.self_attn_layer_norm(y + attention(layer.self_attn, y, y, causal))
        y = layer.encoder_attn_layer_norm(y + attention(layer.encoder_attn, y, memory))
        y = layer.final_layer_norm(y + ffn(layer, y))
    return y @ embed.T


def test_forward_matches_an_independent_reference(tiny_pasero):
    model = tiny_pasero()
    source = torch.tensor([[5, 9, 13, 2], [7, 8, 30, 2]])
    target = torch.tensor([[2, 11, 12], [2, 20, 21]])
    with torch.no_grad():
        expected = _manual_forward(model, source, target)
        actual = model(input_ids=source, decoder_input_ids=target).logits
    assert torch.allclose(actual, expected, atol=1e-5)


def test_decoder_causality_without_a_mask_matches_the_explicit_mask(tiny_pasero):
    """Training passes no decoder mask: SDPA applies causality itself (`is_causal`). Asking for attention weights
    switches to eager attention with an explicit causal mask: both give the same logits, and no position sees a later
    one."""
    model = tiny_pasero()
    source = torch.tensor([[5, 9, 13, 2], [7, 8, 30, 2]])
    target = torch.tensor([[2, 11, 12, 14, 15], [2, 20, 21, 22, 23]])
    with torch.no_grad():
        fast = model(input_ids=source, decoder_input_ids=target).logits
        explicit = model(input_ids=source, decoder_input_ids=target, output_attentions=True)
        changed_future = target.clone()
        changed_future[:, 3:] = 25
        prefix = model(input_ids=source, decoder_input_ids=changed_future).logits
    assert torch.allclose(fast, explicit.logits, atol=1e-5)
    for weights in explicit.decoder_attentions:
        assert torch.all(weights.triu(diagonal=1) == 0)
    assert torch.allclose(fast[:, :3], prefix[:, :3], atol=1e-6)
    assert not torch.allclose(fast[:, 3:], prefix[:, 3:], atol=1e-3)


@pytest.mark.parametrize(
    "variant",
    [
        dict(encoder_prenorm=True, decoder_prenorm=True),
        dict(encoder_positional_encoding="learned", decoder_positional_encoding="learned"),
        dict(activation_fn="gelu", encoder_embed_norm=True, decoder_embed_norm=True, scale_embed=False),
        dict(shared_embeddings=False, tied_output_projection=False, encoder_vocab_size=30),
        dict(has_bias=False, scale_attn=False),
    ],
)
def test_architecture_variants_train_and_round_trip(tiny_pasero, variant, tmp_path):
    model = tiny_pasero(**variant)
    if variant.get("encoder_prenorm"):
        assert model.model.encoder.layer_norm is not None and model.model.decoder.layer_norm is not None
    source = torch.tensor([[5, 9, 13, 2]])
    labels = torch.tensor([[11, 12, 2]])
    model.train()
    loss = model(input_ids=source, labels=labels).loss
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "embed_positions" not in n)
    model.eval()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {"_name_or_path": ""}
    with torch.no_grad():
        assert torch.equal(model(input_ids=source, labels=labels).logits, reloaded(input_ids=source, labels=labels).logits)


def test_auto_classes_resolve_pasero(tiny_pasero, tmp_path):
    tiny_pasero().save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), PaseroConfig)
    assert type(AutoModel.from_pretrained(tmp_path)) is PaseroModel
    assert type(AutoModelForSeq2SeqLM.from_pretrained(tmp_path)) is PaseroForConditionalGeneration


def test_input_longer_than_max_len_is_a_clear_error(tiny_pasero):
    model = tiny_pasero(encoder_max_len=5)
    with pytest.raises(ValueError, match="encoder input of 6 positions exceeds PaseroConfig.encoder_max_len \\(5\\)"):
        model(input_ids=torch.full((1, 6), 5), decoder_input_ids=torch.tensor([[2]]))


def test_selectors_are_accepted_and_ignored_without_adapters(tiny_pasero, source_batch):
    model = tiny_pasero()
    input_ids, attention_mask = source_batch
    decoder_input_ids = torch.tensor([[2, 5]] * 3)
    plain = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    with_langs = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
        source_lang="en", target_lang="es", domain="bible",
    ).logits
    assert torch.equal(plain, with_langs)


def test_tensor_parallel_shards_recombine_to_the_full_layer(tiny_pasero):
    """Colwise q/k/v + rowwise out_proj with half the heads per shard: the shards' outputs sum to the full output,
    which requires the head count to come from the (sharded) weight shapes."""
    model = tiny_pasero()
    attention = model.model.decoder.layers[0].self_attn
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        full, _ = attention(x)
        partial_sum = 0
        for shard in range(2):
            shard_attention = type(attention)(model.config, model.config.decoder_attention_heads, 0,
                                              is_causal=attention.is_causal)
            rows = slice(shard * 8, (shard + 1) * 8)
            for name in ("q_proj", "k_proj", "v_proj"):
                source, target = getattr(attention, name), getattr(shard_attention, name)
                target.weight = torch.nn.Parameter(source.weight[rows].clone())
                target.bias = torch.nn.Parameter(source.bias[rows].clone())
            shard_attention.out_proj.weight = torch.nn.Parameter(attention.out_proj.weight[:, rows].clone())
            shard_attention.out_proj.bias = torch.nn.Parameter(attention.out_proj.bias / 2)
            output, _ = shard_attention(x)
            partial_sum = partial_sum + output
    assert torch.allclose(full, partial_sum, atol=1e-5)


# -- generation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cached_and_uncached_decoding_agree(tiny_pasero, source_batch, num_beams):
    model = tiny_pasero(decoder_layers=3, encoder_layers=1)  # cache sized from the decoder, not the encoder
    input_ids, attention_mask = source_batch
    kwargs = dict(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, do_sample=False,
        max_new_tokens=8, min_new_tokens=4, output_scores=True, return_dict_in_generate=True,
    )
    cached = model.generate(**kwargs, use_cache=True)
    uncached = model.generate(**kwargs, use_cache=False)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert cached.sequences.shape[1] > 4
    for step_cached, step_uncached in zip(cached.scores, uncached.scores):
        finite = torch.isfinite(step_cached)
        assert torch.equal(finite, torch.isfinite(step_uncached))
        assert torch.allclose(step_cached[finite], step_uncached[finite], atol=1e-5)
    if num_beams > 1:
        assert torch.allclose(cached.sequences_scores, uncached.sequences_scores, atol=1e-5)


def test_sdpa_is_default_and_matches_eager(tiny_pasero, source_batch):
    model = tiny_pasero()
    assert model.config._attn_implementation == "sdpa"
    input_ids, attention_mask = source_batch
    decoder_input_ids = torch.tensor([[2, 5, 6]] * 3)
    with torch.no_grad():
        sdpa = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(sdpa, eager, atol=1e-5)


def test_attentions_hidden_states_and_transition_scores(tiny_pasero, source_batch):
    model = tiny_pasero()
    input_ids, attention_mask = source_batch
    output = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=5, min_new_tokens=5, num_beams=1,
        do_sample=False, output_attentions=True, output_hidden_states=True, output_scores=True,
        return_dict_in_generate=True,
    )
    # requested attentions come back even though the model runs SDPA by default
    assert len(output.cross_attentions) == 5 and len(output.cross_attentions[0]) == 2
    first = output.cross_attentions[0][0]
    assert first.shape == (3, 4, 1, 7)
    assert torch.allclose(first.sum(-1), torch.ones(3, 4, 1), atol=1e-5)
    assert torch.all(first[1, :, :, 5:] == 0) and torch.all(first[2, :, :, 3:] == 0)  # padding gets no attention
    assert len(output.encoder_hidden_states) == 3 and len(output.decoder_hidden_states[0]) == 3
    transition = model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
    assert transition.shape == (3, 5)
    # greedy: each transition score is the max log-probability of its step
    for step, scores in enumerate(output.scores):
        assert torch.allclose(transition[:, step], torch.log_softmax(scores, -1).max(-1).values, atol=1e-5)


def test_sampling_is_reproducible_with_a_seed(tiny_pasero, source_batch):
    model = tiny_pasero()
    input_ids, attention_mask = source_batch
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        runs.append(model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, top_k=10,
                                   max_new_tokens=6))
    assert torch.equal(runs[0], runs[1])
