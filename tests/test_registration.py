"""Auto-class registration is lazy: tokenizing imports neither torch nor transformers, and the Auto classes know our
model types as soon as they are used, in any program (fresh interpreters, not this test process)."""

import subprocess
import sys


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_tokenization_imports_neither_torch_nor_transformers():
    out = run_python(
        "import sys, pasero_hf.tokenization\n"
        "from pasero_hf.tokenization import PaseroBPE, Dictionary\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))"
    )
    assert out == "[]"


def test_auto_classes_know_pasero_after_import_pasero_hf():
    out = run_python(
        "import pasero_hf\n"
        "from transformers import AutoConfig, AutoModelForSeq2SeqLM\n"
        "config = AutoConfig.for_model('pasero', encoder_layers=1, decoder_layers=1, embed_dim=8, vocab_size=16,\n"
        "                              encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,\n"
        "                              decoder_ffn_dim=8)\n"
        "print(type(AutoModelForSeq2SeqLM.from_config(config)).__name__, AutoConfig.for_model('pasero_nllb_moe').model_type)"
    )
    assert out == "PaseroForConditionalGeneration pasero_nllb_moe"


def test_auto_classes_imported_first_then_pasero_hf():
    out = run_python(
        "from transformers import AutoTokenizer, AutoConfig\n"
        "import pasero_hf.tokenization\n"
        "print(AutoConfig.for_model('pasero').model_type)"
    )
    assert out == "pasero"
