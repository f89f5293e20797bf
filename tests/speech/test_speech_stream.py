"""The speech training stream: Whisper decoder inputs and labels (prompt tokens without loss), epochs reshuffled
from the seed, per-rank batches, and a saved position that resumes on exactly the next batch."""

import itertools

import pytest
import torch

from pasero_hf.data.audio import read_manifest
from pasero_hf.training.loss import IGNORE_INDEX
from pasero_hf.training.speech import SpeechBatches, SpeechTrainStream


@pytest.fixture(scope="module")
def speech_batches(speech_dir, tiny_whisper_dir):
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperProcessor

    processor = WhisperProcessor(feature_extractor=AutoFeatureExtractor.from_pretrained(tiny_whisper_dir),
                                 tokenizer=AutoTokenizer.from_pretrained(tiny_whisper_dir))
    return SpeechBatches(read_manifest(speech_dir / "train.tsv"), processor, max_target_len=448), processor


def test_decoder_inputs_carry_language_and_task_and_labels_skip_them(speech_batches):
    batches, processor = speech_batches
    tokenizer = processor.tokenizer
    translate = next(i for i, u in enumerate(batches.utterances) if u.task == "translate" and u.source_lang == "es")
    batch = batches.batch([translate])
    assert batch["input_features"].shape == (1, 80, 200)
    inputs = tokenizer.convert_ids_to_tokens(batch["decoder_input_ids"][0].tolist())
    assert inputs[:4] == ["<|startoftranscript|>", "<|es|>", "<|translate|>", "<|notimestamps|>"]
    labels = batch["labels"][0]
    assert (labels[:3] == IGNORE_INDEX).all()
    assert tokenizer.decode(labels[3:].tolist()) == "They all ate and were filled.<|endoftext|>"
    assert torch.equal(labels[3:-1], batch["decoder_input_ids"][0][4:])  # shifted by one


def test_stream_resumes_on_the_next_batch_and_splits_ranks(speech_batches):
    batches, _ = speech_batches
    def indices(stream, n):
        return [b["decoder_input_ids"].tolist() for b in itertools.islice(iter(stream), n)]

    uninterrupted = indices(SpeechTrainStream(batches, 3, seed=1), 6)  # 8 utterances: 2 batches per epoch
    first = SpeechTrainStream(batches, 3, seed=1)
    assert indices(first, 4) == uninterrupted[:4]
    resumed = SpeechTrainStream(batches, 3, seed=1)
    resumed.load_state_dict(first.state_dict())
    assert indices(resumed, 2) == uninterrupted[4:]
    assert uninterrupted[0] != uninterrupted[2]  # each epoch is reshuffled
    ranks = [indices(SpeechTrainStream(batches, 3, seed=1, rank=r, world_size=2), 2) for r in (0, 1)]
    assert [ranks[0][0], ranks[1][0], ranks[0][1], ranks[1][1]] == uninterrupted[:4]
    with pytest.raises(ValueError, match="seed is 1"):
        SpeechTrainStream(batches, 3, seed=2).load_state_dict(first.state_dict())
