"""Train a translation model: `accelerate launch recipes/train_mt.py -c CONFIG.yaml [--option value ...]`.

Every option of the YAML file can be overridden on the command line (`--lr 1e-4`, `--model-dir DIR`, `-s en -t es`);
`--help` lists them; `--dry-run` checks the configuration and data and exits. Rerunning the same command resumes from
the last checkpoint unless `--reset` is given. Each step below is one call into `pasero_hf.training`;
`pasero-train` runs the same steps (`pasero_hf.training.run.train`) and can start the processes itself.
"""

import sys

from pasero_hf.cli.train import dry_run, push_best_model
from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.training import run as mt
from pasero_hf.training.config import load_training_config
from pasero_hf.training.lifecycle import finish_training, report_error, report_result, start_run
from pasero_hf.training.preflight import check_inputs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_training_config(argv)                  # YAML files + flags (--help lists them), all checked
        if config.run.dry_run:
            return dry_run(config)                           # the inputs checked and reported, nothing written
        if config.run.task != "mt":
            raise ConfigError(f"task: {config.run.task} runs with recipes/train_lm.py, recipes/train_st.py or "
                              "pasero-train")
        check_inputs(config)                                 # corpora, languages, files: before anything is written
        base = mt.load_base(config)                          # tokenizer + new model config, or a pretrained model
        run = start_run(config)                              # training arguments, MODEL_DIR, logging, resume point
        data = mt.build_mt_data(config, base, run)           # this rank's training stream, validation sets
        model = mt.build_mt_model(config, base, data, run)   # new (seeded) or pretrained; adapters, LoRA
        trainer = mt.build_mt_trainer(config, base, model, data, run)  # training.yaml, inference.yaml written
    except (ConfigError, FileNotFoundError, ValueError) as error:  # missing, misaligned or empty corpus too
        return report_error(error)                           # printed once, exit status 2
    result = finish_training(config, trainer, trainer.stop_callback, run.resume)  # train, save model_best/model_last
    report_result(result)                                    # where the models are
    if config.run.push_to_hub and result.is_main_process:
        return push_best_model(config.run.push_to_hub, result)  # model_best and its card, one commit
    return 0


if __name__ == "__main__":
    sys.exit(main())
