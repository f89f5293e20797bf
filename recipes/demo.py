"""`make demo`: train English->Spanish on the bundled Bible corpus, then translate its test set and score it.

Steps: build the BPE tokenizer (pasero-build-tokenizer, a few seconds), train with
`accelerate launch recipes/train_mt.py -c recipes/configs/bible-en-es.yaml` for `--max-time` minutes (15 by default),
decode test.en with beam search (beam 5) and print BLEU, chrF, examples and how to load the model.

    python recipes/demo.py [--max-time MINUTES] [--threads N]
    python recipes/demo.py --prepare-only   # data and tokenizer for recipes/configs/bible-en-es.yaml
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "recipes" / "configs" / "bible-en-es.yaml"
TOKENIZER_DIR = REPO / "models" / "bible-en-es-bpe"
MODEL_DIR = REPO / "models" / "bible-en-es"


def build_tokenizer(data_dir: Path) -> None:
    if (TOKENIZER_DIR / "bpecodes").is_file() and (TOKENIZER_DIR / "dict.txt").is_file():
        print(f"tokenizer: {TOKENIZER_DIR} (already built)")
        return
    TOKENIZER_DIR.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("pasero-build-tokenizer")),
                    "-i", str(data_dir / "train.en"), str(data_dir / "train.es"),
                    "-o", str(TOKENIZER_DIR / "bpecodes"), "-d", str(TOKENIZER_DIR / "dict.txt"), "-s", "8000"],
                   check=True)
    print(f"tokenizer: 8000 BPE merges learned in {time.perf_counter() - start:.0f} s -> {TOKENIZER_DIR}")


def train(max_time: float, threads: int) -> None:
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(REPO / "accelerate_configs" / "cpu.yaml"),
               str(REPO / "recipes" / "train_mt.py"), "-c", str(CONFIG), "--max-time", str(max_time), "--reset"]
    print("training:", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def evaluate(data_dir: Path, threads: int) -> None:
    import torch

    from pasero_hf.generation.inference_corpus import get_inference_corpus
    from pasero_hf.generation.text_generator import TextGenerator

    torch.set_num_threads(threads)
    model_path = MODEL_DIR / "model_best"
    output = MODEL_DIR / "test.beam5.es"
    generator = TextGenerator.from_pretrained(model_path)
    corpus = get_inference_corpus(str(data_dir / "test.en"), ref_path=str(data_dir / "test.es"),
                                  output_path=str(output), source_lang="en", target_lang="es")
    start = time.perf_counter()
    generator.decode_corpus(corpus, beam_size=5, bleu_tok="13a", progress=True)
    elapsed = time.perf_counter() - start
    sources = (data_dir / "test.en").read_text(encoding="utf-8").splitlines()
    references = (data_dir / "test.es").read_text(encoding="utf-8").splitlines()
    hypotheses = output.read_text(encoding="utf-8").splitlines()
    scores = generator.metrics
    print(f"\ntest set ({len(sources)} lines, beam 5, {elapsed:.0f} s): BLEU {scores['bleu']:.2f}, "
          f"chrF {scores['chrf']:.2f}  (outputs: {output})")
    for source, reference, hypothesis in list(zip(sources, references, hypotheses))[:5]:
        print(f"\n  EN : {source}\n  REF: {reference}\n  OUT: {hypothesis}")
    print(f"""
The best model (by validation chrF) is in {model_path}
(last checkpoint: {MODEL_DIR / 'model_last'}; log: {MODEL_DIR / 'train.log'}; curve: {MODEL_DIR / 'training_curve.png'}).
Load it with:
    from pasero_hf.generation.text_generator import TextGenerator
    generator = TextGenerator.from_pretrained("{model_path}")
    print(generator.decode("In the beginning God created the heaven and the earth.")[0][0]["detok"])
or with transformers (after `import pasero_hf.models`): AutoModelForSeq2SeqLM.from_pretrained("{model_path}") and
AutoTokenizer.from_pretrained("{model_path}"); or from the shell:
    pasero-decode {model_path} -i {data_dir / 'test.en'} -o out.es --beam-size 5""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-time", type=float, default=15.0, help="training budget in minutes (default: 15)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="only decompress the corpus and build the tokenizer that the training config names")
    args = parser.parse_args()
    from pasero_hf.data.sample_data import bible_en_es_dir

    data_dir = bible_en_es_dir()
    start = time.perf_counter()
    build_tokenizer(data_dir)
    if args.prepare_only:
        return
    train(args.max_time, args.threads)
    evaluate(data_dir, args.threads)
    print(f"\ndemo finished in {(time.perf_counter() - start) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
