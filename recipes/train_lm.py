"""Fine-tune a causal LM (Llama, Mistral, Qwen...) on translation prompts or dialogues, fully or with LoRA:

    accelerate launch recipes/train_lm.py -c recipes/configs/lm-bible-en-es.yaml --model DIR_OR_REPO [--lora-rank 16]
    accelerate launch recipes/train_lm.py -c CONFIG.yaml --task dialogue --chat-template zephyr --model ...

Same options, corpora, sampling, trainer, resume (rerun the command) and Ctrl-C/SIGTERM behaviour as
`recipes/train_mt.py`; `--help` lists every option. Each step below is one call into `pasero_hf.training.lm`;
`pasero-train --task lm|dialogue` runs the same steps.
"""

import sys

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.training import lm
from pasero_hf.training.config import load_training_config
from pasero_hf.training.lifecycle import finish_training, report_error, report_result, start_run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_training_config(["--task", "lm", *argv])  # --task dialogue on the command line wins
        model, tokenizer = lm.load_causal_lm(config)              # any AutoModelForCausalLM, checked
        prompts = lm.prompt_format(config, tokenizer)             # prompt or chat template, saved for decoding
        train_stream, valid_sets = lm.build_lm_data(config, tokenizer, prompts)  # every file read and checked
        run = start_run(config)                                   # training arguments, MODEL_DIR, logging, resume
        model = lm.trainable_model(config, model)                 # LoRA adapters, or every weight
        trainer = lm.build_lm_trainer(config, model, tokenizer, prompts, train_stream, valid_sets, run)
    except ConfigError as error:
        return report_error(error)                                # printed once, exit status 2
    result = finish_training(config, trainer, trainer.stop_callback, run.resume)  # train, save model_best/model_last
    return report_result(result)                                  # where the models are


if __name__ == "__main__":
    sys.exit(main())
