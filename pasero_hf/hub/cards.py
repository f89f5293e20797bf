"""Model cards: facts gathered from a model directory (and its training run), rendered from `model_cards/` templates.

The metadata (language, license, library_name, pipeline_tag, tags, datasets, base_model, model-index) is built with
`huggingface_hub.ModelCardData` and `EvalResult`; the body is a Jinja template of the top-level `model_cards/` folder,
one per kind of model. Templates are rendered with undefined variables as errors, so a template that uses a field
the facts do not provide fails naming the template and the field instead of publishing a card with holes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pasero_hf.models.locate import ADAPTERS_INFO

PASERO_URL = "https://github.com/naver/pasero"
LIBRARY_NAME = "pasero-hf"
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "model_cards"
TEMPLATES = {"pasero": "pasero_mt.md", "adapters": "adapters.md", "nllb_moe_pruned": "nllb_moe_pruned.md"}
DEFAULT_LICENSES = {"pasero": "apache-2.0", "adapters": "apache-2.0", "nllb_moe_pruned": "cc-by-nc-4.0"}
EVAL_RESULTS_FILE = "eval_results.json"
LOG_LINE = re.compile(r"^(\S+ \S+) \| (train|valid) \| step (\d+) \| (.*)$")


class CardError(ValueError):
    """A model card cannot be made: missing facts, an unknown kind, a template problem (names the file)."""


@dataclass
class ModelFacts:
    """What a card says about a model, read from its files (config.json, inference.yaml, training run...)."""

    model_dir: Path
    kind: str
    model_type: str
    is_encoder_decoder: bool
    lang_pairs: list[tuple[str, str]]
    parameters: int | None
    architecture: dict[str, Any]
    run_dir: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)  # training.yaml
    budget: dict[str, Any] = field(default_factory=dict)  # steps, tokens, time, hardware
    valid_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # {valid set: {bleu, chrf}}
    test_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # {test set: {bleu, chrf}}
    adapters: dict[str, Any] = field(default_factory=dict)
    pruning: dict[str, Any] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(lang for pair in self.lang_pairs for lang in pair))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CardError(f"{path}: not valid YAML: {error}") from None
    return content if isinstance(content, dict) else {}


def run_directory(model_dir: Path) -> Path | None:
    """The training run that produced `model_dir` (MODEL_DIR/model_best -> MODEL_DIR), if there is one."""
    for candidate in (model_dir, model_dir.parent):
        if (candidate / "training.yaml").is_file() and (candidate / "train.log").is_file():
            return candidate
    return None


def parse_lang_pairs(values) -> list[tuple[str, str]]:
    pairs = []
    for value in values or []:
        source, sep, target = str(value).partition("-")
        if not sep or not source or not target:
            raise CardError(f"language pair {value!r}: expected SRC-TGT (e.g. en-es)")
        pairs.append((source, target))
    return pairs


def declared_lang_pairs(*inference_yamls: dict) -> list[tuple[str, str]]:
    """Language pairs of inference.yaml (`lang_pairs`, else every source x target)."""
    for content in inference_yamls:
        if content.get("lang_pairs"):
            return parse_lang_pairs(content["lang_pairs"])
        sources, targets = content.get("source_langs") or [], content.get("target_langs") or []
        if sources and targets:
            return [(s, t) for s in sources for t in targets if s != t] or [(s, t) for s in sources for t in targets]
    return []


def count_parameters(model_dir: Path) -> int | None:
    """Parameters in the directory's safetensors files, read from their headers (no weights are loaded)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as file:
            header_len = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(header_len))
        total += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    return total


def read_train_log(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(train lines, valid lines) of MODEL_DIR/train.log as {step, time, metrics...} dicts."""
    train, valid = [], []
    for line in (run_dir / "train.log").read_text(encoding="utf-8", errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        entry: dict[str, Any] = {"time": match.group(1), "step": int(match.group(3))}
        for item in match.group(4).split(" | "):
            key, _, value = item.partition(" ")
            try:
                entry[key] = float(value)
            except ValueError:
                continue
        (train if match.group(2) == "train" else valid).append(entry)
    return train, valid


def validation_scores(valid_lines: list[dict], metric: str) -> tuple[int | None, dict[str, dict[str, float]]]:
    """The best validation (by `metric`: chrf, bleu or loss) and its per-set BLEU/chrF: (step, {set: scores})."""
    scored = [entry for entry in valid_lines if f"eval_{metric}" in entry]
    if not scored:
        return None, {}
    pick = min if metric == "loss" else max
    best = pick(scored, key=lambda entry: entry[f"eval_{metric}"])
    per_set: dict[str, dict[str, float]] = {}
    for key, value in best.items():
        match = re.fullmatch(r"eval_(.+)_(bleu|chrf)", key)
        if match:
            per_set.setdefault(match.group(1), {})[match.group(2)] = value
    return best["step"], per_set


def training_budget(run_dir: Path, training: dict, train_lines: list[dict]) -> dict[str, Any]:
    steps = max((entry["step"] for entry in train_lines), default=0)
    runtime = sum(entry.get("train_runtime", 0.0) for entry in train_lines)
    tokens_per_step = int(training.get("batch_size") or 0) * int(training.get("virtual_dp_size") or 1)
    budget = {"steps": steps, "padded_tokens": steps * tokens_per_step if tokens_per_step else None,
              "hours": runtime / 3600 if runtime else None}
    return budget


def describe_hardware() -> str:
    """This machine, for cards written at the end of training: CPU or GPU model and count."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def gather_facts(model_dir: str | os.PathLike, *, kind: str | None = None, lang_pairs: list[str] | None = None,
                 hardware: str | None = None) -> ModelFacts:
    """Everything a card needs from a `save_pretrained` directory (and the training run around it)."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    adapter_config_path = model_dir / "adapter_config.json"
    if not config_path.is_file() and (model_dir / ADAPTERS_INFO).is_file():
        config_path = model_dir / ADAPTERS_INFO  # adapters of a pretrained model: their options and base model type
    if not config_path.is_file() and not adapter_config_path.is_file():
        raise CardError(f"{model_dir}: no config.json (nor adapter_config.json): not a model directory")
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if "base_model_type" in config:
        config.setdefault("model_type", config["base_model_type"])
    run_dir = run_directory(model_dir)
    inference = _read_yaml(model_dir / "inference.yaml")
    run_inference = _read_yaml(run_dir / "inference.yaml") if run_dir else {}
    training = _read_yaml(run_dir / "training.yaml") if run_dir else {}
    pruning = json.loads((model_dir / "pruning.json").read_text()) if (model_dir / "pruning.json").is_file() else {}

    pairs = parse_lang_pairs(lang_pairs) if lang_pairs else declared_lang_pairs(inference, run_inference)
    if not pairs and pruning.get("lang_pairs"):
        pairs = parse_lang_pairs(pruning["lang_pairs"])
    if not pairs:
        raise CardError(f"{model_dir}: its languages are unknown (no inference.yaml with source_langs/target_langs "
                        "or lang_pairs, no pruning.json): pass them, e.g. --lang-pairs en-es")
    if kind is None:
        kind = "nllb_moe_pruned" if pruning else "pasero"
    if kind not in TEMPLATES:
        raise CardError(f"unknown model card kind {kind!r}: expected one of {', '.join(TEMPLATES)}")

    architecture = {key: config[key] for key in (
        "encoder_layers", "decoder_layers", "embed_dim", "d_model", "encoder_ffn_dim", "decoder_ffn_dim",
        "encoder_attention_heads", "decoder_attention_heads", "encoder_max_len", "vocab_size", "num_experts",
        "encoder_experts_per_layer", "decoder_experts_per_layer") if key in config}
    facts = ModelFacts(
        model_dir=model_dir, kind=kind, model_type=config.get("model_type", "peft-lora"),
        is_encoder_decoder=bool(config.get("is_encoder_decoder", True)), lang_pairs=pairs,
        parameters=count_parameters(model_dir), architecture=architecture, run_dir=run_dir, training=training,
        pruning=pruning,
    )
    if run_dir is not None:
        train_lines, valid_lines = read_train_log(run_dir)
        facts.budget = training_budget(run_dir, training, train_lines)
        step, facts.valid_scores = validation_scores(valid_lines, training.get("early_stopping_metric", "chrf"))
        facts.budget["best_step"] = step
    facts.budget["hardware"] = hardware
    for directory in (model_dir, run_dir):
        if directory is not None and (directory / EVAL_RESULTS_FILE).is_file():
            facts.test_scores = json.loads((directory / EVAL_RESULTS_FILE).read_text())
            break
    for side in ("encoder", "decoder"):
        names = config.get(f"{side}_adapters") or []
        if names:
            facts.adapters[side] = list(names)
    if adapter_config_path.is_file():
        facts.adapters["lora"] = json.loads(adapter_config_path.read_text())
    return facts


def eval_results(facts: ModelFacts, dataset_type: str) -> list:
    """`EvalResult`s (task translation) of the validation scores and the test scores."""
    from huggingface_hub import EvalResult

    results = []
    for split, scores in (("validation", facts.valid_scores), ("test", facts.test_scores)):
        for dataset_name, metrics in scores.items():
            for metric in ("bleu", "chrf"):
                if metric in metrics:
                    results.append(EvalResult(
                        task_type="translation", task_name="Translation", dataset_type=dataset_type,
                        dataset_name=dataset_name, dataset_split=split, metric_type=metric,
                        metric_name={"bleu": "BLEU", "chrf": "chrF"}[metric], metric_value=round(metrics[metric], 2),
                    ))
    return results


def _hub_language(code: str) -> str:
    """Hub metadata wants ISO 639 codes: NLLB's eng_Latn -> eng, Pasero's en stays en."""
    return code.split("_")[0].lower()


def card_data(facts: ModelFacts, *, model_name: str, license: str | None = None, base_model: str | None = None,
              datasets: list[str] | None = None, tags: list[str] | None = None):
    """The card's YAML metadata as `ModelCardData`."""
    from huggingface_hub import ModelCardData

    datasets = datasets or ([Path(str(facts.training["data_dir"])).name] if facts.training.get("data_dir") else None)
    dataset_type = (datasets or ["custom"])[0]
    kind_tags = {"pasero": ["pasero"], "adapters": ["pasero", "adapters"] + (["lora", "peft"] if "lora" in facts.adapters else []),
                 "nllb_moe_pruned": ["nllb", "moe", "pruned"]}[facts.kind]
    return ModelCardData(
        language=list(dict.fromkeys(_hub_language(code) for code in facts.languages)),
        license=license or DEFAULT_LICENSES[facts.kind],
        library_name=LIBRARY_NAME,
        pipeline_tag="translation" if facts.is_encoder_decoder else "text-generation",
        tags=list(dict.fromkeys(kind_tags + ["translation"] + list(tags or []))),
        datasets=datasets,
        base_model=base_model,
        metrics=["bleu", "chrf"] if facts.valid_scores or facts.test_scores else None,
        model_name=model_name,
        eval_results=eval_results(facts, dataset_type) or None,
    )


def template_context(facts: ModelFacts, repo_id: str, base_model: str | None, data_citation: str | None) -> dict:
    """The variables a `model_cards/` template may use."""
    budget = facts.budget
    return {
        "repo_id": repo_id,
        "model_name": repo_id.split("/")[-1],
        "kind": facts.kind,
        "model_type": facts.model_type,
        "lang_pairs": [f"{s}-{t}" for s, t in facts.lang_pairs],
        "source_langs": list(dict.fromkeys(s for s, _ in facts.lang_pairs)),
        "target_langs": list(dict.fromkeys(t for _, t in facts.lang_pairs)),
        "languages": facts.languages,
        "example_pair": facts.lang_pairs[0],
        "parameters": f"{facts.parameters:,}" if facts.parameters else "unknown",
        "architecture": facts.architecture,
        "arch": facts.training.get("arch") or facts.model_type,
        "base_model": base_model,
        "training": facts.training,
        "train_corpora": [", ".join(c.get("paths", [])) for c in facts.training.get("train_corpora") or []],
        "budget": {"steps": budget.get("steps"), "best_step": budget.get("best_step"),
                   "padded_tokens": f"{budget['padded_tokens']:,}" if budget.get("padded_tokens") else None,
                   "time": _duration(budget["hours"]) if budget.get("hours") else None,
                   "hardware": budget.get("hardware")},
        "valid_scores": facts.valid_scores,
        "test_scores": facts.test_scores,
        "adapters": facts.adapters,
        "pruning": facts.pruning,
        "pasero_url": PASERO_URL,
        "data_citation": data_citation,
    }


def _duration(hours: float) -> str:
    return f"{hours:.1f} hours" if hours >= 1 else f"{hours * 60:.1f} minutes"


def render_model_card(model_dir: str | os.PathLike, repo_id: str, *, kind: str | None = None,
                      license: str | None = None, base_model: str | None = None, datasets: list[str] | None = None,
                      tags: list[str] | None = None, lang_pairs: list[str] | None = None,
                      data_citation: str | None = None, hardware: str | None = None,
                      template_path: str | os.PathLike | None = None, facts: ModelFacts | None = None):
    """A `huggingface_hub.ModelCard` for `model_dir` from its `model_cards/` template (or `template_path`).

    Raises:
        CardError: missing facts (e.g. unknown languages), unknown kind, template missing or using an undefined field.
    """
    import jinja2
    from huggingface_hub import ModelCard

    facts = facts or gather_facts(model_dir, kind=kind, lang_pairs=lang_pairs, hardware=hardware)
    base_model = base_model or _base_model_from_run(facts)
    template = Path(template_path) if template_path else TEMPLATES_DIR / TEMPLATES[facts.kind]
    if not template.is_file():
        raise CardError(f"model card template not found: {template}")
    data = card_data(facts, model_name=repo_id.split("/")[-1], license=license, base_model=base_model,
                     datasets=datasets, tags=tags)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        body = environment.from_string(template.read_text(encoding="utf-8")).render(
            card_data=data.to_yaml(), **template_context(facts, repo_id, base_model, data_citation))
    except jinja2.UndefinedError as error:
        raise CardError(f"model card template {template}: {error.message} (not provided for {model_dir})") from None
    except jinja2.TemplateSyntaxError as error:
        raise CardError(f"model card template {template}, line {error.lineno}: {error.message}") from None
    return ModelCard(body)


def _base_model_from_run(facts: ModelFacts) -> str | None:
    """A fine-tune's base: training.yaml's `ckpt` when it names a Hub repo (not a local directory)."""
    from pasero_hf.models.locate import looks_like_repo_id

    ckpt = facts.training.get("ckpt")
    return ckpt if ckpt and looks_like_repo_id(str(ckpt)) and not Path(str(ckpt)).exists() else None


def check_card(card) -> None:
    """Local metadata checks (those `huggingface_hub` can make offline): the YAML header parses back into
    `ModelCardData`, library_name, license and pipeline_tag are set, every language is an ISO 639 code, and the
    model-index reads back as the same evaluation results."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    data = ModelCard(str(card)).data  # parses and validates the YAML header (raises ValueError)
    problems = []
    if data.library_name != LIBRARY_NAME:
        problems.append(f"library_name is {data.library_name!r}, expected {LIBRARY_NAME!r}")
    for code in data.language or []:
        if not re.fullmatch(r"[a-z]{2,3}", code):
            problems.append(f"language {code!r} is not an ISO 639 code")
    if not data.license:
        problems.append("no license")
    if data.pipeline_tag not in ("translation", "text-generation"):
        problems.append(f"pipeline_tag is {data.pipeline_tag!r}")
    model_index = data.to_dict().get("model-index")
    if model_index and len(model_index_to_eval_results(model_index)[1]) != len(data.eval_results or []):
        problems.append("the model-index does not read back as the same evaluation results")
    if problems:
        raise CardError("model card metadata: " + "; ".join(problems))


def write_model_card(model_dir: str | os.PathLike, repo_id: str | None = None, **kwargs) -> Path:
    """Render the card of `model_dir` and write MODEL_DIR/README.md (atomically); returns its path."""
    model_dir = Path(model_dir)
    repo_id = repo_id or f"{(run_directory(model_dir) or model_dir).resolve().name}"
    card = render_model_card(model_dir, repo_id, **kwargs)
    check_card(card)
    path = model_dir / "README.md"
    tmp = path.with_name(".README.md.tmp")
    tmp.write_text(str(card), encoding="utf-8")
    os.replace(tmp, path)
    return path


def record_test_scores(model_dir: str | os.PathLike, prefix: str, *, name: str | None = None,
                       lang_pairs: list[str] | None = None, **decoding: Any) -> dict[str, dict[str, float]]:
    """Translate PREFIX.{src} for each language pair of the model, score against PREFIX.{tgt}, and record BLEU and
    chrF in MODEL_DIR/eval_results.json (the card's test results). Returns the scores of this test set.

    Raises:
        FileNotFoundError: a source or reference file is missing (named).
    """
    from pasero_hf.generation import TextGenerator
    from pasero_hf.generation.inference_corpus import get_inference_corpus

    model_dir = Path(model_dir)
    facts = gather_facts(model_dir, lang_pairs=lang_pairs)
    generator = TextGenerator.from_pretrained(model_dir, **decoding)
    name = name or Path(prefix).name
    recorded = {}
    for source, target in facts.lang_pairs:
        paths = Path(f"{prefix}.{source}"), Path(f"{prefix}.{target}")
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"test set {name}: {path} not found (expected {prefix}.{{lang}} files)")
        corpus = get_inference_corpus(str(paths[0]), ref_path=str(paths[1]), output_path=False,
                                      source_lang=source, target_lang=target)
        generator.decode_corpus(corpus, progress=False)
        key = name if len(facts.lang_pairs) == 1 else f"{name}.{source}-{target}"
        recorded[key] = {metric: round(value, 2) for metric, value in generator.metrics.items()
                         if metric in ("bleu", "chrf")}
    path = model_dir / EVAL_RESULTS_FILE
    scores = json.loads(path.read_text()) if path.is_file() else {}
    scores.update(recorded)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(scores, indent=1))
    os.replace(tmp, path)
    return recorded
