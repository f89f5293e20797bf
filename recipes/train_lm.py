"""Fine-tune a causal LM (Llama, Mistral, Qwen...) on translation prompts or dialogues, fully or with LoRA:

    accelerate launch recipes/train_lm.py -c recipes/configs/lm-bible-en-es.yaml --model DIR_OR_REPO [--lora-rank 16]
    accelerate launch recipes/train_lm.py -c CONFIG.yaml --task dialogue --chat-template zephyr --model ...

Same options, corpora, sampling, trainer, resume (rerun the command) and Ctrl-C/SIGTERM behaviour as
`recipes/train_mt.py`; `--help` lists every option. `pasero-train --task lm|dialogue` runs the same steps.
"""

import sys

from pasero_hf.training.config import ConfigError, load_training_config
from pasero_hf.training.lm import (
    build_lm_data,
    build_lm_trainer,
    load_causal_lm,
    prompt_format,
    start_run,
    trainable_model,
)


def main(argv: list[str]) -> int:
    config = load_training_config(["--task", "lm", *argv])  # --task dialogue on the command line wins
    model, tokenizer = load_causal_lm(config)
    prompts = prompt_format(config, tokenizer)  # the prompt template or chat template, saved for decoding
    train_stream, valid_sets = build_lm_data(config, tokenizer, prompts)  # every file read and checked first
    run = start_run(config, train_stream)  # training arguments, MODEL_DIR, logging, the checkpoint to resume from
    model = trainable_model(config, model)  # LoRA adapters, or every weight
    trainer = build_lm_trainer(config, model, tokenizer, prompts, train_stream, valid_sets, run)
    trainer.train(resume_from_checkpoint=run.resume_path)
    trainer.save_final_checkpoint()  # model_last (and model_best, at each better validation) are already saved
    if run.is_main:
        print(f"best model: {config.model_dir / 'model_best'}\nlast model: {config.model_dir / 'model_last'}")
    return 0


if __name__ == "__main__":
    if "-h" in sys.argv or "--help" in sys.argv:
        from pasero_hf.training.config import argument_parser

        argument_parser(prog="train_lm.py").parse_args(["--help"])
    try:
        sys.exit(main(sys.argv[1:]))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
