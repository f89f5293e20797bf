"""How each model family wants its languages: the one place that turns a language code of the data (`en`, `fr`,
Pasero's short codes) into what a pretrained model expects.

| family | source side | target side |
|---|---|---|
| nllb (NLLB-200 dense/MoE) | tokenizer `src_lang` (`eng_Latn`) | target code first in the labels, forced at decoding |
| m2m100 | tokenizer `src_lang` (`en` -> `__en__`) | same as nllb (`__fr__`) |
| mbart50 (mBART-50, mBART) | tokenizer `src_lang` (`en_XX`) | same as nllb (`fr_XX`) |
| marian (multilingual opus-mt) | a `>>fra<<` token before the source text | nothing |
| t5 (T5, mT5, FLAN-T5) | a task prefix (`translate English to French: `) | nothing |
| pasero, none | left to the tokenizer (Pasero's `lang_code`) or ignored | |

Short codes become model codes through, in order: the user's mapping (a file of `CODE<TAB>CODE` lines, either
order, like Pasero's `examples/NLLB-200/lang-mapping.txt`, or a dict), the code itself when the model knows it, then
the built-in NLLB-200 table (`nllb_languages.tsv`: `en` <-> `eng_Latn`, also used for `>>eng<<` and `en_XX`). A code
the model does not know is a `ValueError` that lists the model's codes.

Training data preparation (`pasero_hf.data.tokenized`) and decoding (`pasero_hf.generation.TextGenerator`) both use
`ModelLanguages`; its `to_dict()` goes to a trained model's `inference.yaml` so that decoding maps the same way.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("nllb", "m2m100", "mbart50", "marian", "t5", "pasero", "none")
DEFAULT_T5_PREFIX = "translate {src_name} to {tgt_name}: "
_TABLE = Path(__file__).with_name("nllb_languages.tsv")
_NLLB_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_MARIAN_CODE = re.compile(r"^>>(.+)<<$")
# tokenizer class name (without "Fast") -> family; checked before the model type
_TOKENIZER_FAMILIES = {
    "NllbTokenizer": "nllb",
    "M2M100Tokenizer": "m2m100",
    "MBart50Tokenizer": "mbart50",
    "MBartTokenizer": "mbart50",
    "MarianTokenizer": "marian",
    "T5Tokenizer": "t5",
    "PaseroTokenizer": "pasero",
}
_MODEL_TYPE_FAMILIES = {"t5": "t5", "mt5": "t5", "umt5": "t5", "marian": "marian", "nllb-moe": "nllb",
                        "pasero_nllb_moe": "nllb", "m2m_100": "m2m100", "mbart": "mbart50", "pasero": "pasero"}


@functools.cache
def nllb_table() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(short -> NLLB code, NLLB code -> short, short -> English name) from the bundled table."""
    to_nllb, to_short, names = {}, {}, {}
    for line in _TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, short, name = line.split("\t")
            to_nllb[short], to_short[code], names[short] = code, short, name
    return to_nllb, to_short, names


def read_lang_mapping(path: str | os.PathLike) -> dict[str, str]:
    """A mapping file: one `CODE<TAB>CODE` (or space-separated) pair per line, `#` comments; both directions kept."""
    mapping: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ValueError(f"lang_mapping: cannot read {path}: {error.strerror or error}") from error
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected two language codes, got {line!r}")
        mapping.setdefault(parts[0], parts[1])
        mapping.setdefault(parts[1], parts[0])
    return mapping


def detect_family(tokenizer: Any, model_type: str | None = None) -> str:
    """The family of a tokenizer (by class), else of the model type; 'none' when languages mean nothing to it."""
    name = type(tokenizer).__name__.removesuffix("Fast")
    if name in _TOKENIZER_FAMILIES:
        return _TOKENIZER_FAMILIES[name]
    return _MODEL_TYPE_FAMILIES.get(model_type or "", "none")


def _model_codes(tokenizer: Any, family: str) -> list[str]:
    """The language codes the tokenizer knows, in the form its `src_lang` (or Marian token) takes."""
    if family == "nllb":
        return [t for t in tokenizer.all_special_tokens if _NLLB_CODE.match(t)]
    if family == "m2m100":
        return list(getattr(tokenizer, "lang_code_to_token", {}))
    if family == "mbart50":
        codes = getattr(tokenizer, "lang_code_to_id", None)
        return list(codes) if codes else [t for t in tokenizer.all_special_tokens if re.match(r"^[a-z]{2}_[A-Z]{2}$", t)]
    if family == "marian":
        return [match.group(1) for token in tokenizer.get_vocab() if (match := _MARIAN_CODE.match(token))]
    return []


@dataclass
class ModelLanguages:
    """Language handling of one model (see the module docstring).

    Attributes:
        family: one of FAMILIES.
        codes: the model's language codes (NLLB `eng_Latn`, M2M100 `en`, mBART `en_XX`, Marian `fra`).
        mapping: user mapping from data codes to model codes (applied first).
        source_prefix: T5 task prefix template (`{src}`, `{tgt}`, `{src_name}`, `{tgt_name}`); also accepted by the
            other families, for any model trained with an instruction in front of the source.
    """

    family: str = "none"
    codes: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    source_prefix: str | None = None

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, model_type: str | None = None, *,
                      mapping: dict[str, str] | str | os.PathLike | None = None,
                      source_prefix: str | None = None) -> ModelLanguages:
        family = detect_family(tokenizer, model_type)
        if isinstance(mapping, (str, os.PathLike)):
            mapping = read_lang_mapping(mapping)
        if family == "t5" and source_prefix is None:
            source_prefix = DEFAULT_T5_PREFIX
        return cls(family, _model_codes(tokenizer, family), dict(mapping or {}), source_prefix)

    @property
    def forces_target_code(self) -> bool:
        """Whether labels start with the target language code, which decoding must force after the start token."""
        return self.family in ("nllb", "m2m100", "mbart50")

    def model_code(self, lang: str, side: str = "target") -> str:
        """The model's code for data code `lang`; ValueError listing the model's codes when it has none."""
        if not self.codes:
            return self.mapping.get(lang, lang)
        to_nllb, to_short, _ = nllb_table()
        candidates = [self.mapping.get(lang), lang, to_nllb.get(lang), to_short.get(lang)]
        if self.mapping.get(lang) is None:
            # a mapping file written for another family (en <-> eng_Latn) still helps: try what its codes map to
            candidates += [self.mapping.get(c) for c in candidates if c]
        for candidate in filter(None, candidates):
            for code in self._spellings(candidate):
                if code in self.codes:
                    return code
        shown = ", ".join(self.codes[:50]) + (f", ... ({len(self.codes)} in all)" if len(self.codes) > 50 else "")
        raise ValueError(
            f"unknown {side} language {lang!r}: this {self.family} model's language codes are {shown}. "
            "Use one of them, or map yours with lang_mapping (a file of 'CODE<TAB>MODEL_CODE' lines)")

    def _spellings(self, code: str) -> list[str]:
        """`code` and how this family may spell it (eng_Latn -> eng for Marian, en -> en_XX for mBART)."""
        spellings = [code]
        if self.family == "marian" and _NLLB_CODE.match(code):
            spellings.append(code.split("_")[0])
        if self.family == "mbart50":
            spellings += [c for c in self.codes if c.split("_")[0] == code]
        return spellings

    def source_text_prefix(self, source_lang: str | None, target_lang: str | None) -> str:
        """Text put before each source sentence (Marian target token, T5 task prefix), possibly empty."""
        parts = []
        if self.family == "marian" and self.codes and target_lang is not None:
            parts.append(f">>{self.model_code(target_lang, 'target')}<< ")
        if self.source_prefix is not None:
            fields = {"src": source_lang, "tgt": target_lang}
            if "{src_name}" in self.source_prefix:
                fields["src_name"] = self._english_name(source_lang, "source")
            if "{tgt_name}" in self.source_prefix:
                fields["tgt_name"] = self._english_name(target_lang, "target")
            try:
                parts.append(self.source_prefix.format(**fields))
            except (KeyError, IndexError) as error:
                raise ValueError(f"source_prefix {self.source_prefix!r}: unknown field {error}; use {{src}}, {{tgt}}, "
                                 "{src_name}, {tgt_name}") from None
        return "".join(parts)

    def _english_name(self, lang: str | None, side: str) -> str:
        """`English` for `en`, `eng_Latn` or a code the user's mapping ties to one of them (T5 task prefixes)."""
        if lang is None:
            raise ValueError(f"source_prefix {self.source_prefix!r} needs the {side} language")
        _, to_short, names = nllb_table()
        mapped = self.mapping.get(lang)
        for code in (lang, mapped, to_short.get(lang), to_short.get(mapped or "")):
            if code in names:
                return names[code]
        raise ValueError(f"no English name for {side} language {lang!r} in the task prefix {self.source_prefix!r}: "
                         "write source_prefix with {src}/{tgt} instead, or map the code to a known one")

    def set_tokenizer_languages(self, tokenizer: Any, source_lang: str | None, target_lang: str | None) -> None:
        """Point `src_lang`/`tgt_lang` of the tokenizer at the model codes of these languages."""
        if self.family in ("marian", "t5"):
            return
        if self.codes:
            source_lang = None if source_lang is None else self.model_code(source_lang, "source")
            target_lang = None if target_lang is None else self.model_code(target_lang, "target")
        set_tokenizer_langs(tokenizer, source_lang, target_lang)

    def target_code_token(self, tokenizer: Any, target_lang: str) -> str:
        """The token forced after the decoder start token (`forces_target_code` families)."""
        code = self.model_code(target_lang, "target")
        if self.family == "m2m100":
            return tokenizer.lang_code_to_token[code]
        return code

    def check(self, langs: list[str], side: str) -> None:
        """ValueError (listing the model's codes) for the first language the model does not know."""
        for lang in langs:
            if self.codes and not (self.family == "marian" and side == "source"):  # Marian marks only the target
                self.model_code(lang, side)
            if self.source_prefix is not None:
                self.source_text_prefix(lang, lang)

    def to_dict(self) -> dict[str, Any]:
        """What inference.yaml needs to map the same way at decoding time (empty when nothing is special)."""
        content: dict[str, Any] = {}
        if self.mapping:
            content["lang_mapping"] = dict(self.mapping)
        if self.source_prefix is not None:
            content["source_prefix"] = self.source_prefix
        return content


def set_tokenizer_langs(tokenizer: Any, source_lang: str | None, target_lang: str | None) -> None:
    """Point a tokenizer that places language codes itself (`src_lang`/`tgt_lang`) at these codes (None: unchanged)."""
    if target_lang is not None and hasattr(tokenizer, "tgt_lang"):
        tokenizer.tgt_lang = target_lang
    if source_lang is not None and hasattr(tokenizer, "src_lang"):
        tokenizer.src_lang = source_lang
