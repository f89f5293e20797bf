"""Pasero's own MT training configurations (tests/fixtures/pasero-examples, copied unmodified from naver/pasero) load,
pass `--dry-run` on a Pasero-style data directory built from the bundled iso-codes corpora, and the TED, TED-top20
and ParaCrawl ones train a few steps.

Overrides, all on the command line: model size and step budget (`--embed-dim 32 ... --max-steps 2`), as any user
trying a config on a laptop would; the bundled corpora have 7 of TED-top20's 19 languages and 4 of ParaCrawl-Euro's
26, so the language lists of the copied files are cut to those (`_restrict_languages`, written to a copy; the
TED-top20 training run keeps 3 languages to stay short).
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pasero_hf.cli.train import main
from pasero_hf.data.sample_data import iso_codes_dir
from pasero_hf.training.config import load_training_config
from pasero_hf.training.pasero_options import PASERO_DEFAULTS, UNSUPPORTED

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "pasero-examples"
MODELS = Path(__file__).parents[1] / "fixtures" / "pasero-models"
LANGS = ["ar", "de", "fr", "it", "ja", "ko", "ru"]  # iso-codes translations bundled in recipes/data
LINES = 120
TINY = ["--embed-dim", "32", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2", "--encoder-ffn-dim", "64", "--decoder-ffn-dim", "64", "--batch-size", "512",
        "--max-source-len", "64", "--max-target-len", "64", "--max-steps", "2", "--valid-interval", "2",
        "--save-interval", "2", "--log-interval", "1", "--warmup", "1", "--valid-max-lines", "4",
        "--max-output-len", "8", "--dtype", "float32", "--valid-beam-size", "1"]
MT_CONFIGS = ["TED/training.yaml", "TED-top20/training.yaml", "TED-top20/training-en-centric.yaml",
              "ParaCrawl/training.yaml", "ParaCrawl-Euro/training.yaml", "ParaCrawl-Euro/training-en-centric.yaml"]


def _multi_parallel(root: Path, prefix: str, start: int) -> None:
    """prefix.{en,ar,de,...}: English lines of the iso-codes corpora with their translations (empty where a language
    lacks one, as in Pasero's multi-parallel TED files)."""
    translations: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        pair = iso_codes_dir() / f"en-{lang}"
        english = (pair / "train.en").read_text(encoding="utf-8").splitlines()
        other = (pair / f"train.{lang}").read_text(encoding="utf-8").splitlines()
        for en, text in zip(english, other):
            translations.setdefault(en, {})[lang] = text
    keys = sorted(k for k, v in translations.items() if len(v) >= 5)[start:start + LINES]
    root.mkdir(parents=True, exist_ok=True)
    for lang in ["en", *LANGS]:
        lines = [key if lang == "en" else translations[key].get(lang, "") for key in keys]
        (root / f"{prefix}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def pasero_workdir(tmp_path_factory) -> Path:
    """A working directory laid out as Pasero's download scripts leave it (data/TED, data/ParaCrawl, data/FLORES)."""
    work = tmp_path_factory.mktemp("pasero-user")
    ted = work / "data" / "TED"
    _multi_parallel(ted, "train", 0)
    _multi_parallel(ted, "valid", LINES)
    shutil.copytree(MODELS / "TED-de-en", ted / "de-en")
    shutil.copytree(MODELS / "TED-top20", ted / "top20")
    paracrawl = work / "data" / "ParaCrawl"
    shutil.copytree(MODELS / "ParaCrawl-fr-en", paracrawl / "fr-en")
    flores = work / "data" / "FLORES"
    _multi_parallel(flores, "FLORES-valid", 2 * LINES)
    euro = work / "data" / "ParaCrawl-Euro"
    (euro / "bilingual").mkdir(parents=True)
    for name in ("bpecodes", "dict.txt"):  # a shared multilingual BPE, like ParaCrawl-Euro's
        shutil.copy(MODELS / "TED-top20" / name, euro / name)
    euro_langs = ["en", "fr", "de", "it"]
    for a, b in [(a, b) for i, a in enumerate(euro_langs) for b in euro_langs[i + 1:]]:
        for lang in (a, b):  # bilingual files cut from the multi-parallel data: ParaCrawl.{pair}.{lang}
            shutil.copy(ted / f"train.{lang}", euro / "bilingual" / f"ParaCrawl.{a}-{b}.{lang}")
            if (a, b) == ("en", "fr"):
                shutil.copy(ted / f"train.{lang}", paracrawl / f"ParaCrawl.{a}-{b}.{lang}")
    (flores / "euro").mkdir()
    for lang in euro_langs:  # per-target-language valid sets whose sources are FLORES-valid.src
        shutil.copy(flores / f"FLORES-valid.{lang}", flores / "euro" / f"FLORES-valid.{lang}")
    shutil.copy(flores / "FLORES-valid.ko", flores / "euro" / "FLORES-valid.src")
    return work


def _restrict_languages(config: Path, langs: list[str], out: Path) -> Path:
    """A copy of `config` whose train/valid language lists keep only `langs` (the languages of the bundled data)."""
    content = yaml.safe_load(config.read_text(encoding="utf-8"))
    for key in ("train_corpora", "valid_corpora"):
        for corpus in content.get(key, []):
            for field in ("source_langs", "target_langs"):
                if field in corpus and corpus[field] != ["src"]:
                    corpus[field] = [lang for lang in corpus[field] if lang in langs]
            if "lang_pairs" in corpus:
                corpus["lang_pairs"] = [p for p in corpus["lang_pairs"] if set(p.split("-")) <= set(langs)]
    out.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return out


def _config_path(name: str, work: Path, langs: list[str] | None = None) -> tuple[Path, list[str]]:
    """(config file, extra arguments) for one of Pasero's example configs (`langs`: fewer languages still)."""
    source = EXAMPLES / name
    if name == "TED/training.yaml":
        return source, ["-s", "de", "-t", "en"]
    if name == "ParaCrawl/training.yaml":
        return source, ["-s", "fr", "-t", "en"]
    extra = ["-o", "models/euro"] if name.startswith("ParaCrawl-Euro") else []  # Pasero's files leave it to -o
    prefix = "small-" if langs else ""
    langs = langs or (LANGS + ["en"] if name.startswith("TED-top20") else ["en", "fr", "de", "it"])
    copy = _restrict_languages(source, langs, work / (prefix + name.replace("/", "-")))
    return copy, extra


@pytest.fixture
def pasero_train(pasero_workdir, monkeypatch, capsys):
    """pasero_train(*args) -> (exit status, stdout, stderr) of `pasero-train` run in the Pasero user's directory."""
    monkeypatch.chdir(pasero_workdir)

    def run(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.mark.parametrize("name", MT_CONFIGS)
def test_pasero_example_config_loads_and_passes_dry_run(name, pasero_workdir, pasero_train):
    config, extra = _config_path(name, pasero_workdir)
    loaded = load_training_config(["-c", str(config), *extra])
    pasero = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert loaded.model.arch == pasero["arch"]
    assert loaded.model.hyperparameters["dropout"] == pasero["dropout"]
    for key in ("encoder_layers", "decoder_layers"):
        if key in pasero:
            assert loaded.model.hyperparameters[key] == pasero[key]
    assert loaded.optimization.lr == pasero["lr"] and loaded.data.batch_size == pasero["batch_size"]
    status, out, err = pasero_train("-c", str(config), *extra, "--dry-run")
    assert status == 0, err[-3000:]
    assert "nothing was written" in out
    table = out[out.index("# corpora:"):]
    assert "prob" in table and "valid" in table
    model_dir = pasero_workdir / str(loaded.model_dir)
    assert not model_dir.exists()


def _train_rows(stdout: str) -> list[list[str]]:
    table = stdout[stdout.index("# corpora:"):].splitlines()[2:]
    return [line.split() for line in table if line.startswith("train ")]


def test_dry_run_table_lists_pairs_lines_and_temperature_probabilities(pasero_workdir, pasero_train):
    config, extra = _config_path("TED-top20/training-en-centric.yaml", pasero_workdir)
    status, out, err = pasero_train("-c", str(config), *extra, "--dry-run")
    assert status == 0, err[-3000:]
    rows = _train_rows(out)
    # bidir: True -> every source language paired with English in both directions
    assert {row[2] for row in rows} == {f"{lang}-en" for lang in LANGS} | {f"en-{lang}" for lang in LANGS}
    probabilities = [float(row[5]) for row in rows]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    pairs = {row[2]: int(row[4].replace(",", "")) for row in rows}
    # lang_temperature 5: p ∝ pairs ** (1/5)
    expected = {pair: n ** 0.2 for pair, n in pairs.items()}
    total = sum(expected.values())
    for row in rows:
        assert float(row[5]) == pytest.approx(expected[row[2]] / total, abs=1e-3)
    lines = {row[2]: int(row[3].replace(",", "")) for row in rows}
    assert all(lines[p] == LINES for p in lines) and any(pairs[p] < LINES for p in pairs)  # empty lines skipped


@pytest.mark.slow
@pytest.mark.parametrize("name", ["TED/training.yaml", "TED-top20/training.yaml", "ParaCrawl/training.yaml"])
def test_pasero_example_config_trains(name, pasero_workdir, pasero_train):
    # TED-top20: 3 of its languages (6 training directions, 10 validation ones) keep the run short
    config, extra = _config_path(name, pasero_workdir, ["ar", "de", "fr", "en"] if "top20" in name else None)
    tag = name.split("/")[0]
    metrics = ["--metrics", "bleu", "chrf", "chrf++", "len_ratio", "--eval-lc"] if tag == "TED" else []
    status, out, err = pasero_train("-c", str(config), *extra, *TINY, *metrics, "--model-dir", f"models/{tag}",
                                    "--cache-dir", "cache")
    assert status == 0, err[-3000:]
    model_dir = pasero_workdir / "models" / tag
    assert (model_dir / "model_last" / "config.json").is_file()
    written = yaml.safe_load((model_dir / "training.yaml").read_text(encoding="utf-8"))
    pasero = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert written["dropout"] == pasero["dropout"] and written["embed_dim"] == 32
    model_config = json.loads((model_dir / "model_last" / "config.json").read_text())
    assert model_config["embed_dim"] == 32 and model_config["dropout"] == pasero["dropout"]
    assert model_config["encoder_layers"] == 1
    if metrics:  # Pasero's metric names in validation
        state = json.loads((model_dir / "checkpoint-2" / "trainer_state.json").read_text())
        evaluation = next(entry for entry in state["log_history"] if "eval_chrf++" in entry)
        assert {"eval_bleu", "eval_chrf", "eval_len_ratio"} <= set(evaluation)


def test_doc_level_config_is_refused_with_the_pasero_reason(pasero_train):
    status, out, err = pasero_train("-c", str(EXAMPLES / "Doc-level-MT" / "training.yaml"), "--dry-run")
    assert status == 2
    assert "training.yaml:12: option 'task' (Pasero) is not supported with value 'doc_level_translation'" in err
    assert "the doc_level_translation task is not implemented" in err
    assert err.count("error:") == 1


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_every_refused_pasero_option_names_itself_in_yaml_and_as_a_flag(name, tmp_path):
    kind = UNSUPPORTED[name][0]
    default = PASERO_DEFAULTS.get(name)
    value = {"bool": not default, "list": ["x"], "value": 7 if default != 7 else 8}[kind]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"lr": 0.001, name: value}, sort_keys=False), encoding="utf-8")
    with pytest.raises(Exception, match=rf"c.yaml:2: option '{name}' \(Pasero\) is not supported"):
        load_training_config(["-c", str(config)])
    flag = "--" + ("no-" if kind == "bool" and not value else "") + name.replace("_", "-")
    flag = [flag] + ({"bool": [], "list": ["x"], "value": [str(value)]}[kind])
    with pytest.raises(Exception, match=rf"option '{name}' \(Pasero\) is not supported"):
        load_training_config(flag)


def test_top_level_model_options_as_yaml_and_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("arch: transformer_small\nembed_dim: 256\nencoder_layers: 3\nmodel_args: {decoder_layers: 2, "
                      "embed_dim: 128}\nshared_embeddings: false\ntrain_corpora: [train, dev]\n", encoding="utf-8")
    loaded = load_training_config(["-c", str(config), "--dropout", "0.3", "--no-tied-output-projection",
                                   "--valid-corpora", "valid", "test"])
    assert loaded.model.hyperparameters == {"decoder_layers": 2, "embed_dim": 256, "encoder_layers": 3,
                                            "dropout": 0.3, "shared_embeddings": False,
                                            "tied_output_projection": False}
    assert [c.paths for c in loaded.data.train_corpora] == [["train"], ["dev"]]
    assert [c.paths for c in loaded.data.valid_corpora] == [["valid"], ["test"]]
    with pytest.raises(Exception, match=r"dropout: expected float.*c.yaml:1"):
        config.write_text("dropout: high\n", encoding="utf-8")
        load_training_config(["-c", str(config)])


def test_readme_table_lists_every_pasero_option():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| Pasero option | here |"):]
    names = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    from pasero_hf.training.config import MODEL_HYPERPARAMETERS

    assert set(UNSUPPORTED) <= names and set(MODEL_HYPERPARAMETERS) <= names
    assert {"train_corpora", "metrics", "average_checkpoints", "keep_interval", "target_dict", "continue"} <= names


def test_sentencepiece_tokenizer(tmp_path, bible_dir):
    """tokenizer: sentencepiece with the model's own vocabulary, and with a fairseq dict that restricts it (Pasero's
    SetVocabulary: pieces outside the dict are never produced, the text still round-trips)."""
    import sentencepiece

    from pasero_hf.training.run import load_tokenizer

    sentencepiece.SentencePieceTrainer.train(
        input=str(bible_dir / "train.en"), model_prefix=str(tmp_path / "spm"), vocab_size=200, num_threads=1,
        input_sentence_size=2000, minloglevel=2)
    config = tmp_path / "c.yaml"
    config.write_text(f"data_dir: {tmp_path}\ntokenizer: sentencepiece\ntokenizer_path: spm.model\n", encoding="utf-8")
    own = load_tokenizer(load_training_config(["-c", str(config)]))
    text = "And God said"
    ids = own(text)["input_ids"]
    assert ids[-1] == own.eos_token_id and max(ids) < len(own) and len(own) >= 200
    assert own.decode(ids, skip_special_tokens=True) == text

    pieces = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    used = pieces.EncodeAsPieces(text)
    dropped = {piece for piece in used if len(piece) > 1}
    assert dropped
    kept = [pieces.IdToPiece(i) for i in range(3, pieces.GetPieceSize()) if pieces.IdToPiece(i) not in dropped]
    (tmp_path / "dict.txt").write_text("".join(f"{piece} 1\n" for piece in kept), encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8") + "dict: dict.txt\n", encoding="utf-8")
    restricted = load_tokenizer(load_training_config(["-c", str(config)]))
    tokens = restricted.tokenize(text)
    assert not dropped & set(tokens) and restricted.unk_token not in tokens, tokens
    ids = restricted(text)["input_ids"]
    assert restricted.unk_token_id not in ids
    assert restricted.decode(ids, skip_special_tokens=True) == text


def test_a_training_yaml_written_by_pasero_loads(fixtures_dir):
    """Pasero writes every option (most at their defaults) into MODEL_DIR/training.yaml: it loads as it is."""
    path = fixtures_dir / "pasero-tiny-en-es" / "training.yaml"
    pasero = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert len(pasero) > 190
    config = load_training_config(["-c", str(path)])
    for name in ("embed_dim", "encoder_layers", "encoder_ffn_dim", "dropout", "shared_embeddings"):
        assert config.model.hyperparameters[name] == pasero[name]
    assert config.data.seed == pasero["seed"] and config.run.metrics == pasero["metrics"]
    assert config.data.buffer_size == pasero["buffer_size"] and config.run.log_interval == pasero["log_interval"]
    assert config.run.dataloader_pin_memory == pasero["dataloader_pin_memory"]
