"""Build typed dataclass configurations from plain dicts (parsed YAML, command-line overrides).

`dataclass_from_dict(cls, data)` is the project's one generic mechanism: it recurses into nested dataclasses and
lists of dataclasses, rejects unknown keys with the closest valid names (difflib), and names the key and value on
a wrong type. Any config dataclass (data, training, model) can use it.
"""

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


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
