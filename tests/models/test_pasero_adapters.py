"""Bottleneck adapters of the Pasero model (Pasero's `adapter_transformer`)."""

import logging

import pytest
import torch

from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

LANG_ADAPTERS = dict(
    encoder_adapter_dim=8,
    decoder_adapter_dim=6,
    encoder_adapters_by=["source_lang"],
    decoder_adapters_by=["target_lang"],
    encoder_adapters=["lang:en", "lang:de"],
    decoder_adapters=["lang:es", "lang:fr"],
    adapter_zero_init=True,
)
SOURCE = torch.tensor([[5, 9, 13, 2], [7, 8, 30, 2]])
TARGET = torch.tensor([[2, 11, 12], [2, 20, 21]])


def _randomize_adapters(model):
    """Trained-looking adapters (zero-init ones are the identity, which would hide selection bugs)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".adapters." in name:
                param.normal_(0, 0.5)


def _logits(model, **selectors):
    with torch.no_grad():
        return model(input_ids=SOURCE, decoder_input_ids=TARGET, **selectors).logits


def test_adapter_is_a_residual_bottleneck_with_input_layer_norm(tiny_pasero):
    model = tiny_pasero(**LANG_ADAPTERS)
    _randomize_adapters(model)
    adapter = model.model.encoder.layers[0].adapters["lang:en"]
    assert (adapter.down.in_features, adapter.down.out_features, adapter.up.out_features) == (16, 8, 16)
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        expected = x + adapter.up(torch.relu(adapter.down(torch.nn.functional.layer_norm(
            x, (16,), adapter.layer_norm.weight, adapter.layer_norm.bias))))
        assert torch.allclose(adapter(x), expected, atol=1e-6)


def test_fresh_adapters_start_as_identity(tiny_pasero):
    plain = tiny_pasero(seed=3)
    zero_init = tiny_pasero(seed=3, **LANG_ADAPTERS)
    zero_init.load_state_dict(plain.state_dict(), strict=False)
    assert torch.allclose(_logits(plain), _logits(zero_init, source_lang="en", target_lang="es"), atol=1e-6)
    near_zero = tiny_pasero(seed=3, **{**LANG_ADAPTERS, "adapter_zero_init": False})
    near_zero.load_state_dict(plain.state_dict(), strict=False)
    assert torch.allclose(_logits(plain), _logits(near_zero, source_lang="en", target_lang="es"), atol=1e-4)


def test_adapters_selected_by_batch_languages(tiny_pasero):
    model = tiny_pasero(**LANG_ADAPTERS)
    _randomize_adapters(model)
    en_es = _logits(model, source_lang="en", target_lang="es")
    model.set_active_adapters(encoder=["lang:en"], decoder=["lang:es"])
    assert torch.equal(en_es, _logits(model, source_lang="de", target_lang="fr"))  # explicit choice wins
    model.set_active_adapters(encoder=None, decoder=None)
    de_es = _logits(model, source_lang="de", target_lang="es")
    assert not torch.allclose(en_es, de_es, atol=1e-3)
    with pytest.raises(ValueError, match="encoder_adapters_by includes 'source_lang': pass `source_lang=...`"):
        _logits(model, target_lang="es")


def test_explicit_stack_order_matters_and_empty_list_disables(tiny_pasero):
    model = tiny_pasero(**LANG_ADAPTERS)
    _randomize_adapters(model)
    model.set_active_adapters(encoder=["lang:en", "lang:de"], decoder=[])
    stacked = _logits(model)
    model.set_active_adapters(encoder=["lang:de", "lang:en"])
    reversed_stack = _logits(model)
    assert not torch.allclose(stacked, reversed_stack, atol=1e-3)
    model.set_active_adapters(encoder=[], decoder=[])
    disabled = _logits(model)
    plain = tiny_pasero()
    plain.load_state_dict(model.state_dict(), strict=False)
    assert torch.allclose(disabled, _logits(plain), atol=1e-6)


def test_manual_stack_equals_layer_by_layer_application(tiny_pasero):
    model = tiny_pasero(**LANG_ADAPTERS)
    _randomize_adapters(model)
    model.set_active_adapters(encoder=["lang:en", "lang:de"], decoder=[])
    encoder = model.get_encoder()
    with torch.no_grad():
        actual = encoder(input_ids=SOURCE).last_hidden_state
        x = encoder.embed(SOURCE, None, offset=0)
        for layer in encoder.layers:
            x, _ = layer(x, None)
            x = layer.adapters["lang:de"](layer.adapters["lang:en"](x))
    assert torch.allclose(actual, x, atol=1e-6)


def test_adapter_layer_ids_limit_where_adapters_go(tiny_pasero):
    model = tiny_pasero(**LANG_ADAPTERS, decoder_adapter_layer_ids=[1])
    assert len(model.model.decoder.layers[0].adapters) == 0
    assert set(model.model.decoder.layers[1].adapters) == {"lang:es", "lang:fr"}
    assert set(model.model.encoder.layers[0].adapters) == {"lang:en", "lang:de"}


def test_default_adapter_and_missing_names_warn(tiny_pasero, caplog):
    model = tiny_pasero(encoder_adapter_dim=4, decoder_adapter_dim=4)
    assert model.adapter_names() == {"encoder": ["default"], "decoder": ["default"]}
    _randomize_adapters(model)
    with_default = _logits(model)
    model.set_active_adapters(encoder=["lang:it"], decoder=["lang:it"])
    with caplog.at_level(logging.WARNING):
        without = _logits(model)
    assert "no weights for encoder adapter 'lang:it': it is disabled" in caplog.text
    assert not torch.allclose(with_default, without, atol=1e-3)


def test_adapter_names_are_validated(tiny_pasero):
    model = tiny_pasero(**LANG_ADAPTERS)
    with pytest.raises(ValueError, match=r"set_active_adapters\(encoder=...\): invalid adapter name 'lang:en.x'"):
        model.set_active_adapters(encoder=["lang:en.x"])
    with pytest.raises(ValueError, match="encoder adapter: invalid adapter name 'fr'"):
        model.add_adapters(["fr"])
    without = tiny_pasero()
    with pytest.raises(ValueError, match="encoder_adapter_dim is 0"):
        without.add_adapters(["lang:fr"])


def test_incremental_pair_adapter_training_touches_only_the_new_adapter(tiny_pasero, tmp_path):
    model = tiny_pasero(**LANG_ADAPTERS)
    _randomize_adapters(model)
    model.add_adapters(["lang:de->fr"])
    model.config.encoder_adapters_by = ["lang_pair"]
    model.config.decoder_adapters_by = ["lang_pair"]
    trainable = model.freeze_all_but_adapters(["lang:de->fr"])
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if "adapters.lang:de->fr." in n) > 0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        loss = model(input_ids=SOURCE, labels=TARGET, source_lang="de", target_lang="fr").loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("adapters.lang:de->fr." in n for n in changed)

    model.eval()
    model.save_pretrained(tmp_path)
    reloaded = PaseroForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reloaded.adapter_names()["encoder"] == ["lang:en", "lang:de", "lang:de->fr"]
    selectors = dict(source_lang="de", target_lang="fr")
    assert torch.equal(_logits(model, **selectors), _logits(reloaded, **selectors))
    generated = reloaded.generate(input_ids=SOURCE, max_new_tokens=4, num_beams=2, **selectors)
    assert generated.shape[0] == 2


def test_adapters_missing_from_checkpoint_are_disabled_on_load(tiny_pasero, tmp_path, caplog):
    model = tiny_pasero(**LANG_ADAPTERS)
    _randomize_adapters(model)
    model.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        reloaded = PaseroForConditionalGeneration.from_pretrained(
            tmp_path, encoder_adapters=["lang:en", "lang:de", "lang:it"]
        ).eval()
    assert "encoder adapter 'lang:it' has no weights in the checkpoint" in caplog.text
    assert reloaded.adapter_names()["encoder"] == ["lang:en", "lang:de"]
    # asking for it falls back to no encoder adapter, as Pasero does
    reloaded.set_active_adapters(encoder=["lang:it"])
    model.set_active_adapters(encoder=[])
    assert torch.allclose(_logits(reloaded, target_lang="es"), _logits(model, target_lang="es"), atol=1e-6)


def test_domain_adapters(tiny_pasero):
    model = tiny_pasero(encoder_adapter_dim=4, decoder_adapter_dim=4, encoder_adapters_by=["domain"],
                        decoder_adapters_by=["domain"], encoder_adapters=["domain:ted", "domain:bible"],
                        decoder_adapters=["domain:ted", "domain:bible"])
    _randomize_adapters(model)
    assert not torch.allclose(_logits(model, domain="ted"), _logits(model, domain="bible"), atol=1e-3)
    assert PaseroConfig(**model.config.to_dict()).encoder_adapters_by == ["domain"]
