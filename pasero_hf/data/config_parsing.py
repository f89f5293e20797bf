"""Typed configurations from plain dicts, YAML files and command-line flags: the project's one mechanism.

`dataclass_from_dict(cls, data)` builds any config dataclass (data, training, model) from a dict: it recurses into
nested dataclasses and lists of dataclasses, rejects unknown keys with the closest valid names (difflib), and names
the key and value on a wrong type.

On top of it, a tree of dataclasses reads from YAML files and flags. A configuration is a root dataclass whose
fields are either options or sections (nested dataclasses). Options have globally unique names, so YAML files stay
flat like Pasero's (`lr: 0.001`, `data_dir: data`) and every option is also a command-line flag (`--lr 1e-4`,
`--data-dir DIR`). Nested section mappings (`data: {batch_size: 4096}`) are accepted too. Unknown names are errors
that suggest the closest valid names; a value of the wrong type is an error naming the option, the value and where it
came from (file and line, or command line). Field metadata understood here: `help` (the flag's help text).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


def option(default: Any = None, help: str = "", **metadata: Any) -> Any:
    """A configuration field with its help text (what `--help` shows) and other metadata; a list or dict default is
    copied for each instance."""
    metadata = {"help": help, **metadata}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """A configuration dict does not match its dataclass: unknown key, wrong type or invalid value."""


def _join(context: str, key: str) -> str:
    return f"{context}.{key}" if context else key


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:  # list[str] has a __name__ of "list"
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation)


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against `annotation`, converting dicts to dataclasses and ints to floats where expected."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(value, options[0], where)
        for option in options:
            try:
                return _convert(value, option, where)
            except ConfigError:
                continue
        expected = " or ".join(_type_name(option) for option in options)
        raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(annotation)}), got {value!r}")
        item_type = args[0] if args else Any
        return [_convert(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, str) and hasattr(annotation, "from_str"):  # CorpusSpec: a bare path
            return annotation.from_str(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
        return dataclass_from_dict(annotation, value, context=where)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got the boolean {value!r}")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def dataclass_fields(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls) if field.init}


def dataclass_from_dict(cls: type[T], data: dict, context: str = "") -> T:
    """Instantiate dataclass `cls` from `data`, checking every key and value.

    Args:
        cls: the dataclass to build.
        data: its options by field name; nested dataclasses may be given as dicts.
        context: where `data` comes from (e.g. ``"train_corpora[2]"``), prefixed to error messages.

    Raises:
        ConfigError: on an unknown key (with suggestions), a wrong type (naming the key and value), a missing
            required field, or an error raised by the dataclass' own validation (``__post_init__``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{context or cls.__name__}: expected a mapping, got {data!r}")
    fields = dataclass_fields(cls)
    unknown = [key for key in data if key not in fields]
    if unknown:
        messages = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), list(fields), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            messages.append(f"unknown option {_join(context, str(key))!r}{hint}")
        raise ConfigError("; ".join(messages) + f". Valid options of {cls.__name__}: {', '.join(fields)}")
    kwargs = {key: _convert(value, fields[key], _join(context, key)) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as error:  # missing required fields
        raise ConfigError(f"{context or cls.__name__}: {error}") from None
    except ConfigError as error:
        raise ConfigError(f"{context}: {error}" if context else str(error)) from None


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """Where an option lives in the tree (`path` is the chain of section names) and its declared type."""

    name: str
    path: tuple[str, ...]
    type: Any
    field: dataclasses.Field


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def option_index(root: type) -> dict[str, OptionInfo]:
    """All options of the tree rooted at dataclass `root`, by name; raises if two sections share a name."""
    index: dict[str, OptionInfo] = {}

    def visit(cls: type, path: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            tp = hints[field.name]
            if is_section(tp):
                visit(tp, path + (field.name,))
                continue
            if field.name in index:
                other = ".".join(index[field.name].path + (field.name,))
                raise TypeError(f"option {field.name!r} is defined twice: {other} and {'.'.join(path + (field.name,))}")
            index[field.name] = OptionInfo(field.name, path, tp, field)

    visit(root, ())
    return index


def section_names(root: type) -> dict[str, type]:
    """Section names of the tree (any depth) and their dataclasses."""
    sections: dict[str, type] = {}
    hints = typing.get_type_hints(root)
    for field in dataclasses.fields(root):
        tp = hints[field.name]
        if is_section(tp):
            sections[field.name] = tp
            sections.update(section_names(tp))
    return sections


def suggest(name: str, candidates: Sequence[str]) -> str:
    """" (did you mean 'x' or 'y'?)" or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        # Prefix and substring matches catch abbreviations that difflib's ratio misses ("temp" -> "lang_temperature").
        close = [c for c in candidates if name and (c.startswith(name) or name in c)][:3]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def from_command_line(value: Any, tp: Any) -> Any:
    """A command-line string (or list of strings) converted towards type `tp`; checking is left to
    `dataclass_from_dict`, which sees the same values whether they come from YAML or from the command line."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(value, str) and value.lower() in ("none", "null") and len(options) < len(typing.get_args(tp)):
            return None
        for option in options:
            converted = from_command_line(value, option)
            if converted is not value:
                return converted
        return value
    if isinstance(value, list):
        item = typing.get_args(tp)[0] if origin in (list, Sequence, tuple) and typing.get_args(tp) else Any
        return [from_command_line(v, item) for v in value]
    if not isinstance(value, str):
        return value
    if tp is float or tp is int:
        try:
            return tp(value)
        except ValueError:
            return value
    if tp is Any or tp is dict or origin in (dict, Mapping):
        return yaml.safe_load(value)  # `--model-args '{embed_dim: 256}'`
    if is_section(tp):
        # `--train-corpora train '{paths: [dev], domain: ted}'`: a bare word fills the first field
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:  # a path with placeholders (`{pair}/train`) is not YAML
            parsed = None
        return parsed if isinstance(parsed, dict) else {dataclasses.fields(tp)[0].name: value}
    return value


class Located(dict):
    """A flat mapping of option values that remembers where each one came from (for error messages)."""

    def __init__(self) -> None:
        super().__init__()
        self.origins: dict[str, str] = {}

    def set(self, key: str, value: Any, origin: str) -> None:
        self[key] = value
        self.origins[key] = origin


def read_yaml_options(path: str | Path, root: type, extra_names: Sequence[str] = ()) -> Located:
    """The options of a YAML configuration file, flattened (section mappings merged), with their file:line.

    `extra_names` are accepted besides the tree's options (aliases the caller maps to options).

    Raises ConfigError with the file and line for malformed YAML, unknown names and a non-mapping document.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: invalid UTF-8 (byte {data[error.start]:#x} at offset {error.start}); "
                          "save the file as UTF-8") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{line}: malformed YAML: {problem}") from error
    options = Located()
    if node is None:
        return options
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: expected a mapping of option names to values")
    index = option_index(root)
    sections = section_names(root)

    seen: dict[str, int] = {}

    def visit(mapping: yaml.MappingNode, allowed: Mapping[str, Any]) -> None:
        for key_node, value_node in mapping.value:
            key = key_node.value
            where = f"{path}:{key_node.start_mark.line + 1}"
            if key in seen:  # PyYAML silently keeps the last one: a typo-level mistake worth stopping for
                raise ConfigError(f"{where}: duplicate option {key!r} (first set on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
            _check_duplicate_keys(value_node, path)
            value = yaml.SafeLoader("").construct_document(value_node)
            if key in sections and isinstance(value_node, yaml.MappingNode):
                visit(value_node, allowed)
            elif key in allowed:
                options.set(key, value, where)
            else:
                raise ConfigError(f"{where}: unknown option {key!r}{suggest(key, list(allowed) + list(sections))}")

    visit(node, {**index, **dict.fromkeys(extra_names)})
    return options


def _check_duplicate_keys(node: yaml.Node, path: Path) -> None:
    """Duplicate keys inside nested mappings (corpus definitions, model_args)."""
    if isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.value in lines:
                raise ConfigError(f"{path}:{key_node.start_mark.line + 1}: duplicate key {key_node.value!r} "
                                  f"(first set on line {lines[key_node.value]})")
            lines[key_node.value] = key_node.start_mark.line + 1
            _check_duplicate_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, path)


def _flag(name: str) -> str:
    return "--" + name.rstrip("_").replace("_", "-")


def build_argument_parser(root: type, prog: str | None = None, description: str | None = None,
                          aliases: Mapping[str, Sequence[str]] | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one flag per option of the tree (`--max-steps`, `--no-shuffle` for booleans).

    Values are kept as strings (or lists of strings) and typed later by `dataclass_from_dict`, so that YAML and command-line values
    go through the same checks.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("-c", "--config", action="append", default=[], help="YAML configuration file(s); later wins")
    for name, info in option_index(root).items():
        flags = [_flag(name), *(aliases or {}).get(name, ())]
        help_text = info.field.metadata.get("help", "")
        tp = info.type
        base = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
            typing.Union, types.UnionType) else [tp]
        if base == [bool]:
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif base and typing.get_origin(base[0]) in (list, Sequence, tuple):
            parser.add_argument(*flags, dest=name, nargs="+", default=None, help=help_text)
        else:
            parser.add_argument(*flags, dest=name, default=None, help=help_text)
    return parser


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str], root: type) -> tuple[list[str], Located]:
    """(config files, option values given on the command line); unknown flags are errors with suggestions."""
    namespace, unknown = parser.parse_known_args(list(argv))
    if unknown:
        flags = [opt for action in parser._actions for opt in action.option_strings]
        bad = next((arg for arg in unknown if arg.startswith("-")), unknown[0])
        if bad.startswith("-"):
            raise ConfigError(f"unknown command-line option {bad!r}{suggest(bad.split('=')[0], flags)}")
        raise ConfigError(f"unexpected command-line argument {bad!r} (options take the form --name value)")
    options = Located()
    for name in option_index(root):
        value = getattr(namespace, name)
        if value is not None:
            options.set(name, from_command_line(value, option_index(root)[name].type), f"command-line option {_flag(name)}")
    return namespace.config, options


def instantiate(root: type, options: Mapping[str, Any], origins: Mapping[str, str]) -> Any:
    """Build the dataclass tree from flat option values with `dataclass_from_dict` (type checks, conversions, each
    section's own validation); errors name the option and where its value came from."""
    index = option_index(root)
    per_section: dict[tuple[str, ...], dict[str, Any]] = {}
    for name, value in options.items():
        per_section.setdefault(index[name].path, {})[name] = value

    def build(cls: type, path: tuple[str, ...]) -> Any:
        hints = typing.get_type_hints(cls)
        values = dict(per_section.get(path, {}))
        for field in dataclasses.fields(cls):
            if field.init and is_section(hints[field.name]):
                values[field.name] = build(hints[field.name], path + (field.name,))
        try:
            return dataclass_from_dict(cls, values)
        except ConfigError as error:
            named = [f"{key}: {origins[key]}" for key in values if key in origins and key in str(error)]
            raise ConfigError(f"{error}" + (f" (from {'; '.join(named)})" if named else "")) from None

    return build(root, ())


def flatten(config: Any) -> dict[str, Any]:
    """The option values of a dataclass tree as one flat mapping (the inverse of `instantiate`), YAML-friendly."""
    flat: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and is_section(type(value)) and field.init \
                and is_section(typing.get_type_hints(type(config))[field.name]):
            flat.update(flatten(value))
        elif field.init:
            flat[field.name] = _plain(value)
    return flat


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
