"""Bad requests get a 4xx naming what is wrong, and the server keeps serving; limits hold under a burst."""

import socket
import threading
import time

import httpx2 as httpx
import pytest

SENTENCE = "And God said, Let there be light."

BAD_REQUESTS = [
    # (route, body or query, status, words in the error)
    ("POST /generate", {"parameters": {}}, 422, "`inputs` is missing"),
    ("POST /generate", {"inputs": ""}, 422, "`inputs` is missing or empty"),
    ("POST /generate", {"inputs": 3}, 422, "`inputs` must be a string"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"temprature": 1.0}}, 422, "did you mean 'temperature'"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"max_new_tokens": "ten"}}, 422,
     "`parameters.max_new_tokens` must be an integer"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"temperature": 0, "do_sample": True}}, 422,
     "`temperature` must be strictly positive"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"top_p": 1.5}}, 422, "`top_p` must be > 0.0 and < 1.0"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"beam_size": 0}}, 422, "beam_size must be >= 1"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"max_new_tokens": 0}}, 422, "`max_new_tokens`"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"max_new_tokens": 51}}, 422, "between 1 and 50"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"target_lang": "fr"}}, 422,
     "unknown target language 'fr'"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"repetition_penalty": 0}}, 422,
     "`repetition_penalty` must be strictly positive"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"typical_p": 0.5}}, 422, "`typical_p` is not supported"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"frequency_penalty": 0.5}}, 422,
     "`repetition_penalty` (> 0, 1: none"),
    ("POST /generate", {"inputs": SENTENCE, "parameters": {"stop": ["a", "b", "c", "d", "e"]}}, 422, "`stop` has 5"),
    ("POST /generate", {"inputs": SENTENCE * 10}, 422, "more than max_input_tokens (40)"),
    ("POST /generate", ["not", "an", "object"], 422, "JSON object"),
    ("POST /tiny-en-es/decode", {"input": [SENTENCE], "beam_sise": 2}, 422, "did you mean 'beam_size'"),
    ("POST /tiny-en-es/decode", {"input": [SENTENCE], "n_best": 6}, 422, "n_best (6) cannot exceed beam_size"),
    ("POST /tiny-en-es/decode", {"input": [SENTENCE], "sampling": "maybe"}, 422, "`sampling` must be a boolean"),
    ("POST /tiny-en-es/decode", {"input": [SENTENCE], "sampling_topp": 0}, 422, "sampling_topp must be in (0, 1]"),
    ("POST /tiny-en-es/decode", {"input": [SENTENCE], "repeat_penalty": -1}, 422, "repeat_penalty must be > 0"),
    ("POST /tiny-en-es/decode", {"input": [SENTENCE], "source_lang": "xx"}, 422, "unknown source language 'xx'"),
    ("POST /tiny-en-es/decode", {"input": ["a", "b", "c", "d"]}, 422, "4 items, more than the limit of 3"),
    ("POST /tiny-en-es/decode", {}, 422, "`input` is missing"),
    ("GET /tiny-en-es/decode", {"input": SENTENCE, "beam_size": "two"}, 422, "`beam_size` must be an integer"),
    ("GET /nope/decode", {"input": SENTENCE}, 404, "unknown model 'nope'"),
    ("POST /nope/generate", {"inputs": SENTENCE}, 404, "unknown model 'nope'"),
]


@pytest.mark.parametrize("route, payload, status, message", BAD_REQUESTS)
def test_bad_request(limited_server, route, payload, status, message):
    method, path = route.split()
    if method == "GET":
        response = httpx.get(limited_server.url + path, params=payload)
    else:
        response = httpx.post(limited_server.url + path, json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert message in body["error"]
    assert body["error_type"] == "validation"
    # and the server still serves
    assert httpx.post(limited_server.url + "/generate", json={"inputs": SENTENCE}).status_code == 200


def test_invalid_json_utf8_and_body_size(limited_server):
    url = limited_server.url + "/generate"
    response = httpx.post(url, content=b'{"inputs": "a",', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = httpx.post(url, content=b'{"inputs": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid UTF-8 (byte 12)" in response.json()["error"]
    response = httpx.post(url, json={"inputs": "x" * 3000})
    assert response.status_code == 413 and "max_body_bytes (2000)" in response.json()["error"]
    # a chunked body (no Content-Length) is cut at the limit too
    response = httpx.post(url, content=iter([b'{"inputs": "', b"x" * 3000, b'"}']))
    assert response.status_code == 413
    assert httpx.post(url, json={"inputs": SENTENCE}).status_code == 200


def test_burst_beyond_concurrency_limit(limited_server, pasero_generator, bible_dir):
    """8 requests at once with room for 2: some get 429 (TGI's overloaded), every accepted one is correct."""
    with open(bible_dir / "test.en", encoding="utf-8") as file:
        sentences = [" ".join(next(file).split()[:10]) for _ in range(8)]  # within max_input_tokens
    barrier = threading.Barrier(len(sentences))
    results = {}

    def send(index):
        barrier.wait()
        results[index] = httpx.post(limited_server.url + "/generate",
                                    json={"inputs": sentences[index], "parameters": {"max_new_tokens": 30}},
                                    timeout=60)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(sentences))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [results[index].status_code for index in range(len(sentences))]
    assert statuses.count(429) >= 1 and statuses.count(200) >= 2, statuses
    assert set(statuses) == {200, 429}
    for index, response in results.items():
        if response.status_code == 429:
            assert response.json()["error_type"] == "overloaded"
        else:
            expected = pasero_generator.decode(sentences[index], max_output_len=30)[0][0]["detok"]
            assert response.json()["generated_text"] == expected
    assert "pasero_request_overloaded" in httpx.get(limited_server.url + "/metrics").text


def test_client_disconnect_cancels_stream(limited_server):
    """A client that goes away mid-stream stops its search: the server counts it as cancelled and serves on."""

    def cancelled():
        text = httpx.get(limited_server.url + "/metrics").text
        lines = [line for line in text.splitlines() if line.startswith("pasero_request_cancelled{")]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = cancelled()
    query = "input=In+the+beginning&sampling=true&sampling_temperature=5&max_output_len=50"
    with socket.create_connection(("127.0.0.1", limited_server.port)) as sock:
        sock.sendall(f"GET /tiny-en-es/stream?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert b"200 OK" in sock.recv(4096)
    deadline = time.monotonic() + 20
    while cancelled() <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cancelled() == before + 1
    assert httpx.post(limited_server.url + "/generate", json={"inputs": SENTENCE}).status_code == 200


def test_request_timeout(pasero_tiny_dir, server_factory):
    """A request still waiting after request_timeout gets 504, and its work is dropped."""
    with server_factory([pasero_tiny_dir], request_timeout=0.05, batch_wait_ms=1000) as running:
        response = httpx.post(running.url + "/generate", json={"inputs": SENTENCE})
        assert response.status_code == 504
        assert response.json() == {"error": "request timed out after 0.05 s (request_timeout)", "error_type": "timeout"}
        assert httpx.get(running.url + "/health").status_code == 200
