"""Determinism, rank splitting and exact resumption of the training stream."""

import json

import pytest
import torch

from pasero_hf.data import build_train_dataset


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a
    )


def _take(stream, n):
    iterator = iter(stream)
    return [next(iterator) for _ in range(n)]


@pytest.fixture
def small_config(iso_config):
    # a few batches per buffer, and ko (1036 lines) wraps around within the run: buffer and epoch boundaries are crossed
    return iso_config(targets=["ko", "de"], buffer_size=100, batch_size=512, batch_by="target_lang",
                      lang_temperature=100)


def test_same_seed_same_batches_other_seed_others(iso_config, iso_tokenizer, small_config):
    first = _take(build_train_dataset(small_config, iso_tokenizer, 2), 10)
    again = _take(build_train_dataset(small_config, iso_tokenizer, 2), 10)
    assert all(_same(a, b) for a, b in zip(first, again))
    other = iso_config(targets=["ko", "de"], buffer_size=100, batch_size=512, batch_by="target_lang",
                       lang_temperature=100, seed=7)
    reseeded = _take(build_train_dataset(other, iso_tokenizer, 2), 10)
    assert not any(_same(a, b) for a, b in zip(first, reseeded))


def test_resume_continues_exactly_where_it_stopped(small_config, iso_tokenizer):
    reference = build_train_dataset(small_config, iso_tokenizer, 2)
    expected = _take(reference, 110)
    assert max(reference.state_dict()["corpus_epochs"]) >= 1  # the run crossed an epoch of the ko corpus

    interrupted = build_train_dataset(small_config, iso_tokenizer, 2)
    assert all(_same(a, b) for a, b in zip(_take(interrupted, 23), expected))
    state = json.loads(json.dumps(interrupted.state_dict()))  # checkpoints store it as JSON
    assert state["steps"] == 23 and state["buffer_index"] > 0

    resumed = build_train_dataset(small_config, iso_tokenizer, 2)
    resumed.load_state_dict(state)
    assert all(_same(a, b) for a, b in zip(_take(resumed, 87), expected[23:]))


@pytest.mark.parametrize("behind", [2, 15, 40])
def test_state_for_an_explicit_step_count(small_config, iso_tokenizer, behind):
    # A DataLoader wrapper may have fetched batches ahead: the trainer asks for the state at its own step count,
    # possibly several buffers behind the iterator.
    expected = _take(build_train_dataset(small_config, iso_tokenizer, 2), 60)
    ahead = build_train_dataset(small_config, iso_tokenizer, 2)
    _take(ahead, 50)
    state = ahead.state_dict(steps=50 - behind)
    if behind > 10:  # a few batches per buffer: an earlier buffer
        assert state["buffer_index"] < ahead.state_dict()["buffer_index"]
    resumed = build_train_dataset(small_config, iso_tokenizer, 2)
    resumed.load_state_dict(state)
    assert all(_same(a, b) for a, b in zip(_take(resumed, 10), expected[50 - behind:]))


def test_ranks_stride_over_the_global_stream(small_config, iso_tokenizer):
    single = _take(build_train_dataset(small_config, iso_tokenizer, 2), 27)
    ranks = [build_train_dataset(small_config, iso_tokenizer, 2, rank=r, world_size=3) for r in range(3)]
    per_rank = [_take(stream, 8) for stream in ranks]
    for step in range(8):
        for rank in range(3):
            assert _same(per_rank[rank][step], single[3 * step + rank])
    states = [stream.state_dict() for stream in ranks]
    assert states[0] == states[1] == states[2]  # one state for all ranks after the same number of steps

    resumed = build_train_dataset(small_config, iso_tokenizer, 2, rank=1, world_size=3)
    resumed.load_state_dict(states[0])
    assert _same(_take(resumed, 1)[0], single[3 * 8 + 1])


def test_state_from_other_setup_is_rejected(small_config, iso_config, iso_tokenizer):
    state = build_train_dataset(small_config, iso_tokenizer, 2).state_dict()
    two_ranks = build_train_dataset(small_config, iso_tokenizer, 2, rank=0, world_size=2)
    with pytest.raises(ValueError, match="world_size is 1, this stream has 2"):
        two_ranks.load_state_dict(state)
    other_corpora = build_train_dataset(iso_config(targets=["ko"]), iso_tokenizer, 2)
    with pytest.raises(ValueError, match="corpora is"):
        other_corpora.load_state_dict(state)
    with pytest.raises(ValueError, match=r"rank 2 is not in \[0, world_size=2\)"):
        build_train_dataset(small_config, iso_tokenizer, 2, rank=2, world_size=2)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_torch_dataloader_pass_through(small_config, iso_tokenizer, num_workers):
    expected = _take(build_train_dataset(small_config, iso_tokenizer, 2), 8)
    stream = build_train_dataset(small_config, iso_tokenizer, 2)
    stream.load_state_dict(build_train_dataset(small_config, iso_tokenizer, 2).state_dict(steps=3))
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers)
    batches = iter(loader)
    for reference in expected[3:]:  # workers split the batches but the loader keeps the stream's order
        assert _same(next(batches), reference)
