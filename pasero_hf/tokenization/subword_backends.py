"""The subword models a Pasero tokenizer can wrap: Pasero BPE, SentencePiece, or a `tokenizers` JSON file.

Each backend turns text into subword strings and back; ids come from the dictionary. Only the standard library,
`regex`, `sentencepiece` (with its `protobuf` model file) and `tokenizers` are used (this module travels with
remote-code tokenizers).
"""

import os
from collections.abc import Iterable
from typing import Protocol

from .bpe import PaseroBPE
from .inline_casing import apply_case_tokens, detokenize

TOKENIZER_TYPES = ("pasero", "sentencepiece", "hf")


class SubwordBackend(Protocol):
    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: list[str]) -> str: ...


class PaseroBackend:
    """Pasero inline-casing BPE (`bpecodes`)."""

    def __init__(self, path: str, vocabulary: Iterable[str] | None = None):
        self.bpe = PaseroBPE.from_file(path, vocabulary=vocabulary)

    def tokenize(self, text: str) -> list[str]:
        return self.bpe.tokenize(text)

    def detokenize(self, tokens: list[str]) -> str:
        return detokenize(tokens)


class SentencePieceBackend:
    """A SentencePiece model; pieces it does not know are spelled out character by character, as in Pasero."""

    def __init__(self, path: str, vocabulary: Iterable[str] | None = None):
        import sentencepiece

        if vocabulary is None:
            self.processor = sentencepiece.SentencePieceProcessor(model_file=path)
        else:
            self.processor = sentencepiece.SentencePieceProcessor(
                model_proto=restrict_vocabulary(path, vocabulary))

    def tokenize(self, text: str) -> list[str]:
        pieces = []
        for piece in self.processor.EncodeAsPieces(text):
            if self.processor.IsUnknown(self.processor.PieceToId(piece)):
                pieces.extend(piece)
            else:
                pieces.append(piece)
        return pieces

    def detokenize(self, tokens: list[str]) -> str:
        return self.processor.DecodePieces(apply_case_tokens(tokens))

    def pieces(self) -> list[str]:
        return [self.processor.IdToPiece(i) for i in range(self.processor.GetPieceSize())]


def restrict_vocabulary(path: str, vocabulary: Iterable[str]) -> bytes:
    """The SentencePiece model at `path` with the pieces outside `vocabulary` (a fairseq dict) marked unused, so that
    segmentation never produces them: what `SentencePieceProcessor.SetVocabulary` did (Pasero calls it), which the
    Python bindings of sentencepiece 0.2 no longer have. Like it, single characters, control, unknown and
    user-defined pieces stay usable."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    with open(path, "rb") as handle:
        model.ParseFromString(handle.read())
    keep = set(vocabulary)
    kinds = sentencepiece_model_pb2.ModelProto.SentencePiece
    for piece in model.pieces:
        if piece.type in (kinds.CONTROL, kinds.UNKNOWN, kinds.USER_DEFINED, kinds.BYTE):
            continue
        piece.type = kinds.NORMAL if piece.piece in keep or len(piece.piece) == 1 else kinds.UNUSED
    return model.SerializeToString()


class HFTokenizersBackend:
    """A `tokenizers` JSON file (the tokens of its model; ids come from the dictionary)."""

    def __init__(self, path: str):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(path)

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def detokenize(self, tokens: list[str]) -> str:
        if self.tokenizer.decoder is None:
            return " ".join(tokens)
        return self.tokenizer.decoder.decode(tokens)

    def vocab(self) -> dict[str, int]:
        return self.tokenizer.get_vocab(with_added_tokens=True)


def load_backend(tokenizer_type: str, path: str, vocabulary: Iterable[str] | None = None) -> SubwordBackend:
    """The backend of `tokenizer_type` for the model file `path`; `vocabulary` restricts the subwords produced
    (Pasero BPE and SentencePiece only)."""
    if tokenizer_type not in TOKENIZER_TYPES:
        raise ValueError(f"tokenizer_type must be one of {', '.join(TOKENIZER_TYPES)}, got {tokenizer_type!r}")
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"{tokenizer_type} tokenizer file not found: {path}")
    if tokenizer_type == "pasero":
        return PaseroBackend(path, vocabulary)
    if tokenizer_type == "sentencepiece":
        return SentencePieceBackend(path, vocabulary)
    return HFTokenizersBackend(path)
