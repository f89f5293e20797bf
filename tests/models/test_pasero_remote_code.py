"""Saved Pasero models load with `trust_remote_code=True` in a Python where pasero_hf is NOT importable."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

SOURCE = [[5, 9, 13, 22, 2], [7, 8, 30, 2, 1]]

_REMOTE_SCRIPT = """
import json, sys
try:
    import pasero_hf
except ImportError:
    pass
else:
    raise SystemExit("pasero_hf is importable: the test would prove nothing")
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model_dir, with_tokenizer = sys.argv[1], sys.argv[2] == "1"
model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
result = {"class_module": type(model).__module__}
if with_tokenizer:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    result["tokenizer_module"] = type(tokenizer).__module__
    batch = tokenizer(json.loads(sys.argv[3]), padding=True, return_tensors="pt")
    result["texts"] = tokenizer.batch_decode(model.generate(**batch, num_beams=3, max_new_tokens=12),
                                             skip_special_tokens=True)
else:
    ids = torch.tensor(json.loads(sys.argv[3]))
    result["sequences"] = model.generate(input_ids=ids, attention_mask=(ids != 1).long(), num_beams=3,
                                         max_new_tokens=6, min_new_tokens=6).tolist()
print(json.dumps(result))
"""


def run_without_pasero_hf(tmp_path: Path, model_dir: Path, with_tokenizer: bool, inputs) -> dict:
    """Run the loading script with the venv's packages but without its `.pth` hooks (`-S`), which is how the
    editable pasero_hf install is found: transformers and torch import, pasero_hf does not."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir(exist_ok=True)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))
    }
    env.update(
        PYTHONPATH=sysconfig.get_paths()["purelib"],
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", _REMOTE_SCRIPT, str(model_dir), "1" if with_tokenizer else "0", json.dumps(inputs)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_model_loads_as_remote_code_with_identical_beam_search(tiny_pasero, tmp_path):
    model = tiny_pasero(encoder_prenorm=True, decoder_prenorm=True)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    assert {"configuration_pasero.py", "modeling_pasero.py"} <= {p.name for p in model_dir.iterdir()}
    ids = torch.tensor(SOURCE)
    expected = model.generate(input_ids=ids, attention_mask=(ids != 1).long(), num_beams=3, max_new_tokens=6,
                              min_new_tokens=6).tolist()
    result = run_without_pasero_hf(tmp_path, model_dir, with_tokenizer=False, inputs=SOURCE)
    assert result["class_module"].startswith("transformers_modules.")
    assert result["sequences"] == expected


def test_converted_model_and_tokenizer_load_as_remote_code(converted_tiny_dir, tmp_path, bible_dir):
    model_dir = converted_tiny_dir
    assert "tokenization_pasero.py" in {path.name for path in model_dir.iterdir()}
    texts = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:4]
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    expected = tokenizer.batch_decode(model.generate(**batch, num_beams=3, max_new_tokens=12),
                                      skip_special_tokens=True)
    result = run_without_pasero_hf(tmp_path, model_dir, with_tokenizer=True, inputs=texts)
    assert result["class_module"].startswith("transformers_modules.")
    assert result["tokenizer_module"].startswith("transformers_modules.")
    assert result["texts"] == expected
