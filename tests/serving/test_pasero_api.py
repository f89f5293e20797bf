"""Pasero's HTTP API over loopback: /list, /help, /{model}/decode (GET, JSON, form), /{model}/stream, /{model}/info.
Outputs must equal TextGenerator's (pasero-decode's) with the same options."""

import itertools
import json

import httpx2 as httpx
import pytest


@pytest.fixture(scope="module")
def sentences(bible_dir):
    with open(bible_dir / "test.en", encoding="utf-8") as file:
        return [line.strip() for line in itertools.islice(file, 6)]


def sse_events(response):
    return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


def test_list_help_info(server):
    models = httpx.get(f"{server.url}/list").json()
    assert [model["name"] for model in models] == ["tiny-en-es", "tiny-chat"]
    pasero, chat = models
    assert pasero["task"] == "translation" and pasero["architecture"] == "pasero"
    assert (pasero["source_langs"], pasero["target_langs"]) == (["en"], ["es"])
    assert chat["task"] == "chat" and chat["architecture"] == "llama"
    help_ = httpx.get(f"{server.url}/help").json()
    assert help_["options"]["beam_size"] == {"type": "int", "default": 5, "help": "beam size; 1 is greedy search"}
    assert {"input", "source_lang", "target_lang", "sampling_topp", "n_best", "max_output_len"} <= set(help_["options"])
    info = httpx.get(f"{server.url}/tiny-en-es/info").json()
    assert info["limits"]["max_concurrent_requests"] == 64 and info["device"] == "cpu"
    assert info["decoding_options"]["beam_size"] == 5


def test_decode_get_equals_text_generator(server, pasero_generator, sentences):
    response = httpx.get(f"{server.url}/tiny-en-es/decode", params=[("input", s) for s in sentences[:3]]
                         + [("beam_size", "1"), ("max_output_len", "30")])
    assert response.status_code == 200, response.text
    body = response.json()
    expected = pasero_generator.decode(*sentences[:3], beam_size=1, max_output_len=30, return_scores=True)
    assert body["detok"] == [nbest[0]["detok"] for nbest in expected]
    assert body["tokens"] == [nbest[0]["tokens"] for nbest in expected]
    assert body["score"] == pytest.approx([nbest[0]["score"] for nbest in expected], abs=1e-4)
    assert body["input"] == sentences[:3] and body["model"] == "tiny-en-es" and body["elapsed"] > 0


def test_decode_post_json_nbest(server, pasero_generator, sentences):
    response = httpx.post(f"{server.url}/tiny-en-es/decode", json={
        "input": sentences[3:5], "beam_size": 5, "n_best": 3, "source_lang": "en", "target_lang": "es"})
    body = response.json()
    expected = pasero_generator.decode(*sentences[3:5], beam_size=5, n_best=3, return_scores=True)
    assert [[hyp["detok"] for hyp in nbest] for nbest in body["nbest"]] == [
        [hyp["detok"] for hyp in nbest] for nbest in expected]
    scores = [hyp["normalized_score"] for hyp in body["nbest"][0]]
    assert scores == sorted(scores) and len(body["nbest"][0]) == 3
    assert len(body["pos_scores"][0]) == len(body["tokens"][0])


def test_decode_form_post(server, pasero_generator, sentences):
    response = httpx.post(f"{server.url}/tiny-en-es/decode",
                          data={"input": sentences[0], "beam_size": "2", "return_scores": "false"})
    body = response.json()
    assert body["detok"] == [pasero_generator.decode(sentences[0], beam_size=2)[0][0]["detok"]]
    assert "pos_scores" not in body


@pytest.mark.parametrize("options", [{"beam_size": 1}, {"sampling": True, "seed": 3, "sampling_topk": 20}])
def test_stream_one_event_per_token(server, pasero_generator, sentences, options):
    params = [("input", sentences[1]), ("max_output_len", "40")] + [(k, str(v).lower()) for k, v in options.items()]
    with httpx.stream("GET", f"{server.url}/tiny-en-es/stream", params=params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == {}
    tokens = events[:-1]
    expected = pasero_generator.decode(sentences[1], max_output_len=40, return_scores=True, **options)[0][0]
    assert [event["token"] for event in tokens] == expected["tokens"]
    assert "".join(event["detok"] for event in tokens) == expected["detok"]
    assert tokens[-1]["output"]["score"] == pytest.approx(expected["score"], abs=1e-4)


def test_stream_rejects_several_inputs(server, sentences):
    response = httpx.get(f"{server.url}/tiny-en-es/stream", params=[("input", s) for s in sentences[:2]])
    assert response.status_code == 422 and "one input at a time" in response.json()["error"]


def test_concurrent_requests_are_batched(server, pasero_generator, sentences):
    """Requests sent at once share decoding batches and get the outputs they would get alone."""
    from concurrent.futures import ThreadPoolExecutor

    def metrics_batches():
        """(batches, inputs) decoded so far by the model, from /metrics (0, 0 before its first batch)."""
        values = {"count": 0.0, "sum": 0.0}
        for line in httpx.get(f"{server.url}/metrics").text.splitlines():
            for name in values:
                if line.startswith(f'pasero_batch_inputs_{name}{{model="tiny-en-es"}}'):
                    values[name] = float(line.split()[-1])
        return values["count"], values["sum"]

    batches_before, inputs_before = metrics_batches()
    with ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(lambda s: httpx.post(f"{server.url}/tiny-en-es/decode",
                                                    json={"input": [s], "beam_size": 5}, timeout=60).json(),
                               sentences))
    batches_after, inputs_after = metrics_batches()
    assert [body["detok"][0] for body in bodies] == [nbest[0]["detok"] for nbest in
                                                     pasero_generator.decode(*sentences, beam_size=5)]
    assert inputs_after - inputs_before == 6
    assert batches_after - batches_before < 6  # at least two requests shared a batch
