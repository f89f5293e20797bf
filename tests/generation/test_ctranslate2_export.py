"""`pasero-export --format ctranslate2`: the exported model computes the same function as ours.

Checked with real models and CTranslate2 itself: the original-Pasero tiny fixture (post-norm, shared embeddings)
against the original `pasero-decode` outputs, random Pasero models covering the other architecture options and
adapters, and a tiny NLLB-layout M2M100, by comparing per-token teacher-forced scores and greedy outputs with the
PyTorch path. Bad input must fail clearly and leave nothing behind.
"""

import json
import subprocess
import sys

import pytest
import torch

from pasero_hf.export import ExportError, export_ctranslate2
from pasero_hf.generation.text_generator import TextGenerator

FIXTURE = "pasero-tiny-en-es"


@pytest.mark.slow
def test_greedy_outputs_equal_original_pasero_on_the_bible_test_set(tiny_ct2, bible_test, fixtures_dir):
    """fp32 greedy: all 344 lines equal the original pasero-decode's (= our PyTorch path's, tested elsewhere)."""
    expected = (fixtures_dir / FIXTURE / "test.greedy.es").read_text(encoding="utf-8").splitlines()
    generator = TextGenerator.from_pretrained(tiny_ct2, beam_size=1)
    outputs = [nbest[0]["detok"] for nbest in generator.decode(*bible_test)]
    assert len(outputs) == len(expected) == 344
    assert sum(a == b for a, b in zip(outputs, expected)) == 344


def test_export_directory_contents(tiny_ct2):
    names = {path.name for path in tiny_ct2.iterdir()}
    assert {"model.bin", "config.json", "shared_vocabulary.json", "bpecodes", "dict.txt", "tokenizer_config.json",
            "generation_config.json", "inference.yaml", "pasero_export.json"} <= names
    info = json.loads((tiny_ct2 / "pasero_export.json").read_text())
    assert info["format"] == "ctranslate2" and info["quantization"] == "float32"
    assert info["model_config"]["model_type"] == "pasero"
    assert not [path for path in tiny_ct2.parent.iterdir() if path.name.startswith(".")]  # no staging left


def tiny_pasero_tokenizer(fixtures_dir):
    from pasero_hf.tokenization import PaseroTokenizer

    fixture = fixtures_dir / FIXTURE
    return PaseroTokenizer(bpe_file=str(fixture / "bpecodes"), dict_file=str(fixture / "dict.txt"))


def random_pasero_dir(path, tokenizer, seed=0, **overrides):
    """A random Pasero model (std 0.3 weights, so outputs depend on the input) saved with the fixture's tokenizer."""
    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

    kwargs = dict(vocab_size=len(tokenizer), embed_dim=32, encoder_layers=2, decoder_layers=2,
                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                  encoder_max_len=128, decoder_max_len=128, dropout=0.0)
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = PaseroForConditionalGeneration(PaseroConfig(**kwargs)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layer_norm" not in name and "layernorm" not in name:
                parameter.normal_(0, 0.3)
            elif name.endswith("weight"):
                parameter.uniform_(0.5, 1.5)
            else:
                parameter.normal_(0, 0.1)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def assert_same_function(pytorch_dir, ct2_dir, sentences, atol=2e-4, **decode_kwargs):
    """Teacher-forced per-token scores (every output position) and greedy outputs agree."""
    ours = TextGenerator.from_pretrained(pytorch_dir, beam_size=1, max_output_len=20, backend="pytorch")
    exported = TextGenerator.from_pretrained(ct2_dir, beam_size=1, max_output_len=20)
    assert exported.backend is not None and ours.backend is None
    greedy = [n[0]["detok"] for n in ours.decode(*sentences, **decode_kwargs)]
    assert [n[0]["detok"] for n in exported.decode(*sentences, **decode_kwargs)] == greedy
    references = [sentence.upper() for sentence in sentences]  # any target text: its scores are compared
    expected = ours.decode(*sentences, teacher_forcing=references, return_scores=True, **decode_kwargs)
    actual = exported.decode(*sentences, teacher_forcing=references, return_scores=True, **decode_kwargs)
    for mine, theirs in zip(actual, expected):
        assert mine[0]["tokens"] == theirs[0]["tokens"]
        assert mine[0]["pos_scores"] == pytest.approx(theirs[0]["pos_scores"], abs=atol)


@pytest.mark.parametrize("overrides", [
    # pre-norm, separate embeddings and output projection, learned positions, embedding norms, gelu, no key bias,
    # unscaled attention, another layer norm epsilon
    dict(encoder_prenorm=True, decoder_prenorm=True, shared_embeddings=False, tied_output_projection=False,
         encoder_positional_encoding="learned", decoder_positional_encoding="learned", encoder_embed_norm=True,
         decoder_embed_norm=True, activation_fn="gelu", attention_key_bias=False, scale_attn=False, norm_eps=1e-6),
    # post-norm encoder, pre-norm decoder, no biases, unscaled embeddings, shared embeddings tied to the output
    dict(decoder_prenorm=True, has_bias=False, scale_embed=False, activation_fn="gelu_tanh"),
], ids=["prenorm-separate-learned", "mixed-norms-no-bias"])
def test_architecture_options(fixtures_dir, bible_test, tmp_path, overrides):
    model_dir = random_pasero_dir(tmp_path / "model", tiny_pasero_tokenizer(fixtures_dir), **overrides)
    ct2_dir = export_ctranslate2(model_dir, tmp_path / "ct2")
    assert_same_function(model_dir, ct2_dir, bible_test[:12])


def test_prenorm_adapters_are_exported_as_layers(fixtures_dir, bible_test, tmp_path):
    """Target-language adapters: the stack fixed for -t fr equals the PyTorch model decoding into fr."""
    tokenizer = tiny_pasero_tokenizer(fixtures_dir)
    model_dir = random_pasero_dir(
        tmp_path / "model", tokenizer, encoder_prenorm=True, decoder_prenorm=True, encoder_adapter_dim=8,
        decoder_adapter_dim=8, encoder_adapters=["domain:bible"], decoder_adapters_by=["target_lang"],
        decoder_adapters=["lang:es", "lang:fr"], decoder_adapter_layer_ids=[1],
    )
    with pytest.raises(ExportError, match="fixed stack.*--target-lang"):
        export_ctranslate2(model_dir, tmp_path / "no-lang")
    ct2_dir = export_ctranslate2(model_dir, tmp_path / "ct2-fr", target_lang="fr")
    assert json.loads((ct2_dir / "pasero_export.json").read_text())["adapters"] == {
        "encoder": ["domain:bible"], "decoder": ["lang:fr"]}
    assert TextGenerator.from_pretrained(ct2_dir).target_langs == ["fr"]
    assert_same_function(model_dir, ct2_dir, bible_test[:12], target_lang="fr")
    # the other adapter gives another function: the export really applies the chosen one
    es = TextGenerator.from_pretrained(model_dir, beam_size=1, max_output_len=20).decode(
        *bible_test[:12], target_lang="es")
    fr = TextGenerator.from_pretrained(ct2_dir).decode(*bible_test[:12], target_lang="fr", beam_size=1,
                                                       max_output_len=20)
    assert [n[0]["detok"] for n in es] != [n[0]["detok"] for n in fr]


def test_postnorm_adapters_are_refused(fixtures_dir, tmp_path):
    model_dir = random_pasero_dir(tmp_path / "model", tiny_pasero_tokenizer(fixtures_dir), encoder_adapter_dim=8)
    with pytest.raises(ExportError, match="post-norm and has adapters.*PyTorch backend"):
        export_ctranslate2(model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    export_ctranslate2(model_dir, tmp_path / "out", encoder_adapters=[])  # an empty stack is exact


def test_nllb_with_language_codes(nllb_dir, bible_test, tmp_path):
    ct2_dir = export_ctranslate2(nllb_dir, tmp_path / "nllb-ct2")
    assert_same_function(nllb_dir, ct2_dir, bible_test[:12], source_lang="eng_Latn", target_lang="spa_Latn")
    exported = TextGenerator.from_pretrained(ct2_dir, beam_size=1, max_output_len=12)
    hypothesis = exported.decode(bible_test[0], source_lang="eng_Latn", target_lang="fra_Latn")[0][0]
    assert hypothesis["prompt_tokens"] == ["</s>", "fra_Latn"]
    assert 0 < len(hypothesis["tokens"]) <= 12  # max_output_len counts generated tokens, not the forced code


def test_quantized_exports_decode(tiny_ct2, pasero_tiny_dir, bible_test, tmp_path):
    """Quantized weights are smaller and compute nearly the same function (teacher-forced scores)."""
    fp32 = TextGenerator.from_pretrained(tiny_ct2, beam_size=1)
    references = [n[0]["detok"] for n in fp32.decode(*bible_test[:10])]
    expected = fp32.decode(*bible_test[:10], teacher_forcing=references, return_scores=True)
    size = (tiny_ct2 / "model.bin").stat().st_size
    for quantization, max_size, tolerance in (("int8", 0.35, 0.2), ("bfloat16", 0.6, 0.1)):
        out = export_ctranslate2(pasero_tiny_dir, tmp_path / quantization, quantization=quantization)
        assert json.loads((out / "pasero_export.json").read_text())["quantization"] == quantization
        assert (out / "model.bin").stat().st_size < max_size * size
        actual = TextGenerator.from_pretrained(out).decode(*bible_test[:10], teacher_forcing=references,
                                                           return_scores=True)
        differences = [abs(a - b) for mine, theirs in zip(actual, expected)
                       for a, b in zip(mine[0]["pos_scores"], theirs[0]["pos_scores"])]
        assert 0 < sum(differences) / len(differences) < tolerance, quantization


def test_original_pasero_directory_is_converted_on_the_fly(fixtures_dir, tmp_path, bible_test):
    out = export_ctranslate2(fixtures_dir / FIXTURE, tmp_path / "ct2")
    expected = (fixtures_dir / FIXTURE / "test.greedy.es").read_text(encoding="utf-8").splitlines()[:5]
    outputs = TextGenerator.from_pretrained(out, beam_size=1).decode(*bible_test[:5])
    assert [n[0]["detok"] for n in outputs] == expected


# -- bad input ------------------------------------------------------------------------------------------------------


def test_unknown_quantization(pasero_tiny_dir, tmp_path):
    with pytest.raises(ExportError, match="unknown quantization 'int4'.*int8_float32"):
        export_ctranslate2(pasero_tiny_dir, tmp_path / "out", quantization="int4")
    assert not (tmp_path / "out").exists()


def test_directory_without_weights(pasero_tiny_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(pasero_tiny_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ExportError, match="has no weights"):
        export_ctranslate2(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_moe_is_refused(tmp_path):
    from pasero_hf.models.nllb_moe import PaseroNllbMoeConfig, PaseroNllbMoeForConditionalGeneration

    config = PaseroNllbMoeConfig(vocab_size=64, d_model=16, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=32,
                                 decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
                                 num_experts=4, max_position_embeddings=32)
    PaseroNllbMoeForConditionalGeneration(config).save_pretrained(tmp_path / "moe")
    with pytest.raises(ExportError, match="Mixture-of-Experts.*PyTorch backend"):
        export_ctranslate2(tmp_path / "moe", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(tiny_ct2, pasero_tiny_dir):
    with pytest.raises(FileExistsError, match="not empty"):
        export_ctranslate2(pasero_tiny_dir, tiny_ct2)


def run_export(*args, preamble=""):
    code = f"{preamble}\nimport sys\nfrom pasero_hf.cli.export import main\nsys.exit(main({list(map(str, args))!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_cli_errors_and_missing_ctranslate2(pasero_tiny_dir, tmp_path):
    result = run_export(pasero_tiny_dir, tmp_path / "out", "--quantization", "int3")
    assert result.returncode == 1 and "pasero-export: error: unknown quantization 'int3'" in result.stderr
    result = run_export(tmp_path / "nowhere", tmp_path / "out")
    assert result.returncode == 1 and "model directory not found" in result.stderr
    # ctranslate2 not importable (as when it is not installed): the message says how to install it
    result = run_export(pasero_tiny_dir, tmp_path / "out", preamble="import sys; sys.modules['ctranslate2'] = None")
    assert result.returncode == 1 and "CTranslate2 is not installed: `pip install ctranslate2`" in result.stderr
    assert not (tmp_path / "out").exists()
