"""Expansion of corpus definitions (`CorpusSpec`) into concrete corpora, one per path template and language pair.

Placeholders ``{src}``, ``{tgt}`` and ``{pair}`` are filled per language pair (`fill_lang_placeholders`, which
decoding file names and training paths use too); for each pair the files are looked
up with ``{pair}`` as ``src-tgt`` then ``tgt-src``, relative to `data_dir` then to the working directory (Pasero's
order). A missing file is an error that names the expanded path and the placeholder values that produced it.
"""

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pasero_hf.data.config import CorpusSpec


@dataclass(frozen=True)
class Corpus:
    """One concrete corpus: a language pair and its files.

    For format 'parallel' `source_path` and `target_path` are the two files; for the other formats they are the
    same file (or dataset directory).
    """

    corpus_id: str
    source_path: str
    target_path: str
    source_lang: str
    target_lang: str
    domain: str
    format: str
    multiplier: float = 1.0
    probability: float | None = None

    @property
    def lang_pair(self) -> str:
        return f"{self.source_lang}-{self.target_lang}"

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.source_path, self.target_path)))


LANG_PLACEHOLDER = re.compile(r"\{(pair|src|tgt)\}")
_ANY_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def fill_lang_placeholders(path: str, src: str | None, tgt: str | None, pair: str | None = None,
                           where: str = "", hint: str = "") -> str:
    """`path` with ``{src}``, ``{tgt}`` and ``{pair}`` filled in (``{pair}`` is ``src-tgt`` unless `pair` is given).

    Raises:
        ValueError: prefixed with `where`, naming `path`: an unknown placeholder, or one whose language is unknown
            (None); `hint` (what the user can give) ends the latter message.
    """
    values = {"src": src, "tgt": tgt, "pair": pair or (f"{src}-{tgt}" if src and tgt else None)}

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"{where}{path!r}: unknown placeholder {name!r}; the placeholders are {{src}}, {{tgt}}, "
                             "{pair}")
        if values[name] is None:
            unknown = "language pair" if name == "pair" else "language"
            raise ValueError(f"{where}{path!r} contains {{{name}}} but the {unknown} is unknown{hint}")
        return values[name]

    return _ANY_PLACEHOLDER.sub(fill, path)


def language_pairs(
    source_langs: list[str] | None,
    target_langs: list[str] | None,
    lang_pairs: list[str] | None,
    allow_monolingual: bool = False,
) -> list[tuple[str, str]]:
    """The language pairs defined by these options: `lang_pairs` if given, else the source x target product."""
    if lang_pairs:
        pairs = [tuple(pair.split("-")) for pair in lang_pairs]
    else:
        pairs = [
            (src, tgt) for src, tgt in itertools.product(source_langs or [], target_langs or [])
            if allow_monolingual or src != tgt
        ]
    return list(dict.fromkeys(pairs))


def _strip_suffixes(name: str, suffixes: list[str]) -> str:
    for suffix in suffixes:
        name = name.removesuffix(suffix)
    return name


def _candidate_paths(template: str, spec: CorpusSpec, src: str, tgt: str, data_dir: str) -> list[tuple[str, str, str]]:
    """(source_path, target_path, pair placeholder) candidates, in lookup order."""
    candidates = []
    for pair in (f"{src}-{tgt}", f"{tgt}-{src}"):
        expanded = fill_lang_placeholders(template, src, tgt, pair, where="corpus path ")
        for root in dict.fromkeys((data_dir, ".")):
            path = os.path.join(root, expanded)
            if spec.format == "parallel":
                prefix = _strip_suffixes(path, [f".{src}", f".{tgt}"])
                candidates.append((f"{prefix}.{src}", f"{prefix}.{tgt}", pair))
            else:
                candidates.append((path, path, pair))
    return candidates


def _corpus_name(path: str, spec: CorpusSpec, src: str, tgt: str) -> str:
    """`path` without its language suffixes (and extension for tsv/jsonl): ``en-de/train.en`` -> ``en-de/train``."""
    name = path.rstrip("/")
    if spec.format in ("tsv", "jsonl"):
        name = os.path.splitext(name)[0]
    return _strip_suffixes(name, [f".{src}", f".{tgt}", f".{src}-{tgt}", f".{tgt}-{src}"])


def expand_corpus(
    spec: CorpusSpec,
    data_dir: str,
    default_pairs: list[tuple[str, str]],
    allow_monolingual: bool = False,
    where: str = "corpus",
) -> list[Corpus]:
    """The concrete corpora of one definition; raises FileNotFoundError when a file is missing."""
    if spec.lang_pairs or spec.source_langs or spec.target_langs:
        pairs = language_pairs(spec.source_langs, spec.target_langs, spec.lang_pairs, allow_monolingual)
    else:
        pairs = default_pairs
    if spec.bidir and not default_pairs:  # as in Pasero, global languages (-s/-t) disable bidir
        pairs = list(dict.fromkeys(pairs + [(tgt, src) for src, tgt in pairs]))
    if not pairs:
        raise ValueError(
            f"{where}: no language pair is defined; set lang_pairs or source_langs and target_langs "
            "(globally or in the corpus definition)"
        )
    corpora = []
    for template, (src, tgt) in itertools.product(spec.paths, pairs):
        candidates = _candidate_paths(template, spec, src, tgt, data_dir)
        found = next((c for c in candidates if all(os.path.exists(p) for p in c[:2])), None)
        if found is None:
            source_path, target_path, pair = candidates[0]
            missing = source_path if not os.path.exists(source_path) else target_path
            tried = ", ".join(sorted({p for c in candidates for p in c[:2] if not os.path.exists(p)}))
            raise FileNotFoundError(
                f"{where}: corpus file {missing} does not exist (path template {template!r} with "
                f"src={src!r}, tgt={tgt!r}, pair={pair!r}; also tried: {tried})"
            )
        source_path, target_path, pair = found
        name = _corpus_name(fill_lang_placeholders(template, src, tgt, pair), spec, src, tgt)
        probability = spec.probability / (len(spec.paths) * len(pairs)) if spec.probability else None
        corpora.append(Corpus(
            corpus_id=f"{name}.{src}-{tgt}",
            source_path=source_path,
            target_path=target_path,
            source_lang=src,
            target_lang=tgt,
            domain=spec.domain or os.path.basename(name),
            format=spec.format,
            multiplier=spec.multiplier,
            probability=probability,
        ))
    return corpora


def expand_corpora(
    specs: list[CorpusSpec],
    data_dir: str,
    source_langs: list[str] | None,
    target_langs: list[str] | None,
    lang_pairs: list[str] | None,
    allow_monolingual: bool = False,
    kind: str = "train_corpora",
) -> list[Corpus]:
    """All concrete corpora of these definitions, checking that each global language pair is provided."""
    if not specs:
        raise ValueError(f"{kind}: no corpus is defined")
    default_pairs = language_pairs(source_langs, target_langs, lang_pairs, allow_monolingual)
    corpora: list[Corpus] = []
    for i, spec in enumerate(specs):
        corpora += expand_corpus(spec, data_dir, default_pairs, allow_monolingual, where=f"{kind}[{i}]")
    ids = [corpus.corpus_id for corpus in corpora]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{kind}: duplicate corpora {duplicates} (the same files and language pair defined twice)")
    provided = {(c.source_lang, c.target_lang) for c in corpora}
    unknown = [f"{s}-{t}" for s, t in default_pairs if (s, t) not in provided]
    if unknown:
        raise ValueError(
            f"{kind}: no corpus provides the language pair(s) {', '.join(unknown)} "
            f"(provided: {', '.join(sorted(f'{s}-{t}' for s, t in provided))})"
        )
    return corpora


def corpus_stamp(corpus: Corpus) -> str:
    """Real path, size and mtime of each file: part of the cache key, so that edited files are re-read."""
    stamps = []
    for path in corpus.paths:
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if os.path.isdir(path) else [Path(path)]
        for file in files:
            stat = file.stat()
            stamps.append(f"{os.path.realpath(file)}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(stamps)
