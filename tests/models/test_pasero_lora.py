"""LoRA on the Pasero model through PEFT: train, save, reload, merge."""

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from pasero_hf.models.pasero import PaseroForConditionalGeneration

# The documented LoRA targets: attention projections (self and cross) and the feed-forward layers.
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
SOURCE = torch.tensor([[5, 9, 13, 2], [7, 8, 30, 2]])
LABELS = torch.tensor([[11, 12, 2], [20, 21, 2]])


def test_lora_train_save_reload_merge(tiny_pasero, tmp_path):
    base = tiny_pasero()
    base.save_pretrained(tmp_path / "base")
    peft_model = get_peft_model(
        base, LoraConfig(task_type="SEQ_2_SEQ_LM", r=4, lora_alpha=8, target_modules=TARGET_MODULES)
    )
    wrapped = [name for name, _ in peft_model.named_modules() if name.endswith(".lora_A")]
    # 2 encoder layers x (4 attention + 2 ffn) + 2 decoder layers x (8 attention + 2 ffn)
    assert len(wrapped) == 2 * 6 + 2 * 10
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)

    optimizer = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(8):
        # the per-batch adapter selectors pass through PEFT untouched
        loss = peft_model(input_ids=SOURCE, labels=LABELS, source_lang="en", target_lang="es").loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    peft_model.eval()
    peft_model.save_pretrained(tmp_path / "lora")
    with torch.no_grad():
        trained = peft_model(input_ids=SOURCE, labels=LABELS).logits
    reloaded = PeftModel.from_pretrained(
        PaseroForConditionalGeneration.from_pretrained(tmp_path / "base"), tmp_path / "lora"
    ).eval()
    merged = reloaded.merge_and_unload()
    assert type(merged) is PaseroForConditionalGeneration
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        assert torch.allclose(trained, merged(input_ids=SOURCE, labels=LABELS).logits, atol=1e-5)
        base_logits = tiny_pasero()(input_ids=SOURCE, labels=LABELS).logits
    assert not torch.allclose(trained, base_logits, atol=1e-3)  # the LoRA weights did change the model

    generated = merged.generate(input_ids=SOURCE, num_beams=2, max_new_tokens=5)
    assert torch.equal(generated, peft_model.generate(input_ids=SOURCE, num_beams=2, max_new_tokens=5))


def test_lora_target_that_matches_nothing_fails_loudly(tiny_pasero):
    with pytest.raises(ValueError, match="Target modules .*query.* not found"):
        get_peft_model(tiny_pasero(), LoraConfig(task_type="SEQ_2_SEQ_LM", r=2, target_modules=["query"]))
