"""Pasero translation Space: translate with a pasero-hf model from the Hub (or a local directory).

    PASERO_MODEL=user/name python spaces/pasero-translate/app.py      # http://127.0.0.1:7860

PASERO_MODEL is a Hub repo id or a model directory (default: the first `models:` entry of this Space's README);
PASERO_REVISION picks a branch or commit. The app offers the model's languages, beam search / sampling, an n-best
list with scores and the cross-attention of the best translation, and an API endpoint (`api_name="translate"`):

    from gradio_client import Client
    Client("http://127.0.0.1:7860").predict("Hello!", "en", "es", 5, 1, False, 1.0, api_name="/translate")
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import gradio as gr
import yaml

from pasero_hf.generation import TextGenerator
from pasero_hf.plotting import heatmap

HERE = Path(__file__).resolve().parent
MAX_INPUT_CHARS = 1000
MAX_BEAM = 8
EXAMPLES = ["And God said, Let there be light: and there was light.", "The truth shall make you free.",
            "Blessed are the peacemakers."]


def default_model() -> str:
    """PASERO_MODEL, else the model named in this Space's README header (`models:`)."""
    if os.environ.get("PASERO_MODEL"):
        return os.environ["PASERO_MODEL"]
    match = re.match(r"^---\n(.*?)\n---", (HERE / "README.md").read_text(encoding="utf-8"), re.S)
    models = (yaml.safe_load(match.group(1)) or {}).get("models") if match else None
    if not models:
        raise SystemExit("set PASERO_MODEL to a Hub repo id or a model directory")
    return models[0]


def last_cross_attention(generator: TextGenerator) -> str:
    layers = getattr(generator.model.config, "decoder_layers", None) or 1
    return f"dec_{layers - 1}_cross_attn"  # layers count from 0, as in Pasero


def build_demo(generator: TextGenerator, model_name: str) -> gr.Blocks:
    sources = generator.source_langs or [None]
    targets = generator.target_langs or [None]
    attention_layer = last_cross_attention(generator) if generator.is_encoder_decoder else None

    def translate(text: str, source_lang: str | None, target_lang: str | None, beam_size: int, n_best: int,
                  sampling: bool, temperature: float):
        """Translate `text`: (best translation, n-best table [rank, NLL, translation], attention heatmap)."""
        text = (text or "").strip()
        if not text:
            raise gr.Error("Enter a sentence to translate.")
        if len(text) > MAX_INPUT_CHARS:
            raise gr.Error(f"At most {MAX_INPUT_CHARS} characters, please ({len(text)} given).")
        beam_size = max(1, min(int(beam_size), MAX_BEAM))
        n_best = max(1, min(int(n_best), beam_size))
        options = {"sampling": True, "temperature": float(temperature), "beam_size": 1, "n_best": 1} if sampling \
            else {"beam_size": beam_size, "n_best": n_best}
        try:
            hypotheses = generator.decode(text, source_lang=source_lang or None, target_lang=target_lang or None,
                                          return_scores=True, return_layers=[attention_layer] if attention_layer else [],
                                          **options)[0]
        except ValueError as error:
            raise gr.Error(str(error)) from None
        table = [[rank + 1, round(float(hyp["score"]), 4), hyp["detok"]] for rank, hyp in enumerate(hypotheses)]
        best = hypotheses[0]
        figure = None
        if attention_layer and attention_layer in best:
            figure = heatmap(best["src_tokens"], best["tokens"], best[attention_layer],
                             title=f"cross-attention ({attention_layer}, mean of heads)")
        return best["detok"], table, figure

    with gr.Blocks(title="Pasero translation") as demo:
        gr.Markdown(f"# Pasero translation\nModel: `{model_name}` (pasero-hf). The n-best list is ranked "
                    "by Pasero's length-normalized score; NLL is each translation's negative log-likelihood in nats.")
        with gr.Row():
            with gr.Column():
                source = gr.Textbox(label="Source text", lines=4, max_length=MAX_INPUT_CHARS)
                with gr.Row():
                    source_lang = gr.Dropdown(sources, value=sources[0], label="Source language",
                                              allow_custom_value=sources == [None])
                    target_lang = gr.Dropdown(targets, value=targets[0], label="Target language",
                                              allow_custom_value=targets == [None])
                with gr.Accordion("Decoding options", open=False):
                    beam_size = gr.Slider(1, MAX_BEAM, value=5, step=1, label="Beam size")
                    n_best = gr.Slider(1, MAX_BEAM, value=3, step=1, label="N-best (at most the beam size)")
                    sampling = gr.Checkbox(False, label="Sampling instead of beam search")
                    temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Sampling temperature")
                button = gr.Button("Translate", variant="primary")
            with gr.Column():
                output = gr.Textbox(label="Translation", lines=4, elem_id="translation")
                nbest = gr.Dataframe(headers=["rank", "NLL", "translation"], label="N-best list",
                                     interactive=False)
                attention = gr.Plot(label="Attention")
        inputs = [source, source_lang, target_lang, beam_size, n_best, sampling, temperature]
        gr.Examples([[example] for example in EXAMPLES], inputs=[source])
        button.click(translate, inputs, [output, nbest, attention], api_name="translate", concurrency_limit=2)
        source.submit(translate, inputs, [output, nbest, attention], api_visibility="private")
    demo.queue(max_size=32)
    return demo


def main() -> None:
    model = default_model()
    generator = TextGenerator.from_pretrained(model, revision=os.environ.get("PASERO_REVISION") or None)
    demo = build_demo(generator, model)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), max_file_size="1mb")


if __name__ == "__main__":
    main()
