"""`TextGenerator.decode(streamer=...)`: the per-token hook that token streaming (pasero-serve) relies on."""

import pytest


class Recorder:
    """A transformers-style streamer: `put(ids)` per step (the decoder prompt first), then `end()`."""

    def __init__(self):
        self.puts, self.ended = [], False

    def put(self, ids):
        self.puts.append(ids.reshape(-1).tolist())

    def end(self):
        self.ended = True


@pytest.mark.parametrize("options", [{"beam_size": 1}, {"sampling": True, "seed": 2, "sampling_topp": 0.9}])
def test_pasero_search_streams_each_token(pasero_generator, options):
    recorder = Recorder()
    streamed = pasero_generator.decode("And God saw the light.", streamer=recorder, max_output_len=30, **options)
    plain = pasero_generator.decode("And God saw the light.", max_output_len=30, **options)
    assert streamed == plain  # the hook changes nothing
    tokens = pasero_generator.tokenizer.convert_ids_to_tokens([ids[0] for ids in recorder.puts[1:]])
    assert tokens == plain[0][0]["tokens"] and recorder.ended
    assert recorder.puts[0] == [pasero_generator.model.config.decoder_start_token_id]  # the prompt comes first


def test_generate_streams_each_token(nllb_generator):
    recorder = Recorder()
    output = nllb_generator.decode("And God saw the light.", source_lang="eng_Latn", target_lang="spa_Latn",
                                   search="hf", streamer=recorder)[0][0]
    assert nllb_generator.tokenizer.convert_ids_to_tokens([ids[0] for ids in recorder.puts[1:]]) == output["tokens"]
    assert recorder.ended


def test_streamer_needs_one_sentence_and_no_beams(pasero_generator):
    with pytest.raises(ValueError, match="one sentence at a time"):
        pasero_generator.decode("a", "b", streamer=Recorder(), beam_size=1)
    with pytest.raises(ValueError, match="greedy search or sampling"):
        pasero_generator.decode("a", streamer=Recorder(), beam_size=5)
