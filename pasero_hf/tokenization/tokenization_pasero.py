"""`PaseroTokenizer`: a `transformers` tokenizer for Pasero models (inline-casing BPE + fairseq dictionary).

Pasero conventions: a source sequence is its subword ids followed by `</s>` (no BOS), optionally preceded by
language codes (`<lang:xx>`); labels are the target ids followed by `</s>`; the decoder starts with `</s>`.

Like Pasero's `target_dict`/`target_tokenizer_path` (and MarianTokenizer's `separate_vocabs`), targets may have their
own dictionary and subword model: `text_target=` encodes with them, and `decode` reads ids with the target dictionary
unless `use_source_tokenizer=True`.

This file imports its helpers relatively and they need only the standard library, `regex`, `sentencepiece` and
`tokenizers`, so that `save_pretrained` of a tokenizer registered for remote code ships working code.
"""

import os
import shutil

from transformers import PreTrainedTokenizer

from .dictionary import BOS, EOS, LANG_CODE_PREFIX, PAD, UNK, Dictionary, lang_code, load_vocabulary
from .subword_backends import HFTokenizersBackend, SentencePieceBackend, load_backend

_FILE_IDS = {"pasero": "bpe_file", "sentencepiece": "spm_file", "hf": "hf_tokenizer_file"}


class PaseroTokenizer(PreTrainedTokenizer):
    """Tokenizer of Pasero translation models.

    Args:
        bpe_file: Pasero `bpecodes` (with `tokenizer_type="pasero"`).
        dict_file: fairseq `dict.txt` (ids: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, then one per line).
        spm_file: SentencePiece model (with `tokenizer_type="sentencepiece"`).
        hf_tokenizer_file: `tokenizers` JSON file (with `tokenizer_type="hf"`).
        dict_json_file: `{token: id}` vocabulary, used when there is no `dict_file`.
        tokenizer_type: "pasero", "sentencepiece" or "hf".
        src_lang, tgt_lang: language codes (e.g. "en"), for the `<lang:xx>` tokens below.
        source_lang_code: prepend `<lang:src_lang>` to source sequences.
        lang_code: prepend `<lang:tgt_lang>` to source sequences (before the source language code).
        target_lang_code: prepend `<lang:tgt_lang>` to target sequences.
        dict_as_vocabulary: split merged subwords that are not in the dictionary back into their parts (what
            `pasero-decode` does); `vocabulary_threshold` keeps only dictionary entries with at least that count.
        target_dict_file: dictionary of the target side (Pasero's `target_dict`): labels are encoded and outputs
            decoded with it; the model's decoder vocabulary. Default: `dict_file` for both sides.
        target_bpe_file, target_spm_file, target_hf_tokenizer_file: subword model of the target side, of the same
            `tokenizer_type` (Pasero's `target_tokenizer_path`). Default: the source one.
    """

    vocab_files_names = {
        "bpe_file": "bpecodes",
        "dict_file": "dict.txt",
        "spm_file": "spm.model",
        "hf_tokenizer_file": "hf_tokenizer.json",
        "dict_json_file": "dict.json",
        "target_dict_file": "target_dict.txt",
        "target_bpe_file": "target_bpecodes",
        "target_spm_file": "target_spm.model",
        "target_hf_tokenizer_file": "target_hf_tokenizer.json",
    }
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        bpe_file: str | None = None,
        dict_file: str | None = None,
        spm_file: str | None = None,
        hf_tokenizer_file: str | None = None,
        dict_json_file: str | None = None,
        tokenizer_type: str = "pasero",
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        source_lang_code: bool = False,
        lang_code: bool = False,
        target_lang_code: bool = False,
        dict_as_vocabulary: bool = True,
        vocabulary_threshold: int | None = None,
        bos_token: str = BOS,
        eos_token: str = EOS,
        pad_token: str = PAD,
        unk_token: str = UNK,
        extra_special_tokens: list[str] | None = None,
        target_dict_file: str | None = None,
        target_bpe_file: str | None = None,
        target_spm_file: str | None = None,
        target_hf_tokenizer_file: str | None = None,
        **kwargs,
    ):
        files = {"bpe_file": bpe_file, "spm_file": spm_file, "hf_tokenizer_file": hf_tokenizer_file}
        target_files = {"bpe_file": target_bpe_file, "spm_file": target_spm_file,
                        "hf_tokenizer_file": target_hf_tokenizer_file}
        if tokenizer_type not in _FILE_IDS:
            raise ValueError(f"tokenizer_type must be one of {', '.join(_FILE_IDS)}, got {tokenizer_type!r}")
        model_file = files[_FILE_IDS[tokenizer_type]]
        if model_file is None:
            raise ValueError(f"tokenizer_type={tokenizer_type!r} needs `{_FILE_IDS[tokenizer_type]}`")
        other_types = [f"target_{name}" for name, path in target_files.items()
                       if path is not None and name != _FILE_IDS[tokenizer_type]]
        if other_types:
            raise ValueError(f"{', '.join(other_types)}: the target subword model must be of the source's kind "
                             f"(tokenizer_type={tokenizer_type!r}: target_{_FILE_IDS[tokenizer_type]})")
        self.tokenizer_type = tokenizer_type
        self.model_file = model_file
        self.dict_file = dict_file if dict_file is not None else dict_json_file
        self.target_model_file = target_files[_FILE_IDS[tokenizer_type]]
        if target_dict_file is not None and target_dict_file.endswith(".json"):
            raise ValueError(f"target_dict_file: {target_dict_file}: a target dictionary is a fairseq dict.txt")
        self.target_dict_file = target_dict_file
        self._decode_source = False  # set while `decode(..., use_source_tokenizer=True)` runs

        # The vocabulary must exist before super().__init__(), which calls get_vocab().
        self.dictionary, self.subword_model = self._load_side(
            model_file, self.dict_file, dict_file, dict_as_vocabulary, vocabulary_threshold)
        # the target side: None where it is the source's (then the source dictionary/model serve both sides)
        self.target_dictionary: Dictionary | None = None
        self.target_subword_model = None
        if target_dict_file is not None or self.target_model_file is not None:
            target_dictionary, target_model = self._load_side(
                self.target_model_file or model_file, target_dict_file or self.dict_file,
                target_dict_file or dict_file, dict_as_vocabulary, vocabulary_threshold)
            if target_dict_file is not None or self.dict_file is None:
                self.target_dictionary = target_dictionary
            # the same model file filtered by another dictionary is another model: targets keep to their vocabulary
            self.target_subword_model = target_model

        self.source_lang_code = source_lang_code
        self.lang_code = lang_code
        self.target_lang_code = target_lang_code
        self.dict_as_vocabulary = dict_as_vocabulary
        self.vocabulary_threshold = vocabulary_threshold
        self._src_lang = src_lang
        self._tgt_lang = tgt_lang
        self._target_mode = False

        if extra_special_tokens is None:
            # language codes must never be split by the subword model
            prefix = f"<{LANG_CODE_PREFIX}"
            # (the source dictionary's only: an added token outside it would get an id beyond the encoder's vocabulary)
            extra_special_tokens = [token for token in self.dictionary.tokens if token.startswith(prefix)]
        super().__init__(
            bpe_file=bpe_file,
            dict_file=dict_file,
            spm_file=spm_file,
            hf_tokenizer_file=hf_tokenizer_file,
            dict_json_file=dict_json_file,
            tokenizer_type=tokenizer_type,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
            source_lang_code=source_lang_code,
            lang_code=lang_code,
            target_lang_code=target_lang_code,
            dict_as_vocabulary=dict_as_vocabulary,
            vocabulary_threshold=vocabulary_threshold,
            bos_token=self._known_or(bos_token, eos_token),
            eos_token=eos_token,
            pad_token=self._known_or(pad_token, unk_token),
            unk_token=self._known_or(unk_token, pad_token),
            extra_special_tokens=extra_special_tokens,
            special_tokens_pattern="prefix_suffix",
            target_dict_file=target_dict_file,
            target_bpe_file=target_bpe_file,
            target_spm_file=target_spm_file,
            target_hf_tokenizer_file=target_hf_tokenizer_file,
            **kwargs,
        )
        if self.target_dictionary is not None:
            missing = [token for token in (self.bos_token, self.pad_token, self.eos_token, self.unk_token)
                       if token not in self.target_dictionary]
            if missing:
                raise ValueError(f"target dictionary {self.target_dict_file} lacks the special tokens "
                                 f"{', '.join(missing)}")

    def _load_side(self, model_file: str, dict_path: str | None, fairseq_dict: str | None, dict_as_vocabulary: bool,
                   vocabulary_threshold: int | None):
        """(dictionary, subword model) of one side; the dictionary filters the subword model's merges."""
        dictionary = Dictionary.from_file(dict_path) if dict_path is not None else None
        vocabulary = None
        if dictionary is not None and dict_as_vocabulary and self.tokenizer_type != "hf":
            if vocabulary_threshold is not None and fairseq_dict is not None:
                vocabulary = load_vocabulary(fairseq_dict, vocabulary_threshold)
            else:
                vocabulary = dictionary.tokens
        subword_model = load_backend(self.tokenizer_type, model_file, vocabulary)
        if dictionary is None:
            dictionary = self._builtin_dictionary(subword_model, model_file)
        return dictionary, subword_model

    @staticmethod
    def _builtin_dictionary(subword_model, model_file: str) -> Dictionary:
        if isinstance(subword_model, SentencePieceBackend):
            return Dictionary.from_entries([(piece, 0) for piece in subword_model.pieces()], source=model_file)
        if isinstance(subword_model, HFTokenizersBackend):
            dictionary = Dictionary([])
            for token, index in sorted(subword_model.vocab().items(), key=lambda item: item[1]):
                while len(dictionary) < index:  # ids that no token uses
                    dictionary.add(f"madeupword{len(dictionary):04}")
                dictionary.add(token)
            return dictionary
        raise ValueError(f"a Pasero BPE tokenizer needs a dictionary (dict_file): {model_file}")

    def _known_or(self, token: str, fallback: str) -> str:
        """`token` if the dictionary has it, else `fallback` (special tokens must not grow the vocabulary)."""
        return token if token in self.dictionary or fallback not in self.dictionary else fallback

    # --- vocabulary -------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Size of the source (encoder) vocabulary; `target_vocab_size` is the decoder's."""
        return len(self.dictionary)

    @property
    def separate_vocabs(self) -> bool:
        """Targets have their own dictionary (Pasero's `target_dict`), the decoder's vocabulary."""
        return self.target_dictionary is not None

    @property
    def target_vocab_size(self) -> int:
        return len(self.target_dictionary if self.target_dictionary is not None else self.dictionary)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.dictionary.indices)
        vocab.update(self._added_tokens_encoder)
        return vocab

    def get_tgt_vocab(self) -> dict[str, int]:
        """The target side's {token: id} (the source's unless there is a target dictionary)."""
        return dict(self.target_dictionary.indices) if self.target_dictionary is not None else self.get_vocab()

    def _side_dictionary(self, target: bool) -> Dictionary:
        return self.target_dictionary if target and self.target_dictionary is not None else self.dictionary

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        if self._target_mode and self.target_subword_model is not None:
            return self.target_subword_model.tokenize(text)
        return self.subword_model.tokenize(text)

    def convert_tokens_to_ids(self, tokens: str | list[str] | None) -> int | list[int] | None:
        if tokens is not None and self._target_mode and self.target_dictionary is not None:
            # target mode (`text_target=`): every token, language codes included, is looked up in the target
            # dictionary (the added-token table holds source ids)
            indices = self.target_dictionary.indices
            unk_id = self.target_dictionary.index(self.unk_token)
            if isinstance(tokens, str):
                return indices.get(tokens, unk_id)
            return [indices.get(token, unk_id) for token in tokens]
        if tokens is None or isinstance(tokens, str):
            return super().convert_tokens_to_ids(tokens)
        # the per-token path of the base class dominates batch encoding time: one dict lookup per token here
        added = self._added_tokens_encoder
        get = self.dictionary.indices.get
        unk_id = self.dictionary.index(self.unk_token)
        return [added[token] if token in added else get(token, unk_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False,
                              use_source_tokenizer: bool | None = None) -> str | list[str]:
        """With a target dictionary, ids are read as target ids (labels, model outputs), as MarianTokenizer does
        with `separate_vocabs`, unless `use_source_tokenizer=True` (source ids, `input_ids`)."""
        if use_source_tokenizer is None:
            use_source_tokenizer = self._decode_source
        if self.target_dictionary is not None and not use_source_tokenizer:
            return self._target_ids_to_tokens(ids, skip_special_tokens)
        if isinstance(ids, int):
            return super().convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        # like convert_tokens_to_ids: the base class's per-id path dominated the formatting of decoding outputs
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        added = self._added_tokens_decoder
        symbols = self.dictionary.tokens
        tokens = []
        for index in map(int, ids):
            if index in skip:
                continue
            if index in added:
                tokens.append(added[index].content)
            else:
                tokens.append(symbols[index] if 0 <= index < len(symbols) else self.unk_token)
        return tokens

    def _target_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool) -> str | list[str]:
        symbols = self.target_dictionary.tokens
        if isinstance(ids, int):
            return symbols[ids] if 0 <= ids < len(symbols) else self.unk_token
        skip = ({self.target_dictionary.indices[token] for token in self.all_special_tokens
                 if token in self.target_dictionary} if skip_special_tokens else ())
        return [symbols[index] if 0 <= index < len(symbols) else self.unk_token
                for index in map(int, ids) if index not in skip]

    def _decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
                use_source_tokenizer: bool = False, **kwargs) -> str:
        """`use_source_tokenizer=True`: `token_ids` are source ids (only matters with a target dictionary or
        target subword model)."""
        self._decode_source = use_source_tokenizer
        try:
            return super()._decode(token_ids, skip_special_tokens=skip_special_tokens,
                                   clean_up_tokenization_spaces=clean_up_tokenization_spaces, **kwargs)
        finally:
            self._decode_source = False

    def _convert_token_to_id(self, token: str) -> int:
        return self.dictionary.index(token)

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < len(self.dictionary):
            return self.dictionary.tokens[index]
        return self.unk_token

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Detokenize: recase (`<T>`/`<U>`), join subwords and turn `▁` into spaces. Special tokens that are still
        there are kept verbatim."""
        special = set(self.all_special_tokens)
        parts: list[str] = []
        run: list[str] = []
        for token in tokens:
            if token in special:
                if run:
                    parts.append(self._detokenize_run(run, first=not parts))
                    run = []
                parts.append(token)
            else:
                run.append(token)
        if run:
            parts.append(self._detokenize_run(run, first=not parts))
        return "".join(parts).rstrip()

    def _detokenize_run(self, tokens: list[str], first: bool) -> str:
        # text is target text (decoded outputs) unless decode(..., use_source_tokenizer=True) runs
        target = self.target_subword_model is not None and not self._decode_source
        text = (self.target_subword_model if target else self.subword_model).detokenize(tokens)
        # a word that starts after a special token keeps its separating space
        return text if first or not tokens[0].startswith("▁") else " " + text

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Copy the subword model and dictionary files, unchanged, into `save_directory`."""
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(f"not a directory: {save_directory}")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        dict_id = "dict_json_file" if self.dict_file and self.dict_file.endswith(".json") else "dict_file"
        saved = []
        files = [(_FILE_IDS[self.tokenizer_type], self.model_file), (dict_id, self.dict_file),
                 (f"target_{_FILE_IDS[self.tokenizer_type]}", self.target_model_file),
                 ("target_dict_file", self.target_dict_file)]
        for file_id, source in files:
            if source is None:
                continue
            target = os.path.join(save_directory, prefix + self.vocab_files_names[file_id])
            if os.path.abspath(source) != os.path.abspath(target):
                shutil.copyfile(source, target)
            saved.append(target)
        return tuple(saved)

    # --- languages and special tokens -------------------------------------------------------------------------

    @property
    def src_lang(self) -> str | None:
        return self._src_lang

    @src_lang.setter
    def src_lang(self, lang: str | None) -> None:
        self._check_lang(lang)
        self._src_lang = lang

    @property
    def tgt_lang(self) -> str | None:
        return self._tgt_lang

    @tgt_lang.setter
    def tgt_lang(self, lang: str | None) -> None:
        self._check_lang(lang, target=True)
        self._tgt_lang = lang

    def _check_lang(self, lang: str | None, target: bool = False) -> None:
        if lang is not None and (self.lang_code or self.source_lang_code or self.target_lang_code):
            if self.lang_code or self.source_lang_code or self.target_dictionary is None:
                self.lang_code_id(lang)
            if target and self.target_lang_code:
                self.lang_code_id(lang, target=True)

    def lang_code_id(self, lang: str, target: bool = False) -> int:
        """Id of `<lang:xx>` in the source dictionary (in the target one with `target=True`); a clear error when
        the dictionary lacks it."""
        token = lang_code(lang)
        dictionary = self._side_dictionary(target)
        if token not in dictionary:
            path = self.target_dict_file if dictionary is self.target_dictionary else self.dict_file
            side = "target dictionary" if dictionary is self.target_dictionary else "dictionary"
            raise KeyError(f"language code {token} is not in the {side} ({path})")
        return dictionary.index(token)

    def _lang_id(self, lang: str | None, name: str, option: str, target: bool = False) -> int:
        if not lang:
            raise ValueError(f"{option}=True needs `{name}` (e.g. tokenizer.{name} = 'en')")
        return self.lang_code_id(lang, target=target)

    @property
    def prefix_tokens(self) -> list[int]:
        """Source layout: [<lang:tgt>] [<lang:src>] tokens </s>; target layout (labels): [<lang:tgt>] tokens </s>."""
        if self._target_mode:
            if not self.target_lang_code:
                return []
            return [self._lang_id(self._tgt_lang, "tgt_lang", "target_lang_code", target=True)]
        prefix = []
        if self.lang_code:
            prefix.append(self._lang_id(self._tgt_lang, "tgt_lang", "lang_code"))
        if self.source_lang_code:
            prefix.append(self._lang_id(self._src_lang, "src_lang", "source_lang_code"))
        return prefix

    @property
    def suffix_tokens(self) -> list[int]:
        return [self.eos_token_id]

    def _switch_to_input_mode(self) -> None:
        self._target_mode = False

    def _switch_to_target_mode(self) -> None:
        self._target_mode = True

    def decoder_prefix_ids(self) -> list[int]:
        """What the decoder is fed before generating: `</s>`, then `<lang:tgt>` with `target_lang_code`."""
        prefix = [self.eos_token_id]
        if self.target_lang_code:
            prefix.append(self._lang_id(self._tgt_lang, "tgt_lang", "target_lang_code", target=True))
        return prefix
