"""Auto-class registration without import-time tricks: `import pasero_hf` and `import pasero_hf.tokenization` load
neither torch nor transformers; `import pasero_hf.models` (or `pasero_hf.register()`, or any pasero-hf entry point)
makes the Auto classes know our model types. Each check runs in a fresh interpreter, not this test process."""

import json
import subprocess
import sys


def run_python(code: str, cwd=None) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_tokenization_imports_neither_torch_nor_transformers():
    out = run_python(
        "import sys, pasero_hf, pasero_hf.tokenization\n"
        "from pasero_hf.tokenization import PaseroBPE, Dictionary, detokenize, train_bpe\n"
        "from pasero_hf.tokenization import cli\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))"
    )
    assert out == "[]"


TINY = ("config = AutoConfig.for_model('pasero', encoder_layers=1, decoder_layers=1, embed_dim=8, vocab_size=16,\n"
        "    encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8)\n"
        "print(type(AutoModelForSeq2SeqLM.from_config(config)).__name__,"
        " AutoConfig.for_model('pasero_nllb_moe').model_type)")


def test_import_pasero_hf_models_registers_the_auto_classes():
    out = run_python("import pasero_hf.models\nfrom transformers import AutoConfig, AutoModelForSeq2SeqLM\n" + TINY)
    assert out == "PaseroForConditionalGeneration pasero_nllb_moe"


def test_register_after_the_auto_classes_were_imported():
    """`import pasero_hf` alone leaves the Auto classes as they are (the error transformers gives, so that the checks
    prove something); `pasero_hf.register()` then works even though transformers was imported first."""
    out = run_python(
        "from transformers import AutoConfig, AutoModelForSeq2SeqLM\nimport pasero_hf\n"
        "try:\n    AutoConfig.for_model('pasero')\nexcept ValueError as error:\n"
        "    print('unknown' if 'pasero' in str(error) else error)\n"
        "pasero_hf.register()\n" + TINY)
    assert out.splitlines() == ["unknown", "PaseroForConditionalGeneration pasero_nllb_moe"]


def test_text_generator_and_the_converted_model_load_by_themselves(converted_tiny_dir):
    """The library's own entry points register: TextGenerator, then plain Auto classes in the same program."""
    out = run_python(
        "from pasero_hf.generation import TextGenerator\n"
        f"generator = TextGenerator.from_pretrained({str(converted_tiny_dir)!r})\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        f"model = AutoModelForSeq2SeqLM.from_pretrained({str(converted_tiny_dir)!r})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(converted_tiny_dir)!r})\n"
        "print(type(model).__name__, type(tokenizer).__name__)"
    )
    assert out == "PaseroForConditionalGeneration PaseroTokenizer"


FIRST_IMPORTS = [
    "pasero_hf.cli.export", "pasero_hf.export.ctranslate2", "pasero_hf.generation.ctranslate2_backend",
    "pasero_hf.generation.text_generator", "pasero_hf.tokenization.tokenization_pasero", "pasero_hf.hub.push",
    "pasero_hf.serving.app", "pasero_hf.training.run", "pasero_hf.models.pasero.modeling_pasero",
]


# Third-party libraries the entry modules import, loaded once before the fork below: they are not what is tested
# (a circular import can only run through pasero_hf's own modules, none of which the parent has imported).
THIRD_PARTY = ["torch", "transformers", "accelerate", "datasets", "huggingface_hub", "safetensors", "tokenizers",
               "sacrebleu", "yaml", "fastapi", "uvicorn", "ctranslate2", "peft"]
PRELOADED = "from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer, Trainer, pipeline"


def test_no_entry_module_meets_a_half_imported_module_through_registration():
    """Registration runs inside the first import of `pasero_hf.models`, whichever module that import started from:
    it must never need a module that is still being imported (a circular import), so each entry is imported first
    in its own interpreter: a child forked from one that has loaded the third-party libraries but no pasero_hf
    module (one launch instead of one per entry: loading torch and transformers is most of each import's time)."""
    code = f"""
import importlib, json, os, sys, traceback
for name in {THIRD_PARTY!r}:
    importlib.import_module(name)
{PRELOADED}
assert not [m for m in sys.modules if m.split(".")[0] == "pasero_hf"], "the parent must not import pasero_hf"
failed = {{}}
for name in {FIRST_IMPORTS!r}:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            status = 0
        except BaseException:
            os.write(write, traceback.format_exc()[-600:].encode())
            status = 1
        os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        error = pipe.read()
    if os.waitpid(pid, 0)[1] != 0:
        failed[name] = error or "the child died"
print(json.dumps(failed))
"""
    assert json.loads(run_python(code)) == {}
