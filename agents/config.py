"""One path from a Hydra config to a checked, frozen dataclass, for every entry point.

A config class declares each field with :func:`setting`: the annotation is its type; the setting adds
a one-line description (what ``--help`` prints), where the value sits in the Hydra tree, bounds and
choices. :func:`from_tree` reads a composed Hydra config (any nested mapping) into the class and
:func:`from_fields` rebuilds one from its own field names (a ``run.json``); both refuse unknown keys,
wrong types, non-finite numbers, values out of range and unknown choices with a :class:`ConfigError`
naming the key, the value and the valid ones, before anything is built or compiled. A class may define
``check(self)`` for what spans several fields (divisibility, registry options); it runs once every field
passed, so it can rely on their types.

Types understood: ``bool``, ``int``, ``float`` (finite), ``str``, ``X | None``, ``tuple[X, ...]``,
:data:`Options` (a mapping frozen into sorted pairs, hashable so configs stay static jit arguments) and
nested config dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

C = TypeVar("C")

Options = tuple[tuple[str, Any], ...]
"""Keyword options of a registry entry (``ssm.make``, ``envs.make``) as sorted ``(key, value)`` pairs."""

Choices = Sequence[str] | Callable[[], Sequence[str]]


class ConfigError(ValueError):
    """A config key with a bad value; the message names the key, the value and the valid ones."""


def setting(default: Any, help: str, *, key: str | None = None, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: Choices | None = None) -> Any:
    """A dataclass field with its one-line ``help`` and checks.

    ``key``: the dotted path of the value in the Hydra tree, relative to where the class is read
    (default: the field's name; ``""`` for a nested config class read from the same level; a leading
    ``/`` for a path from the root). ``ge``/``gt``/``le``/``lt``: bounds. ``choices``: the valid
    values, or a function returning them (a registry's ``available``)."""
    metadata = {"help": help, "key": key, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def env_names() -> list[str]:
    """Every registered environment name: the choices of an ``env.name`` (read when checked)."""
    from ssmrl import envs

    return envs.available()


def model_names() -> list[str]:
    """Every sequence-model registry name: the choices of a ``model`` (read when checked)."""
    from ssmrl import ssm

    return ssm.available()


def freeze_options(value: Any, key: str = "options") -> Options:
    """A mapping (or a list of pairs, as JSON stores them) -> sorted ``(key, value)`` pairs, lists as tuples."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        items = [tuple(p) for p in value]
    else:
        raise ConfigError(f"{key} must be a mapping of options, got {value!r}")
    for name, _ in items:
        if not isinstance(name, str):
            raise ConfigError(f"{key} keys must be strings, got {name!r}")
    return tuple(sorted((k, _freeze(v)) for k, v in items))


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return freeze_options(value)
    return value


def _choices(meta: Mapping[str, Any]) -> list[str] | None:
    choices = meta["choices"]
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``, or a ``ConfigError`` naming ``key``."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _convert(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key} must be one of {inner} (or null), got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if tp == Options:
        return freeze_options(value, key)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"config key {key}: unsupported type {tp!r}")


def _check(value: Any, meta: Mapping[str, Any], key: str) -> None:
    """Bounds and choices of one converted value (each element of a tuple for choices)."""
    choices = _choices(meta)
    if choices is not None and value is not None:
        for v in value if isinstance(value, tuple) else (value,):
            if v not in choices:
                raise ConfigError(f"unknown {key} {v!r}; valid: {choices}")
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for bound, ok, word in (("ge", value.__ge__, ">="), ("gt", value.__gt__, ">"), ("le", value.__le__, "<="),
                            ("lt", value.__lt__, "<")):
        limit = meta[bound]
        if limit is not None and not ok(limit):
            raise ConfigError(f"{key} must be {word} {limit:g}, got {value!r}")


def _join(prefix: str, key: str) -> str:
    if key.startswith("/"):
        return key[1:]
    return f"{prefix}.{key}" if prefix and key else prefix or key


def _lookup(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split(".") if path else ():
        if not isinstance(node, Mapping) or part not in node:
            return dataclasses.MISSING
        node = node[part]
    return node


def _build(cls: type[C], tree: Mapping[str, Any], prefix: str, claimed: set[str], by_key: bool,
           hooks: list[Callable[[], None]]) -> C:
    """``cls`` with every field converted and checked; records the paths it read in ``claimed`` and the
    classes' own ``check`` methods in ``hooks`` (inner classes first), to run once no key is unknown."""
    values = {}
    for field in dataclasses.fields(cls):
        tp = _hints(cls)[field.name]
        key = field.metadata.get("key") if by_key else None
        path = _join(prefix, field.name if key is None else key)
        if _is_config(tp):
            node = tree if path == "" else _lookup(tree, path)
            if node is dataclasses.MISSING:
                node = {}
            if not isinstance(node, Mapping):
                raise ConfigError(f"{path} must be a mapping, got {node!r}")
            claimed.add(path)
            values[field.name] = _build(tp, tree, path, claimed, by_key, hooks)
            continue
        value = _lookup(tree, path)
        claimed.add(path)
        if value is dataclasses.MISSING:
            continue
        value = _convert(value, tp, path)
        _check(value, field.metadata, path)
        values[field.name] = value
    config = cls(**values)
    if hasattr(config, "check"):  # the class's own checks across fields
        hooks.append(config.check)
    return config


def _unknown(tree: Mapping[str, Any], claimed: set[str], prefix: str = "") -> None:
    """Refuse the first key of ``tree`` that no field claims, naming the valid keys beside it."""
    for name, node in tree.items():
        path = _join(prefix, str(name))
        if path in claimed and not any(c.startswith(path + ".") for c in claimed):
            continue
        below = sorted({c[len(path) + 1:].split(".")[0] for c in claimed if c.startswith(path + ".")})
        if below and isinstance(node, Mapping):
            _unknown(node, claimed, path)
            continue
        if path not in claimed:
            siblings = sorted({c[len(prefix) + 1 if prefix else 0:].split(".")[0] for c in claimed
                               if (c.startswith(prefix + ".") if prefix else c)})
            where = f" under {prefix}" if prefix else ""
            raise ConfigError(f"unknown config key {path!r}; valid{where}: {siblings}")


def _read(cls: type[C], tree: Any, by_key: bool) -> C:
    """Every field, then unknown keys, then the classes' own checks: each error names the key."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(tree, DictConfig):
        tree = OmegaConf.to_container(tree, resolve=True)
    if not isinstance(tree, Mapping):
        raise ConfigError(f"a {cls.__name__} is read from a mapping, got {tree!r}")
    claimed: set[str] = set()
    hooks: list[Callable[[], None]] = []
    config = _build(cls, tree, "", claimed, by_key, hooks)
    _unknown(tree, claimed)
    for hook in hooks:
        hook()
    return config


def from_tree(cls: type[C], tree: Any) -> C:
    """``cls`` from a composed Hydra config (a ``DictConfig``, resolved) or a nested mapping, every
    field found at its ``key``; unknown keys, bad types, bounds and choices raise :class:`ConfigError`."""
    return _read(cls, tree, by_key=True)


def from_fields(cls: type[C], values: Mapping[str, Any]) -> C:
    """``cls`` from a mapping of its own field names, nested classes as mappings (``to_fields``'s output,
    or a ``run.json`` config), checked as :func:`from_tree` checks; missing fields keep their defaults."""
    return _read(cls, values, by_key=False)


def check(config: C) -> C:
    """Re-check every field of an already built config (one made in Python, not parsed): types, bounds,
    choices and its own ``check()``; returns it unchanged."""
    from_fields(type(config), to_fields(config))
    return config


def to_fields(config: Any) -> dict[str, Any]:
    """A config as plain JSON-ready values keyed by field name: options as mappings, tuples as lists."""

    def plain(value: Any, tp: Any) -> Any:
        if _is_config(tp):
            return to_fields(value)
        if tp == Options:
            return {k: plain(v, Any) for k, v in value}
        if isinstance(value, tuple):
            return [plain(v, Any) for v in value]
        return value

    return {f.name: plain(getattr(config, f.name), _hints(type(config))[f.name]) for f in dataclasses.fields(config)}


def describe(cls: type, prefix: str = "") -> Iterable[tuple[str, str, Any]]:
    """``(key, help, default)`` of every setting of ``cls`` by its Hydra key, nested classes expanded."""
    for field in dataclasses.fields(cls):
        tp = _hints(cls)[field.name]
        key = field.metadata.get("key")
        path = _join(prefix, field.name if key is None else key)
        if _is_config(tp):
            yield from describe(tp, path)
            continue
        help = field.metadata.get("help", "")
        choices = _choices(field.metadata) if not callable(field.metadata.get("choices")) else None
        if choices:
            help = f"{help} ({' | '.join(choices)})"
        yield path, help, field.default
