"""Gate statistics from router hooks, expert selection and pruning (exactness on never-used experts)."""

import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from pasero_hf.models.nllb_moe import ExpertStatsCollector, expert_scores, load_stats, prune_model, select_experts
from pasero_hf.models.nllb_moe.modeling_pasero_nllb_moe import shift_tokens_right
from pasero_hf.models.nllb_moe.pruning import select_by_threshold


def _teacher_forcing_batch(tokenizer, pairs, src="eng_Latn", tgt="spa_Latn"):
    tokenizer.src_lang, tokenizer.tgt_lang = src, tgt
    batch = tokenizer([s for s, _ in pairs], text_target=[t for _, t in pairs], padding=True, return_tensors="pt")
    labels = batch.pop("labels")
    batch["decoder_input_ids"] = shift_tokens_right(labels, 1, 2)
    # the final </s> is predicted, never fed back: positions from it on are masked like padding
    fed = (batch["decoder_input_ids"] != 1) & (batch["decoder_input_ids"] != 2)
    fed[:, 0] = True
    batch["decoder_attention_mask"] = fed.long()
    return batch


def _collect(model, tokenizer, pairs, src="eng_Latn", tgt="spa_Latn", collector=None):
    collector = collector or ExpertStatsCollector(model)
    with torch.no_grad(), collector.recording(src, tgt):
        model(**_teacher_forcing_batch(tokenizer, pairs, src, tgt))
    return collector


def test_stats_match_router_outputs_and_exclude_padding(make_moe, nllb_tokenizer, bible_pairs):
    model = make_moe()
    pairs = bible_pairs[:4]
    router = model.model.encoder.layers[1].ffn.router
    captured = []
    handle = router.register_forward_hook(lambda m, args, out: captured.append(out[0]))
    stats = _collect(model, nllb_tokenizer, pairs).to_dict()
    handle.remove()

    batch = _teacher_forcing_batch(nllb_tokenizer, pairs)
    real = batch["attention_mask"].reshape(-1).bool()
    assert not real.all()  # the batch has padding
    probs = torch.softmax(captured[0][real].double(), dim=-1)
    layer = stats["pairs"]["eng_Latn-spa_Latn"]["encoder"]["layers"]["1"]
    assert stats["pairs"]["eng_Latn-spa_Latn"]["encoder"]["num_tokens"] == int(real.sum())
    torch.testing.assert_close(torch.tensor(layer["mean"], dtype=torch.float64), probs.mean(dim=0))
    top2 = probs.topk(2).indices
    expected_top1 = torch.bincount(top2[:, 0], minlength=8).double() / real.sum()
    torch.testing.assert_close(torch.tensor(layer["top1"], dtype=torch.float64), expected_top1)
    assert sum(layer["rank"]) == pytest.approx(8 * 9 / 2)
    conf1 = torch.tensor(layer["conf1"])
    used = expected_top1 > 0
    assert (conf1[used] > 1 / 8).all() and (conf1[~used] == 0).all()

    # padding excluded: one sentence at a time (no padding) gives the same statistics
    one_by_one = ExpertStatsCollector(model)
    for pair in pairs:
        _collect(model, nllb_tokenizer, [pair], collector=one_by_one)
    alone = one_by_one.to_dict()["pairs"]["eng_Latn-spa_Latn"]
    for side in ("encoder", "decoder"):
        ours, theirs = alone[side], stats["pairs"]["eng_Latn-spa_Latn"][side]
        assert ours["num_tokens"] == theirs["num_tokens"]
        for name, values in theirs["layers"]["1"].items():
            assert ours["layers"]["1"][name] == pytest.approx(values, abs=1e-6), (side, name)


def test_pruning_never_used_experts_keeps_outputs_identical(make_moe, nllb_tokenizer, bible_pairs, tmp_path):
    model = make_moe(seed=1, num_experts=16)
    pairs = bible_pairs[:2]
    stats = _collect(model, nllb_tokenizer, pairs).to_dict()
    batch = _teacher_forcing_batch(nllb_tokenizer, pairs)
    with torch.no_grad():
        reference = model(**batch).logits

    selection = select_experts(model, stats, [("eng_Latn", "spa_Latn")], metric="load", threshold=1e-12)
    kept = {side: len(selection.experts[side][1]) for side in ("encoder", "decoder")}
    assert kept["encoder"] < 16 and kept["decoder"] < 16  # the data leaves some experts unused
    prune_model(model, selection)
    assert model.config.encoder_experts_per_layer == [0, kept["encoder"]]
    with torch.no_grad():
        pruned = model(**batch).logits
    real = batch["decoder_attention_mask"].bool()
    torch.testing.assert_close(pruned[real], reference[real], rtol=1e-5, atol=1e-5)

    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert reloaded.config.decoder_experts_per_layer == [0, kept["decoder"]]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits[real], reference[real], rtol=1e-5, atol=1e-5)


def test_pruning_used_experts_changes_outputs(make_moe, nllb_tokenizer, bible_pairs):
    """The exactness above is not vacuous: removing experts that the data uses changes the outputs."""
    model = make_moe(seed=1, num_experts=16)
    pairs = bible_pairs[:2]
    stats = _collect(model, nllb_tokenizer, pairs).to_dict()
    batch = _teacher_forcing_batch(nllb_tokenizer, pairs)
    with torch.no_grad():
        reference = model(**batch).logits
    prune_model(model, select_experts(model, stats, [("eng_Latn", "spa_Latn")], keep_encoder=2, keep_decoder=2))
    with torch.no_grad():
        assert not torch.allclose(model(**batch).logits, reference, atol=1e-4)


def test_selection_by_metric_and_threshold():
    scores = {
        "encoder": {3: torch.tensor([0.1, 0.5, 0.0, 0.3]), 7: torch.tensor([0.0, 0.0, 0.9, 0.05])},
        "decoder": {3: torch.tensor([0.2, 0.2, 0.2, 0.4])},
    }
    selection = select_by_threshold(scores, threshold=0.25, min_per_layer=2)
    assert selection.experts == {"encoder": {3: [1, 3], 7: [2, 3]}, "decoder": {3: [0, 3]}}
    selection = select_by_threshold(scores, threshold=0.15, min_per_layer=2)
    assert selection.experts["decoder"][3] == [0, 1, 2, 3]


def _fake_stats(model, pairs: dict[str, float]) -> dict:
    """Statistics whose encoder/decoder favour a different expert per pair (expert index = `favourite`)."""
    from pasero_hf.models.nllb_moe.expert_stats import model_signature

    def block(favourite):
        top1 = [0.0] * 8
        top1[favourite] = 1.0
        layer = {"mean": [1 / 8] * 8, "rank": [4.5] * 8, "top1": top1, "top2": [0.0] * 8, "conf1": top1,
                 "conf2": [0.0] * 8}
        return {"num_tokens": 10, "layers": {"1": layer}}

    return {
        "format": "pasero-hf-moe-stats/1",
        "model": model_signature(model.config),
        "pairs": {pair: {"encoder": block(enc), "decoder": block(dec)} for pair, (enc, dec) in pairs.items()},
    }


def test_unseen_pair_falls_back_to_source_and_target_languages(make_moe):
    model = make_moe()
    stats = _fake_stats(model, {"eng_Latn-spa_Latn": (0, 1), "fra_Latn-eng_Latn": (2, 3)})
    scores = expert_scores(stats, [("fra_Latn", "spa_Latn")], metric="importance")
    assert int(scores["encoder"][1].argmax()) == 2  # fra_Latn as a source (fra-eng)
    assert int(scores["decoder"][1].argmax()) == 1  # spa_Latn as a target (eng-spa)


def test_bad_statistics_and_budgets_are_refused(make_moe, tmp_path):
    model = make_moe()
    stats = _fake_stats(model, {"eng_Latn-spa_Latn": (0, 1)})
    with pytest.raises(ValueError, match="none with source language deu_Latn"):
        select_experts(model, stats, [("deu_Latn", "spa_Latn")], keep_encoder=2, keep_decoder=2)
    other_model = make_moe(encoder_experts_per_layer=[0, 4])
    with pytest.raises(ValueError, match="another model: model.encoder_experts_per_layer is \\[0, 8\\]"):
        select_experts(other_model, stats, [("eng_Latn", "spa_Latn")], keep_encoder=2, keep_decoder=2)
    with pytest.raises(ValueError, match="--keep-encoder: must be at least 2"):
        select_experts(model, stats, [("eng_Latn", "spa_Latn")], keep_encoder=0, keep_decoder=2)
    with pytest.raises(ValueError, match="--keep-decoder: 9 experts requested but decoder layer 1 has only 8"):
        select_experts(model, stats, [("eng_Latn", "spa_Latn")], keep_encoder=2, keep_decoder=9)

    path = tmp_path / "stats.json"
    broken = dict(stats, pairs={"eng_Latn-spa_Latn": {"encoder": {"num_tokens": 1, "layers": {"1": {}}},
                                                        "decoder": stats["pairs"]["eng_Latn-spa_Latn"]["decoder"]}})
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="stats.json: pairs.eng_Latn-spa_Latn.encoder.layers.1 lacks mean"):
        load_stats(str(path))


def test_pruning_after_decoding_stats_keeps_translations_identical(make_moe, nllb_tokenizer, bible_pairs):
    """Statistics gathered while translating (the CLI's default) let us prune to the experts those translations use,
    and the pruned model translates the same sentences identically."""
    from pasero_hf.cli.moe_stats import collect_corpus_stats

    model = make_moe(seed=5, num_experts=16)
    sources = [source for source, _ in bible_pairs[:3]]
    collector = ExpertStatsCollector(model)
    collect_corpus_stats(model, nllb_tokenizer, collector, sources, "eng_Latn", "spa_Latn", max_new_tokens=10)
    stats = collector.to_dict()

    nllb_tokenizer.src_lang = "eng_Latn"
    batch = nllb_tokenizer(sources, padding=True, return_tensors="pt")
    spa = nllb_tokenizer.convert_tokens_to_ids("spa_Latn")
    before = model.generate(**batch, forced_bos_token_id=spa, max_new_tokens=10, do_sample=False)
    selection = select_experts(model, stats, [("eng_Latn", "spa_Latn")], metric="load", threshold=1e-12)
    assert len(selection.experts["decoder"][1]) < 16
    prune_model(model, selection)
    after = model.generate(**batch, forced_bos_token_id=spa, max_new_tokens=10, do_sample=False)
    assert torch.equal(before, after)
