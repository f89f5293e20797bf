"""OpenAI-compatible chat routes, spoken by the `openai` client and InferenceClient.chat_completion."""

import openai
import pytest
from huggingface_hub import InferenceClient

MESSAGES = [{"role": "system", "content": "You answer in the words of the Bible."},
            {"role": "user", "content": "What did God create in the beginning?"}]


def expected_reply(chat_generator, **options):
    prompt = chat_generator.tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    return chat_generator.decode(prompt, beam_size=1, **options)[0][0]


def test_openai_client(server, chat_generator):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    assert [model.id for model in client.models.list()] == ["tiny-en-es", "tiny-chat"]
    expected = expected_reply(chat_generator, max_output_len=12)
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=12, temperature=0)
    assert reply.choices[0].message.content == expected["detok"]
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens == len(expected["tokens"]) and reply.usage.prompt_tokens > 10
    chunks = list(client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=12, temperature=0,
                                                 stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == expected["detok"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_openai_sampling_is_seeded(server, chat_generator):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    expected = expected_reply(chat_generator, max_output_len=10, sampling=True, temperature=0.8, seed=4)
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=10, temperature=0.8,
                                           seed=4)
    assert reply.choices[0].message.content == expected["detok"]


def test_inference_client_chat_completion(server, chat_generator):
    client = InferenceClient(base_url=server.url)
    expected = expected_reply(chat_generator, max_output_len=12)["detok"]
    out = client.chat_completion(MESSAGES, max_tokens=12, temperature=0)
    assert out.choices[0].message.content == expected
    streamed = client.chat_completion(MESSAGES, max_tokens=12, temperature=0, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed) == expected


def test_chat_errors(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="chat template"):
        client.chat.completions.create(model="tiny-en-es", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.UnprocessableEntityError, match="messages"):
        client.chat.completions.create(model="tiny-chat", messages=[])
