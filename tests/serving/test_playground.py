"""The web playground in headless Chromium: type a sentence, click, read the translation (and its n-best list)."""

from pasero_hf.serving import parse_model_spec

SENTENCE = "In the beginning God created the heaven and the earth."


def test_playground_translates(server, browser_page, artifacts_dir, pasero_generator):
    page = browser_page
    page.goto(f"{server.url}/tiny-en-es")
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#source_lang") == "en" and page.input_value("#target_lang") == "es"
    page.fill("#input", SENTENCE)
    page.fill("#n_best", "3")
    page.click("#translate")
    page.wait_for_selector(".hyp.best")
    expected = pasero_generator.decode(SENTENCE, beam_size=5, n_best=3)[0]
    assert page.locator(".hyp .detok").all_inner_texts() == [hyp["detok"] for hyp in expected]
    assert "score" in page.locator(".hyp.best .score").inner_text()
    assert "POST /tiny-en-es/decode" in page.inner_text("#api-request")
    assert '"nbest"' in page.inner_text("#api-response")
    page.screenshot(path=str(artifacts_dir / "playground.png"))  # docs/images/playground.png is one of these


def test_playground_streams_tokens(server, browser_page, artifacts_dir, pasero_generator):
    page = browser_page
    page.goto(f"{server.url}/")
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#model") == "tiny-en-es"
    page.fill("#input", SENTENCE)
    page.check("#stream")
    page.fill("#beam_size", "1")
    page.click("#translate")
    page.wait_for_selector(".hyp.best .score")
    expected = pasero_generator.decode(SENTENCE, beam_size=1)[0][0]
    assert page.inner_text(".hyp.best .detok") == expected["detok"]
    assert page.locator(".tokens span").all_inner_texts() == expected["tokens"]
    assert "/tiny-en-es/stream?" in page.inner_text("#api-request")
    page.screenshot(path=str(artifacts_dir / "playground-stream.png"))


def test_playground_shows_errors(server, browser_page):
    page = browser_page
    page.goto(f"{server.url}/tiny-en-es")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#input", SENTENCE)
    page.fill("#beam_size", "0")
    page.click("#translate")
    page.wait_for_selector(".error")
    assert "beam_size must be >= 1" in page.inner_text(".error")


def test_model_spec():
    assert parse_model_spec("models/tiny:0") == ("models/tiny", "cuda:0")
    assert parse_model_spec("models/tiny:cuda:1") == ("models/tiny", "cuda:1")
    assert parse_model_spec("models/tiny/:cpu") == ("models/tiny", "cpu")
    assert parse_model_spec("org/model") == ("org/model", "cpu")
