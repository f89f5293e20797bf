"""`repetition_penalty` over the three APIs: the outputs of transformers' own `generate(repetition_penalty=...)` on the
same model (its RepetitionPenaltyLogitsProcessor), computed here independently of the server's search."""

import httpx2 as httpx
import openai
import pytest
import torch
from huggingface_hub import InferenceClient
from huggingface_hub.errors import ValidationError

SENTENCE = "And God said, Let there be light: and there was light."
MESSAGES = [{"role": "user", "content": "What did God create in the beginning?"}]
PENALTY = 1.5


def generate(generator, text: str, **kwargs) -> str:
    """transformers' generate on the generator's model and tokenizer, decoded as text."""
    model, tokenizer = generator.model, generator.tokenizer
    batch = tokenizer(text, return_tensors="pt", add_special_tokens=model.config.is_encoder_decoder)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, **kwargs)
    if not model.config.is_encoder_decoder:
        out = out[:, batch["input_ids"].size(1):]
    return tokenizer.decode(out[0], skip_special_tokens=True)


@pytest.fixture(scope="module")
def client(server):
    return InferenceClient(base_url=server.url)


def test_tgi_greedy_stream_and_pasero_api(client, server, pasero_generator):
    expected = generate(pasero_generator, SENTENCE, num_beams=1, max_new_tokens=40, repetition_penalty=PENALTY)
    plain = "".join(client.text_generation(SENTENCE, max_new_tokens=40, stream=True))  # streams are greedy
    penalized = "".join(client.text_generation(SENTENCE, max_new_tokens=40, stream=True, repetition_penalty=PENALTY))
    assert penalized == expected != plain
    response = httpx.post(f"{server.url}/tiny-en-es/decode", json={
        "input": [SENTENCE], "beam_size": 1, "max_output_len": 40, "repeat_penalty": PENALTY})
    assert response.status_code == 200, response.text
    assert response.json()["detok"] == [expected]
    # pasero-decode's TextGenerator, same option
    assert pasero_generator.decode(SENTENCE, beam_size=1, max_output_len=40,
                                   repetition_penalty=PENALTY)[0][0]["detok"] == expected


def test_tgi_beam_search(client, pasero_generator):
    # Pasero's beam search ranks as generate's with length_penalty 0 and early stopping (tests/generation)
    expected = generate(pasero_generator, SENTENCE, num_beams=4, length_penalty=0.0, early_stopping=True,
                        max_new_tokens=60, repetition_penalty=PENALTY)
    parameters = {"num_beams": 4, "length_penalty": 0.0, "max_new_tokens": 60}
    plain = client.translation(SENTENCE, generate_parameters=parameters).translation_text
    penalized = client.translation(SENTENCE, generate_parameters={**parameters, "repetition_penalty": PENALTY})
    assert penalized.translation_text == expected != plain
    # the model's default search (beam 5, Pasero's length normalization): pasero-decode's output
    default = client.text_generation(SENTENCE, max_new_tokens=40, repetition_penalty=PENALTY)
    assert default == pasero_generator.decode(SENTENCE, max_output_len=40, repeat_penalty=PENALTY)[0][0]["detok"]
    with pytest.raises(ValidationError, match="`repetition_penalty` must be strictly positive"):
        client.text_generation(SENTENCE, repetition_penalty=0.0)


def test_openai_routes(server, chat_generator):
    prompt = chat_generator.tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    expected = generate(chat_generator, prompt, max_new_tokens=12, repetition_penalty=PENALTY)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    plain = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=12, temperature=0)
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=12, temperature=0,
                                           extra_body={"repetition_penalty": PENALTY})
    assert reply.choices[0].message.content == expected != plain.choices[0].message.content
    # OpenAI's additive penalties are refused, naming the field and the alternative
    for name in ("frequency_penalty", "presence_penalty"):
        with pytest.raises(openai.UnprocessableEntityError, match=f"`{name}` is not supported.*repetition_penalty"):
            client.chat.completions.create(model="tiny-chat", messages=MESSAGES, **{name: 0.5})
    assert client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=2, frequency_penalty=0,
                                          presence_penalty=0).choices[0].message.content
    with pytest.raises(Exception, match="frequency_penalty"):
        InferenceClient(base_url=server.url).chat_completion(MESSAGES, max_tokens=4, frequency_penalty=0.5)
