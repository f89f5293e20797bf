"""The TGI protocol, spoken by huggingface_hub's InferenceClient against our server on loopback."""

import httpx2 as httpx
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, ValidationError

SENTENCE = "And God said, Let there be light: and there was light."


@pytest.fixture(scope="module")
def client(server):
    return InferenceClient(base_url=server.url)


def test_text_generation_equals_text_generator(client, pasero_generator):
    expected = pasero_generator.decode(SENTENCE, beam_size=1, max_output_len=40, return_scores=True)[0][0]
    text = client.text_generation(SENTENCE, max_new_tokens=40, do_sample=False)
    # TGI's default search is the model's: beam 5 for this one, as pasero-decode
    assert text == pasero_generator.decode(SENTENCE, max_output_len=40)[0][0]["detok"]
    out = client.text_generation(SENTENCE, max_new_tokens=40, details=True, decoder_input_details=True,
                                 seed=1, do_sample=True, top_k=1)  # top-k 1 sampling is greedy search
    assert out.generated_text == expected["detok"]
    assert out.details.finish_reason == "eos_token"
    assert out.details.generated_tokens == len(expected["tokens"])
    assert [token.logprob for token in out.details.tokens] == pytest.approx(
        [-score for score in expected["pos_scores"]], abs=1e-4)
    assert "".join(token.text for token in out.details.tokens) == out.generated_text
    assert out.details.tokens[-1].special and out.details.seed == 1
    assert [token.text for token in out.details.prefill][-1] == "</s>"
    assert len(out.details.prefill) > 5


def test_stream(client, pasero_generator):
    expected = pasero_generator.decode(SENTENCE, beam_size=1, max_output_len=40)[0][0]
    pieces = list(client.text_generation(SENTENCE, max_new_tokens=40, stream=True))
    assert len(pieces) == len(expected["tokens"]) and "".join(pieces) == expected["detok"]
    events = list(client.text_generation(SENTENCE, max_new_tokens=40, stream=True, details=True))
    assert [event.generated_text for event in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1].generated_text == expected["detok"]
    assert events[-1].details.finish_reason == "eos_token"
    assert events[-1].details.generated_tokens == len(expected["tokens"])
    assert [event.index for event in events] == list(range(1, len(events) + 1))


def test_stop_sequences_and_length(client, pasero_generator):
    full = pasero_generator.decode(SENTENCE, max_output_len=40)[0][0]["detok"]  # the model's default beam search
    stop = full.split()[2]
    out = client.text_generation(SENTENCE, max_new_tokens=40, stop=[stop], details=True)
    assert out.generated_text == full[: full.index(stop) + len(stop)]
    assert out.details.finish_reason == "stop_sequence"
    assert "".join(token.text for token in out.details.tokens) == out.generated_text
    greedy = pasero_generator.decode(SENTENCE, beam_size=1, max_output_len=40)[0][0]["detok"]  # streaming's search
    stop = greedy.split()[2]
    pieces = list(client.text_generation(SENTENCE, max_new_tokens=40, stop=[stop], stream=True))
    assert "".join(pieces) == greedy[: greedy.index(stop) + len(stop)]
    short = client.text_generation(SENTENCE, max_new_tokens=3, details=True)
    assert short.details.finish_reason == "length" and short.details.generated_tokens == 3


def test_best_of_and_full_text(client):
    out = client.text_generation(SENTENCE, max_new_tokens=20, do_sample=True, best_of=2, seed=5, details=True,
                                 return_full_text=True)
    assert out.generated_text.startswith(SENTENCE)
    assert len(out.details.best_of_sequences) == 1
    best = sum(token.logprob for token in out.details.tokens)
    other = sum(token.logprob for token in out.details.best_of_sequences[0].tokens)
    assert best >= other


def test_translation_task_languages(client, pasero_generator):
    out = client.translation(SENTENCE, src_lang="en", tgt_lang="es", generate_parameters={"num_beams": 2})
    assert out.translation_text == pasero_generator.decode(SENTENCE, beam_size=2)[0][0]["detok"]
    with pytest.raises(HfHubHTTPError, match="unknown target language 'fr'") as error:  # translation() does not
        client.translation(SENTENCE, src_lang="en", tgt_lang="fr")                      # map TGI's error types
    assert error.value.response.status_code == 422


def test_generate_routes_info_health_metrics(server, pasero_generator):
    body = httpx.post(f"{server.url}/generate", json={
        "inputs": SENTENCE, "parameters": {"source_lang": "en", "target_lang": "es", "beam_size": 3}}).json()
    assert body == {"generated_text": pasero_generator.decode(SENTENCE, beam_size=3)[0][0]["detok"]}
    per_model = httpx.post(f"{server.url}/tiny-en-es/generate", json={"inputs": SENTENCE,
                                                                      "parameters": {"beam_size": 3}}).json()
    assert per_model == body
    compat = httpx.post(f"{server.url}/", json={"inputs": SENTENCE, "parameters": {"beam_size": 3}}).json()
    assert compat[0]["generated_text"] == body["generated_text"]
    info = httpx.get(f"{server.url}/info").json()
    assert info["model_id"] == "tiny-en-es" and info["max_input_tokens"] == 1024
    assert info["model_pipeline_tag"] == "translation" and info["models"] == ["tiny-en-es", "tiny-chat"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert '# TYPE pasero_request_count counter' in text
    assert 'pasero_request_count{route="/generate",status="200"}' in text
    assert 'pasero_queue_size{model="tiny-en-es"} 0' in text
    assert 'pasero_request_duration_seconds_bucket{route="/generate",le="+Inf"}' in text


def test_client_validation_errors(client):
    with pytest.raises(ValidationError, match="temperature"):
        client.text_generation(SENTENCE, temperature=0.0, do_sample=True)
    with pytest.raises(ValidationError, match="top_p"):
        client.text_generation(SENTENCE, top_p=1.0)
    with pytest.raises(ValidationError, match="max_new_tokens"):
        client.text_generation(SENTENCE, max_new_tokens=0)
    with pytest.raises(ValidationError, match="best_of"):
        client.text_generation(SENTENCE, best_of=2)
