"""Pasero-compatible search on real `transformers` encoder-decoders.

Two models: a tiny random M2M100 (any architecture must work), and the tiny original-Pasero checkpoint of
`tests/fixtures/pasero-tiny-en-es` loaded into transformers' FSMT (the fairseq layout), a model that ends its
outputs with EOS at varied lengths, so that finishing, ranking and stopping rules are all exercised.
"""

from pathlib import Path

import pytest
import torch
from transformers import FSMTConfig, FSMTForConditionalGeneration, M2M100Config, M2M100ForConditionalGeneration

from pasero_hf.generation.beam_search import beam_search, pasero_search, sample, score_targets

PAD, EOS = 1, 2


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_m2m100() -> M2M100ForConditionalGeneration:
    torch.manual_seed(0)
    config = M2M100Config(
        vocab_size=48, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
        dropout=0.0, attention_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0, pad_token_id=PAD,
        bos_token_id=0, eos_token_id=EOS, decoder_start_token_id=EOS,
    )
    model = M2M100ForConditionalGeneration(config).eval()
    model.set_attn_implementation("eager")
    return model


@pytest.fixture(scope="module")
def fixture_fsmt(fixtures_dir: Path) -> FSMTForConditionalGeneration:
    """The tiny original-Pasero checkpoint in transformers' FSMT (same post-norm fairseq layout)."""
    checkpoint = torch.load(
        fixtures_dir / "pasero-tiny-en-es" / "model_best.bin", map_location="cpu", weights_only=True
    )
    args, state = checkpoint["args"], checkpoint["model"]
    vocab_size = state["encoder.embed_tokens.weight"].size(0)
    config = FSMTConfig(
        langs=["en", "es"], src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, d_model=args["embed_dim"],
        encoder_layers=args["encoder_layers"], decoder_layers=args["decoder_layers"],
        encoder_attention_heads=args["encoder_attention_heads"],
        decoder_attention_heads=args["decoder_attention_heads"], encoder_ffn_dim=args["encoder_ffn_dim"],
        decoder_ffn_dim=args["decoder_ffn_dim"], activation_function="relu",
        max_position_embeddings=args["decoder_max_len"], scale_embedding=True, tie_word_embeddings=True,
        pad_token_id=PAD, bos_token_id=0, eos_token_id=EOS, decoder_start_token_id=EOS, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0,
    )
    model = FSMTForConditionalGeneration(config)
    weights = {"model." + key: value for key, value in state.items() if not key.endswith("._float_tensor")}
    weights["model.decoder.output_projection.weight"] = state["decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # sinusoidal position tables are computed, not stored
    assert not unexpected and all("embed_positions" in key for key in missing)
    return model.eval()


def _batch(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([row + [PAD] * (width - len(row)) for row in rows])
    return ids, (ids != PAD).long()


@pytest.fixture(scope="module")
def fsmt_sources(fixtures_dir: Path) -> list[list[int]]:
    """Real source sentences (token ids of the fixture's verbose decoding files) and short prefixes of one: with 6
    output tokens at most, beam search finishes a few hypotheses for the shortest ones and none for the others."""
    model_dir = fixtures_dir / "pasero-tiny-en-es"
    words = [line.split(" ")[0] for line in (model_dir / "dict.txt").read_text(encoding="utf-8").splitlines()]
    index = {token: i for i, token in enumerate(["<sep>", "<pad>", "</s>", "<unk>"] + words)}
    lines = (model_dir / "test.first5.beam5.verbose.hyp.txt").read_text(encoding="utf-8").splitlines()
    sources = [[index[t] for t in line.split("\t")[1].split(" ")] for line in lines if line.startswith("S-")]
    return sources + [sources[2][:n] + [EOS] for n in (6, 3, 2)]


def _random_sources(count: int, seed: int, vocab_size: int = 48) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 12, (count,), generator=generator).tolist()
    return [torch.randint(4, vocab_size, (n,), generator=generator).tolist() + [EOS] for n in lengths]


@torch.no_grad()
def _naive_pasero_beam(model, source: list[int], beam_size: int, max_output_len: int, len_penalty: float):
    """Pasero's beam search rules, written plainly for one sentence: no cache, no batching, no vectorized state."""
    ids = torch.tensor([source])
    beams = [([EOS], torch.tensor(0.0))]  # (decoder tokens, summed log-prob)
    finished = []
    for _ in range(max_output_len):
        decoder_input = torch.tensor([tokens for tokens, _ in beams])
        logits = model(
            input_ids=ids.expand(len(beams), -1), decoder_input_ids=decoder_input, use_cache=False
        ).logits[:, -1]
        totals = logits.float().log_softmax(-1) + torch.stack([score for _, score in beams]).unsqueeze(1)
        top = totals.view(-1).topk(2 * beam_size)
        candidates = [
            (beams[i // totals.size(1)][0] + [i % totals.size(1)], value)
            for i, value in zip(top.indices.tolist(), top.values)
        ]
        for tokens, value in candidates[:beam_size]:
            if tokens[-1] == EOS and len(finished) < beam_size:
                finished.append((tokens[1:], value))
        if len(finished) >= beam_size:
            break
        beams = [(tokens, value) for tokens, value in candidates if tokens[-1] != EOS][:beam_size]
    if not finished:
        finished = [(beams[0][0][1:], beams[0][1])]
    normalized = [float(score / (len(tokens) + 1) ** len_penalty) for tokens, score in finished]
    order = sorted(range(len(finished)), key=lambda i: -normalized[i])
    return [(finished[i][0], float(finished[i][1])) for i in order]


@pytest.mark.parametrize("max_output_len", [6, 40])
def test_matches_plain_reimplementation_of_pasero_rules(fixture_fsmt, random_m2m100, fsmt_sources, max_output_len):
    # 6 tokens: most sentences hit the cap, some with a few finished hypotheses, some with none;
    # 40 tokens: sentences finish at different steps and leave the batch.
    for model, sources in ((fixture_fsmt, fsmt_sources), (random_m2m100, _random_sources(5, seed=1))):
        ids, mask = _batch(sources)
        results = beam_search(model, ids, mask, beam_size=3, max_output_len=max_output_len, len_penalty=1.0)
        for source, nbest in zip(sources, results):
            expected = _naive_pasero_beam(model, source, 3, max_output_len, 1.0)
            assert [hyp.tokens for hyp in nbest] == [tokens for tokens, _ in expected]
            assert [hyp.score for hyp in nbest] == pytest.approx([score for _, score in expected], abs=1e-4)


def test_cap_returns_finished_hypotheses_only(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    results = pasero_search(fixture_fsmt, ids, mask, beam_size=4, n_best=4, max_output_len=6)
    kinds = set()
    for nbest in results:
        if nbest[0].tokens[-1] == EOS:
            kinds.add("finished")
            assert all(hyp.tokens[-1] == EOS and len(hyp.tokens) <= 6 for hyp in nbest)
        else:  # nothing finished: the single best unfinished beam, cut at the cap
            kinds.add("unfinished")
            assert len(nbest) == 1 and len(nbest[0].tokens) == 6 and EOS not in nbest[0].tokens
    assert kinds == {"finished", "unfinished"}, "the inputs should exercise both cases"


def test_agrees_with_transformers_beam_search_without_length_normalization(fixture_fsmt, fsmt_sources):
    """The rules coincide with `generate(num_beams=k)` when ranking is by summed log-probability
    (`len_penalty=0` here, `length_penalty=0.0` there), `early_stopping=True` (both stop a sentence once k
    hypotheses have finished) and no sentence reaches the length cap."""
    k = 4
    ids, mask = _batch(fsmt_sources)
    ours = pasero_search(fixture_fsmt, ids, mask, beam_size=k, n_best=k, max_output_len=150, len_penalty=0.0)
    theirs = fixture_fsmt.generate(
        input_ids=ids, attention_mask=mask, num_beams=k, num_return_sequences=k, length_penalty=0.0,
        early_stopping=True, max_new_tokens=150, do_sample=False, output_scores=True, return_dict_in_generate=True,
    )
    sequences = theirs.sequences.view(len(fsmt_sources), k, -1)[:, :, 1:]
    scores = theirs.sequences_scores.view(len(fsmt_sources), k)
    for i, nbest in enumerate(ours):
        assert all(hyp.tokens[-1] == EOS for hyp in nbest), "no sentence may reach the cap for this comparison"
        expected = [[t for t in row if t != PAD] for row in sequences[i].tolist()]
        assert [hyp.tokens for hyp in nbest] == expected
        assert [hyp.score for hyp in nbest] == pytest.approx(scores[i].tolist(), abs=1e-4)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_repeat_penalty_agrees_with_transformers(fixture_fsmt, fsmt_sources, beam_size):
    """`repeat_penalty` is `generate`'s `repetition_penalty`: on the logits in greedy search, on the log-probabilities
    in beam search, over the decoder input so far (its start token included); same outputs and scores."""
    ids, mask = _batch(fsmt_sources)
    plain = pasero_search(fixture_fsmt, ids, mask, beam_size=beam_size, max_output_len=60, len_penalty=0.0)
    ours = pasero_search(fixture_fsmt, ids, mask, beam_size=beam_size, n_best=beam_size, max_output_len=60,
                         len_penalty=0.0, repeat_penalty=1.2)
    theirs = fixture_fsmt.generate(
        input_ids=ids, attention_mask=mask, num_beams=beam_size, num_return_sequences=beam_size, length_penalty=0.0,
        early_stopping=True, max_new_tokens=60, do_sample=False, forced_eos_token_id=None, repetition_penalty=1.2,
        output_scores=True, return_dict_in_generate=True,
    )
    sequences = theirs.sequences.view(len(fsmt_sources), beam_size, -1)[:, :, 1:]
    assert [nbest[0].tokens for nbest in ours] != [nbest[0].tokens for nbest in plain], "the penalty changes outputs"
    for i, nbest in enumerate(ours):
        assert len(nbest) == beam_size or beam_size == 1, "no sentence may reach the cap for this comparison"
        assert [hyp.tokens for hyp in nbest] == [[t for t in row if t != PAD] for row in sequences[i].tolist()]
        if beam_size > 1:  # the beam scores sum the penalized log-probabilities, as generate's
            assert [hyp.score for hyp in nbest] == pytest.approx(
                theirs.sequences_scores.view(len(fsmt_sources), beam_size)[i].tolist(), abs=1e-4)


def test_pasero_length_normalization_ranks_the_nbest(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    results = pasero_search(fixture_fsmt, ids, mask, beam_size=5, n_best=5, max_output_len=100, len_penalty=1.0)
    reranked = 0
    for nbest in results:
        assert len(nbest) == 5 and len({tuple(hyp.tokens) for hyp in nbest}) == 5
        for hyp in nbest:
            assert hyp.tokens[-1] == EOS
            # Pasero counts EOS and adds one: (len + 1), not len
            assert hyp.normalized_score == pytest.approx(hyp.score / (len(hyp.tokens) + 1), rel=1e-6)
            assert sum(hyp.pos_scores) == pytest.approx(hyp.score, abs=1e-4)
        normalized = [hyp.normalized_score for hyp in nbest]
        assert normalized == sorted(normalized, reverse=True)
        reranked += [hyp.score for hyp in nbest] != sorted((hyp.score for hyp in nbest), reverse=True)
    assert reranked, "length normalization should reorder at least one n-best list of these inputs"


def test_positional_scores_are_the_model_log_probabilities(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    for beam_size in (1, 4):
        results = pasero_search(fixture_fsmt, ids, mask, beam_size=beam_size, max_output_len=30)
        forced = score_targets(fixture_fsmt, ids, mask, [nbest[0].tokens for nbest in results])
        for nbest, expected in zip(results, forced):
            assert nbest[0].pos_scores == pytest.approx(expected.tolist(), abs=1e-4)


def test_beam_size_one_is_greedy_search(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    greedy = sample(fixture_fsmt, ids, mask, max_output_len=60)
    one_beam = beam_search(fixture_fsmt, ids, mask, beam_size=1, max_output_len=60)
    # FSMT's generation config forces EOS at the length cap, which Pasero does not do
    theirs = fixture_fsmt.generate(input_ids=ids, attention_mask=mask, num_beams=1, do_sample=False,
                                   max_new_tokens=60, forced_eos_token_id=None)
    for g, b, row in zip(greedy, one_beam, theirs[:, 1:].tolist()):
        assert g[0].tokens == b[0].tokens == [t for t in row if t != PAD]
        assert g[0].score == pytest.approx(b[0].score, abs=1e-4)
    assert {len(g[0].tokens) for g in greedy} != {60}, "some outputs should end before the cap"


@pytest.mark.parametrize("beam_size", [1, 3])
def test_batched_results_equal_one_sentence_at_a_time(fixture_fsmt, random_m2m100, fsmt_sources, beam_size):
    for model, sources in ((fixture_fsmt, fsmt_sources), (random_m2m100, _random_sources(6, seed=2))):
        ids, mask = _batch(sources)
        batched = pasero_search(model, ids, mask, beam_size=beam_size, n_best=beam_size, max_output_len=25)
        for source, nbest in zip(sources, batched):
            alone = pasero_search(model, *_batch([source]), beam_size=beam_size, n_best=beam_size,
                                  max_output_len=25)[0]
            assert [hyp.tokens for hyp in nbest] == [hyp.tokens for hyp in alone]
            assert [hyp.score for hyp in nbest] == pytest.approx([hyp.score for hyp in alone], abs=1e-4)


def test_left_and_right_padding_give_the_same_outputs(random_m2m100):
    sources = _random_sources(4, seed=3)
    right_ids, right_mask = _batch(sources)
    width = right_ids.size(1)
    left_ids = torch.tensor([[PAD] * (width - len(s)) + s for s in sources])
    left = pasero_search(random_m2m100, left_ids, (left_ids != PAD).long(), beam_size=2, max_output_len=15)
    right = pasero_search(random_m2m100, right_ids, right_mask, beam_size=2, max_output_len=15)
    assert [n[0].tokens for n in left] == [n[0].tokens for n in right]


def test_prefix_is_forced_and_scored(random_m2m100):
    sources = _random_sources(3, seed=4)
    ids, mask = _batch(sources)
    prefix = [7, 9]
    for beam_size in (1, 3):
        results = pasero_search(random_m2m100, ids, mask, beam_size=beam_size, max_output_len=10, prefix_ids=prefix)
        forced = score_targets(random_m2m100, ids, mask, [nbest[0].tokens for nbest in results])
        for nbest, expected in zip(results, forced):
            hyp = nbest[0]
            assert hyp.tokens[:2] == prefix
            assert len(hyp.tokens) <= 2 + 10  # the prefix does not use up max_output_len
            # the prefix' log-probabilities are part of the positional scores and of the score, as in Pasero
            assert hyp.pos_scores == pytest.approx(expected.tolist(), abs=1e-4)
            assert hyp.score == pytest.approx(float(expected.sum()), abs=1e-4)
    per_sentence = torch.tensor([[5], [6], [8]])
    results = pasero_search(random_m2m100, ids, mask, beam_size=2, max_output_len=5, prefix_ids=per_sentence)
    assert [nbest[0].tokens[0] for nbest in results] == [5, 6, 8]


def test_cross_attention_covers_each_token_and_real_source_positions(random_m2m100):
    sources = _random_sources(3, seed=5)
    ids, mask = _batch(sources)
    for beam_size in (1, 3):
        results = pasero_search(random_m2m100, ids, mask, beam_size=beam_size, max_output_len=8,
                                output_attentions=True)
        for source, nbest in zip(sources, results):
            attention = nbest[0].cross_attention
            assert attention.shape == (len(nbest[0].tokens), len(source))
            # padding had no weight, so the unpadded rows still sum to one
            assert torch.allclose(attention.sum(dim=1), torch.ones(len(nbest[0].tokens)), atol=1e-5)


def test_sampling_is_reproducible_with_a_seeded_generator(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)

    def draw(seed, **options):
        generator = torch.Generator().manual_seed(seed)
        results = pasero_search(fixture_fsmt, ids, mask, sampling=True, max_output_len=30, generator=generator,
                                **options)
        return [nbest[0].tokens for nbest in results]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    assert draw(3, top_p=0.9, temperature=0.7) == draw(3, top_p=0.9, temperature=0.7)
    greedy = [n[0].tokens for n in pasero_search(fixture_fsmt, ids, mask, beam_size=1, max_output_len=30)]
    # a single candidate leaves nothing to chance
    assert draw(4, top_k=1) == greedy
    assert draw(5, top_p=1e-6) == greedy
    assert draw(6, temperature=1e-4) == greedy  # a near-zero temperature leaves only the most probable token


def test_top_k_samples_only_among_the_k_most_probable_tokens(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    generator = torch.Generator().manual_seed(0)
    results = pasero_search(fixture_fsmt, ids, mask, sampling=True, top_k=3, max_output_len=20, generator=generator)
    for i, nbest in enumerate(results):
        tokens = torch.tensor([[EOS] + nbest[0].tokens])
        logits = fixture_fsmt(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1],
                              decoder_input_ids=tokens[:, :-1], use_cache=False).logits[0]
        ranks = (logits > logits.gather(1, tokens[0, 1:].unsqueeze(1))).sum(dim=1)
        assert ranks.max() < 3


def test_repeat_penalty_discourages_repeating_tokens(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    plain = pasero_search(fixture_fsmt, ids, mask, beam_size=1, max_output_len=20)
    penalized = pasero_search(fixture_fsmt, ids, mask, beam_size=1, max_output_len=20, repeat_penalty=1e4)
    assert any(len(set(n[0].tokens)) < len(n[0].tokens) for n in plain), "the fixture model repeats itself"
    # every token seen so far (decoder start = EOS included) gets a logit near 0 or hugely negative
    for nbest in penalized:
        assert len(set(nbest[0].tokens)) == len(nbest[0].tokens) and EOS not in nbest[0].tokens


def test_invalid_options_are_rejected(random_m2m100):
    ids, mask = _batch(_random_sources(1, seed=6))
    with pytest.raises(ValueError, match="n_best=4 is larger than beam_size=3"):
        pasero_search(random_m2m100, ids, mask, beam_size=3, n_best=4)
    with pytest.raises(ValueError, match="n_best=2 needs beam search"):
        pasero_search(random_m2m100, ids, mask, beam_size=1, n_best=2)
    with pytest.raises(ValueError, match="repeat_penalty must be > 0"):
        pasero_search(random_m2m100, ids, mask, beam_size=2, repeat_penalty=0.0)
    with pytest.raises(ValueError, match="top_k and top_p cannot be combined"):
        pasero_search(random_m2m100, ids, mask, sampling=True, top_k=5, top_p=0.9)
    with pytest.raises(ValueError, match="max_output_len must be at least 1"):
        pasero_search(random_m2m100, ids, mask, max_output_len=0)
    with pytest.raises(ValueError, match=r"prefix_ids must have shape"):
        pasero_search(random_m2m100, ids, mask, prefix_ids=torch.ones(3, 2, dtype=torch.long))


def test_precomputed_encoder_outputs_give_the_same_results(fixture_fsmt, fsmt_sources):
    ids, mask = _batch(fsmt_sources)
    encoded = fixture_fsmt.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True)
    for beam_size in (1, 3):
        reused = pasero_search(fixture_fsmt, None, mask, beam_size=beam_size, max_output_len=20,
                               encoder_outputs=encoded)
        plain = pasero_search(fixture_fsmt, ids, mask, beam_size=beam_size, max_output_len=20)
        assert [n[0].tokens for n in reused] == [n[0].tokens for n in plain]


def test_model_kwargs_reach_every_decoding_step():
    """A Pasero model whose decoder adapters are chosen by `target_lang`: the positional scores of each search equal
    teacher-forced scores under the same language (every step saw it), and not under the other one."""
    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

    torch.manual_seed(0)
    config = PaseroConfig(
        vocab_size=40, embed_dim=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, dropout=0.0, decoder_adapter_dim=8,
        decoder_adapters_by=["target_lang"], decoder_adapters=["lang:fr", "lang:de"],
    )
    model = PaseroForConditionalGeneration(config).eval()
    with torch.no_grad():  # large random weights, so that the two adapters make a visible difference
        for name, param in model.named_parameters():
            if param.dim() == 2:
                param.normal_(0, 1.0 if "adapter" in name else 0.5)
    ids, mask = _batch(_random_sources(3, seed=7, vocab_size=40))
    for beam_size in (1, 2):
        outputs = {
            lang: pasero_search(model, ids, mask, beam_size=beam_size, max_output_len=10,
                                model_kwargs={"target_lang": lang})
            for lang in ("fr", "de")
        }
        assert [n[0].tokens for n in outputs["fr"]] != [n[0].tokens for n in outputs["de"]]
        hyps = [nbest[0] for nbest in outputs["fr"]]
        same = score_targets(model, ids, mask, [h.tokens for h in hyps], model_kwargs={"target_lang": "fr"})
        other = score_targets(model, ids, mask, [h.tokens for h in hyps], model_kwargs={"target_lang": "de"})
        for hyp, expected, unexpected in zip(hyps, same, other):
            assert hyp.pos_scores == pytest.approx(expected.tolist(), abs=1e-4)
            assert hyp.pos_scores != pytest.approx(unexpected.tolist(), abs=1e-4)
