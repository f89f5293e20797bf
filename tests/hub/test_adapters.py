"""Adapters pushed alone (`--adapters-only`): Pasero bottleneck adapters and PEFT LoRA load onto their base model,
pulled by repo id in a fresh process, and give the logits of the model they were pushed from."""


import pytest
import torch
from huggingface_hub import HfApi

from tests.hub.conftest import TOKEN, run_cli, run_py

IDS = [[71, 19, 520, 8, 2]]
DECODER_IDS = [[2, 40, 31]]


def logits(model) -> list:
    with torch.no_grad():
        out = model(input_ids=torch.tensor(IDS), decoder_input_ids=torch.tensor(DECODER_IDS)).logits
    return out[0, -1, :50].tolist()


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a decoder adapter lang:es (random weights), saved whole (as training saves model_best)."""
    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

    config = PaseroConfig.from_pretrained(tiny_model_dir, decoder_adapter_dim=8, decoder_adapters=["lang:es"],
                                          adapter_zero_init=False)
    torch.manual_seed(0)
    model = PaseroForConditionalGeneration(config).eval()
    base = PaseroForConditionalGeneration.from_pretrained(tiny_model_dir)
    missing = model.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all("adapters" in key for key in missing)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "adapters" in name:
                param.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("adapters") / "model"
    model.save_pretrained(path)
    for name in ("bpecodes", "dict.txt", "tokenizer_config.json", "inference.yaml"):
        (path / name).write_bytes((tiny_model_dir / name).read_bytes())
    return path, logits(model), logits(base.eval())


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    from pasero_hf.models.pasero import PaseroForConditionalGeneration

    base = PaseroForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"])).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("lora") / "model"
    model.save_pretrained(path)
    return path, logits(model)


@pytest.mark.slow
def test_adapters_alone_load_onto_the_base_by_repo_id(hub, hub_env, pushed_tiny, adapter_dir, lora_dir):
    path, expected, base_logits = adapter_dir
    result = run_cli(["pasero-push", path, "pasero/tiny-en-es-adapters", "--adapters-only", "--base-model",
                      pushed_tiny], hub_env)
    assert result.returncode == 0, result.stderr
    lora_path, lora_expected = lora_dir
    result = run_cli(["pasero-push", lora_path, "pasero/tiny-en-es-lora", "--adapters-only", "--base-model",
                      pushed_tiny, "--lang-pairs", "en-es"], hub_env)
    assert result.returncode == 0, result.stderr

    api = HfApi(endpoint=hub.url, token=TOKEN)
    files = set(api.list_repo_files("pasero/tiny-en-es-adapters"))
    assert {"adapters.safetensors", "pasero_adapters.json", "config.json", "README.md"} <= files
    assert "model.safetensors" not in files
    lora_files = set(api.list_repo_files("pasero/tiny-en-es-lora"))
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= lora_files
    card = open(api.hf_hub_download("pasero/tiny-en-es-lora", "README.md")).read()
    assert f"base_model: {pushed_tiny}" in card and "- lora" in card

    code = f"""
import json, torch, pasero_hf
from peft import AutoPeftModelForSeq2SeqLM
from pasero_hf.hub import load_adapter_model

def logits(model):
    with torch.no_grad():
        out = model(input_ids=torch.tensor({IDS}), decoder_input_ids=torch.tensor({DECODER_IDS})).logits
    return out[0, -1, :50].tolist()

adapters = load_adapter_model("pasero/tiny-en-es-adapters")
lora = AutoPeftModelForSeq2SeqLM.from_pretrained("pasero/tiny-en-es-lora").eval()
print(json.dumps({{"adapters": logits(adapters), "lora": logits(lora)}}))
"""
    pulled = run_py(code, hub_env)
    assert torch.allclose(torch.tensor(pulled["adapters"]), torch.tensor(expected), atol=1e-5)
    assert not torch.allclose(torch.tensor(expected), torch.tensor(base_logits), atol=1e-3)  # adapters matter
    assert torch.allclose(torch.tensor(pulled["lora"]), torch.tensor(lora_expected), atol=1e-5)


def test_adapters_only_errors(hub, tiny_model_dir, adapter_dir):
    from pasero_hf.hub import PushError, push_to_hub

    with pytest.raises(PushError, match="needs --base-model REPO_ID"):
        push_to_hub(adapter_dir[0], "pasero/x-adapters", adapters_only=True, endpoint=hub.url, token=TOKEN)
    with pytest.raises(PushError, match=f"{tiny_model_dir}: no adapter weights"):
        push_to_hub(tiny_model_dir, "pasero/x-adapters", adapters_only=True, base_model="pasero/tiny-en-es",
                    endpoint=hub.url, token=TOKEN)
    assert not HfApi(endpoint=hub.url, token=TOKEN).repo_exists("pasero/x-adapters")
