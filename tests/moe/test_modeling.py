"""The NLLB-MoE model: checkpoint compatibility with transformers, exact top-2 routing, per-layer expert counts."""

import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, NllbMoeConfig, NllbMoeForConditionalGeneration

from pasero_hf.models.nllb_moe import PaseroNllbMoeConfig, PaseroNllbMoeForConditionalGeneration
from pasero_hf.models.nllb_moe.modeling_pasero_nllb_moe import PaseroNllbMoeSparseMLP


def _batch(seed: int = 1, vocab: int = 304, batch: int = 3, src_len: int = 12, tgt_len: int = 9):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, vocab, (batch, src_len), generator=generator)
    input_ids[1, 8:] = 1  # padding
    attention_mask = (input_ids != 1).long()
    decoder_input_ids = torch.randint(4, vocab, (batch, tgt_len), generator=generator)
    decoder_input_ids[:, 0] = 2
    decoder_input_ids[2, 6:] = 1
    decoder_attention_mask = (decoder_input_ids != 1).long()
    return dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=decoder_input_ids,
        decoder_attention_mask=decoder_attention_mask,
    )


def _experts_that_run(model) -> set[str]:
    """Names of the expert modules that run in a forward pass (recorded by forward hooks)."""
    ran = set()
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: ran.add(name))
        for name, module in model.named_modules()
        if name.split(".")[-1].startswith("expert_")
    ]
    return ran, handles


def test_transformers_nllb_moe_only_runs_experts_0_and_1(moe_kwargs):
    """The bug this model exists for: transformers 5.24 one-hot encodes the top-1 mask twice."""
    torch.manual_seed(0)
    hf_model = NllbMoeForConditionalGeneration(NllbMoeConfig(**moe_kwargs())).eval()
    ran, handles = _experts_that_run(hf_model)
    with torch.no_grad():
        hf_model(**_batch(src_len=40, tgt_len=30))
    for handle in handles:
        handle.remove()
    assert {name.split(".")[-1] for name in ran} <= {"expert_0", "expert_1"}


def test_loads_transformers_checkpoint_without_missing_keys(moe_kwargs, tmp_path):
    torch.manual_seed(0)
    hf_model = NllbMoeForConditionalGeneration(NllbMoeConfig(**moe_kwargs()))
    hf_model.save_pretrained(tmp_path)
    model, info = PaseroNllbMoeForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    ours, theirs = model.state_dict(), hf_model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert model.config.encoder_experts_per_layer == [0, 8] and model.config.decoder_experts_per_layer == [0, 8]

    # every expert runs with our routing, on the same weights
    ran, handles = _experts_that_run(model)
    with torch.no_grad():
        model(**_batch(src_len=40, tgt_len=30))
    for handle in handles:
        handle.remove()
    for side in ("encoder", "decoder"):
        used = {name.split(".")[-1] for name in ran if f".{side}." in name}
        assert used - {"expert_0", "expert_1"}, f"{side}: {used}"


def _reference_moe(block: PaseroNllbMoeSparseMLP, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """Top-2 MoE written out token by token: softmax gates, two best experts, gates renormalised, padding to no one,
    outputs scaled by the expert-output-masking keep rate at inference."""
    weight = block.router.classifier.weight.float()
    outputs = []
    for token, is_padding in zip(tokens, padding):
        if is_padding:
            outputs.append(torch.zeros_like(token))
            continue
        gates = torch.softmax(weight @ token.float(), dim=-1)
        top = torch.topk(gates, 2).indices.tolist()
        total = gates[top[0]] + gates[top[1]]
        output = sum(gates[e] / total * block.experts[f"expert_{e}"](token[None])[0] for e in top)
        outputs.append(output * (1 - block.moe_token_dropout))
    return torch.stack(outputs)


def test_each_token_matches_a_reference_top2_computation(make_moe):
    model = make_moe(encoder_experts_per_layer=[0, 6], decoder_experts_per_layer=[0, 5])
    with torch.no_grad():  # confident gates (the default init makes them nearly uniform)
        for name, param in model.named_parameters():
            if "router.classifier" in name:
                param.normal_(std=1.0)
    captured = {}

    def capture(name):
        def hook(module, args, output):
            captured[name] = (args[0], args[1], output)

        return hook

    blocks = {
        "encoder": model.model.encoder.layers[1].ffn,
        "decoder": model.model.decoder.layers[1].ffn,
    }
    handles = [block.register_forward_hook(capture(name)) for name, block in blocks.items()]
    ran, expert_handles = _experts_that_run(model)
    batch = _batch(batch=4, src_len=60, tgt_len=50)
    with torch.no_grad():
        model(**batch)
    for handle in handles + expert_handles:
        handle.remove()
    assert len(ran) == 6 + 5  # every expert of both sparse layers ran

    for name, block in blocks.items():
        hidden, padding, output = captured[name]
        expected_padding = (batch["attention_mask" if name == "encoder" else "decoder_attention_mask"] == 0)
        assert torch.equal(padding, expected_padding)
        dim = hidden.shape[-1]
        with torch.no_grad():
            reference = _reference_moe(block, hidden.reshape(-1, dim), padding.reshape(-1))
        torch.testing.assert_close(output.reshape(-1, dim), reference, rtol=1e-5, atol=1e-6)
        assert padding.any() and (output[padding] == 0).all()


def test_greedy_generation_with_cache_matches_without(make_moe):
    model = make_moe(seed=3)
    batch = _batch(seed=2, src_len=10)
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with_cache = model.generate(**inputs, max_new_tokens=12, do_sample=False, forced_bos_token_id=302)
    without_cache = model.generate(**inputs, max_new_tokens=12, do_sample=False, forced_bos_token_id=302, use_cache=False)
    assert torch.equal(with_cache, without_cache)
    assert (with_cache[:, 1] == 302).all() and with_cache.shape[1] > 3
    beams = model.generate(**inputs, max_new_tokens=12, num_beams=3, forced_bos_token_id=302)
    assert beams.shape[0] == 3


def test_per_layer_expert_counts_save_and_load(make_moe, tmp_path):
    model = make_moe(encoder_experts_per_layer=[0, 3], decoder_experts_per_layer=[0, 5])
    assert model.model.encoder.layers[1].ffn.router.classifier.weight.shape[0] == 3
    assert len(model.model.decoder.layers[1].ffn.experts) == 5
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "pasero_nllb_moe"
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert isinstance(loaded, PaseroNllbMoeForConditionalGeneration)
    assert loaded.config.encoder_experts_per_layer == [0, 3]
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits)


def test_checkpoint_disagreeing_with_config_names_the_layer(make_moe, tmp_path):
    make_moe(encoder_experts_per_layer=[0, 3], decoder_experts_per_layer=[0, 5]).save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["decoder_experts_per_layer"] = [0, 4]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="decoder layer 1 has 5 experts .* config says 4"):
        PaseroNllbMoeForConditionalGeneration.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "counts, message",
    [([0, 4, 4], "expected one count per encoder layer"), ([2, 4], "encoder layer 0 is dense"),
     ([0, 1], "encoder layer 1 is sparse .* at least 2")],
)
def test_config_rejects_bad_expert_counts(moe_kwargs, counts, message):
    with pytest.raises(ValueError, match=message):
        PaseroNllbMoeConfig(**moe_kwargs(encoder_experts_per_layer=counts))


def test_capacity_factor_drops_overflowing_tokens(make_moe):
    """With a capacity, an expert takes at most ceil(factor * 2 * tokens / experts) assignments."""
    model = make_moe(capacity_factor=0.5)
    router = model.model.encoder.layers[1].ffn.router
    tokens = torch.randn(40, 16)
    _, _, expert_ids, weights = router(tokens)
    capacity = 5  # ceil(0.5 * 2 * 40 / 8)
    per_expert = torch.bincount(expert_ids[weights > 0], minlength=8)
    assert per_expert.max() <= capacity and (weights == 0).any()
    kept_rows = weights.sum(dim=1) > 0
    torch.testing.assert_close(weights.sum(dim=1)[kept_rows], torch.ones(int(kept_rows.sum())))


def test_decoder_is_causal_without_padding(make_moe):
    """With SDPA the causal mask is omitted when nothing is padded: the attention itself must stay causal."""
    model = make_moe(seed=4)
    batch = _batch(seed=5)
    batch.pop("decoder_attention_mask")
    batch["decoder_input_ids"][2] = batch["decoder_input_ids"][0]
    changed = {key: value.clone() for key, value in batch.items()}
    changed["decoder_input_ids"][:, -1] = 7
    with torch.no_grad():
        torch.testing.assert_close(model(**changed).logits[:, :-1], model(**batch).logits[:, :-1])


def test_dense_nllb_checkpoint_is_refused(tmp_path):
    """A dense NLLB-200 (M2M100) directory must not silently become a random MoE."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    config = M2M100Config(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2)
    M2M100ForConditionalGeneration(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type is 'm2m_100', not an NLLB-MoE model"):
        PaseroNllbMoeForConditionalGeneration.from_pretrained(tmp_path)


def test_training_policies_and_load_balancing_loss(make_moe):
    model = make_moe(second_expert_policy="random")
    router = model.model.encoder.layers[1].ffn.router
    with torch.no_grad():
        router.classifier.weight.normal_(std=1.0)
    tokens = torch.randn(200, 16)
    padding = torch.zeros(200, dtype=torch.bool)
    padding[-20:] = True
    model.train()
    torch.manual_seed(0)
    _, probs, _, weights = router(tokens, padding)
    single = (weights[:, 1] == 0) & ~padding
    assert single.any() and (weights[single, 0] == 1).all()  # second expert dropped: the first takes it all
    assert (weights[padding] == 0).all() and (probs[padding] == 0).all()
    model.eval()
    _, _, expert_ids, weights = router(tokens, padding)
    assert (weights[~padding] > 0).all()  # inference: always two experts

    batch = _batch(src_len=20, tgt_len=12)
    labels = batch["decoder_input_ids"][:, 1:].clone()
    labels[batch["decoder_attention_mask"][:, 1:] == 0] = -100
    model.train()
    output = model(**batch | {"decoder_input_ids": batch["decoder_input_ids"][:, :-1],
                               "decoder_attention_mask": batch["decoder_attention_mask"][:, :-1]},
                   labels=labels, output_router_logits=True)
    logits = output.encoder_router_logits[0]
    real = batch["attention_mask"].reshape(-1).bool()
    probs = logits[real].softmax(dim=-1)
    share = torch.bincount(probs.argmax(dim=-1), minlength=8).float() / real.sum()
    expected = 8 * (probs.mean(dim=0) * share).sum()
    torch.testing.assert_close(output.encoder_aux_loss, expected)
    output.loss.backward()
    assert router.classifier.weight.grad is not None and router.classifier.weight.grad.abs().sum() > 0


def test_loss_over_num_items_in_batch_accumulates_to_the_joined_batch_loss(make_moe):
    """Gradient accumulation: with `Trainer`'s `num_items_in_batch` (the target tokens of the whole accumulated
    batch), the losses and gradients of two micro-batches add up to those of the joined batch."""
    model = make_moe()
    batch = _batch(batch=4, src_len=10, tgt_len=8)
    labels = batch["decoder_input_ids"][:, 1:].clone()
    labels[batch["decoder_attention_mask"][:, 1:] == 0] = -100
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    first, second = slice(0, 2), slice(2, 4)
    # micro-batches with different token counts: a mean per micro-batch would weigh their tokens differently
    assert (labels[first] != -100).sum() != (labels[second] != -100).sum()

    def loss_and_grad(rows: slice, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        loss = model(**{name: value[rows] for name, value in inputs.items()}, **kwargs).loss
        loss.backward()
        return loss.detach(), model.lm_head.weight.grad.clone()

    joined_loss, joined_grad = loss_and_grad(slice(None))
    num_items = (labels != -100).sum()
    first_loss, first_grad = loss_and_grad(first, num_items_in_batch=num_items)
    second_loss, second_grad = loss_and_grad(second, num_items_in_batch=num_items)
    assert torch.allclose(first_loss + second_loss, joined_loss, atol=1e-6)
    assert torch.allclose(first_grad + second_grad, joined_grad, atol=1e-6)
    # without it, each micro-batch averages over its own tokens
    mean_of_means = (loss_and_grad(first)[0] + loss_and_grad(second)[0]) / 2
    assert not torch.allclose(mean_of_means, joined_loss, atol=1e-4)
    # an int count (custom trainers) works too
    assert torch.allclose(loss_and_grad(first, num_items_in_batch=int(num_items))[0], first_loss)
