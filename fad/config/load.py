"""Load a config: defaults <- YAML file <- trailing `KEY VALUE` overrides, validated, then frozen.

Values are data: YAML is read with `yaml.safe_load`, strings that look like Python literals
(`("coco_2017_train",)`, `(640, 800)`) go through `ast.literal_eval`, never `eval`. Every error is a
one-line `FadError` naming the file, line and key path. Inputs are bounded
(`fad.runtime.limits`): a config file of at most 1 MiB of UTF-8 text, 100 levels and 100,000
YAML nodes (an alias counted at each use, so an alias bomb stops at once), overrides of at most
10,000 characters; a bad value is shown cut to 80 characters.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode as CN

from fad.config.defaults import get_default_config
from fad.config.validate import non_finite_value, validate_config
from fad.errors import FadError
from fad.runtime.limits import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_NODES,
    MAX_NESTING,
    MAX_OVERRIDE_CHARS,
    read_text_file,
    shown,
)


def all_keys(node: CN, prefix: str = "") -> list[str]:
    """Every leaf key path of a config, e.g. `MODEL.FCOS.NUM_CLASSES`."""
    keys = []
    for name, value in node.items():
        path = f"{prefix}{name}"
        keys.extend(all_keys(value, path + ".") if isinstance(value, CN) else [path])
    return keys


def closest_key(key: str, node: CN) -> str | None:
    """The valid key path most similar to `key` (for "did you mean")."""
    candidates = all_keys(node) + [k for k in _section_paths(node)]
    best = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if best:
        return best[0]
    leaf = key.rsplit(".", 1)[-1]
    by_leaf = difflib.get_close_matches(leaf, [c.rsplit(".", 1)[-1] for c in candidates], n=1)
    if by_leaf:
        return next(c for c in candidates if c.rsplit(".", 1)[-1] == by_leaf[0])
    return None


def _section_paths(node: CN, prefix: str = "") -> Iterable[str]:
    for name, value in node.items():
        if isinstance(value, CN):
            yield f"{prefix}{name}"
            yield from _section_paths(value, f"{prefix}{name}.")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def coerce_value(key: str, value: Any, default: Any, where: str) -> Any:
    """Convert `value` to the type of `default`, or raise a FadError naming `where` and `key`."""
    if isinstance(value, str) and not isinstance(default, str):
        value = _literal(value)
    if isinstance(default, str) and not isinstance(value, str):
        value = str(value) if value is not None else ""
    if isinstance(default, (tuple, list)):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            raise FadError(f"{where}: {key} must be a list/tuple, got {shown(value)}")
        if default and all(
            isinstance(d, (int, float)) and not isinstance(d, bool) for d in default
        ):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise FadError(f"{where}: {key} must be a tuple of numbers, got {shown(value)}")
        _check_finite(key, value, where)
        return tuple(value) if isinstance(default, tuple) else list(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise FadError(f"{where}: {key} must be True or False, got {shown(value)}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FadError(f"{where}: {key} must be an integer, got {shown(value)}")
        if isinstance(value, float) and not value.is_integer():
            raise FadError(f"{where}: {key} must be an integer, got {shown(value)}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FadError(f"{where}: {key} must be a number, got {shown(value)}")
        _check_finite(key, value, where)
        return float(value)
    return value


def _check_finite(key: str, value: Any, where: str) -> None:
    """A float (or a list of them) must be finite: `1e999` or `.inf` is a typo, not a setting."""
    problem = non_finite_value(key, value)
    if problem:
        raise FadError(f"{where}: {problem}")


def _set(cfg: CN, key: str, value: Any, where: str) -> None:
    if len(key) > 200:
        raise FadError(f"{where}: unknown config key {shown(key)}")
    node = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, CN) or part not in node:
            hint = closest_key(key, cfg)
            suggestion = f" (did you mean {hint}?)" if hint else ""
            raise FadError(f"{where}: unknown config key {key}{suggestion}")
        if i < len(parts) - 1:
            node = node[part]
    default = node[parts[-1]]
    if isinstance(default, CN):
        raise FadError(f"{where}: {key} is a section, not a value; set one of its keys")
    node[parts[-1]] = coerce_value(key, value, default, where)


def _yaml_leaves(node: yaml.Node, prefix: str, path: str) -> Iterable[tuple[str, Any, int]]:
    """(key path, value, 1-based line) for every leaf of a YAML mapping node."""
    if not isinstance(node, yaml.MappingNode):
        raise FadError(f"{path}:{node.start_mark.line + 1}: expected a mapping of config keys")
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        if isinstance(value_node, yaml.MappingNode):
            yield from _yaml_leaves(value_node, key + ".", path)
        else:
            try:
                value = yaml.safe_load(yaml.serialize(value_node))
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or type(exc).__name__
                raise FadError(f"{path}:{key_node.start_mark.line + 1}: {key}: {problem}") from None
            yield key, value, key_node.start_mark.line + 1


def merge_from_text(cfg: CN, text: str, source: str) -> None:
    """Merge YAML text into `cfg`; errors read `source:line: ...`."""
    if len(text) > MAX_CONFIG_BYTES:
        raise FadError(
            f"{source}: {len(text)} characters, more than the {MAX_CONFIG_BYTES} allowed"
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise FadError(f"{source}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FadError(f"{source}{line}: invalid YAML: {shown(problem)[1:-1]}") from None
    if root is None:
        return
    _check_node_budget(root, source)
    for key, value, line in _yaml_leaves(root, "", source):
        if key == "_BASE_":
            raise FadError(f"{source}:{line}: _BASE_ configs are not supported; merge the files")
        _set(cfg, key, value, f"{source}:{line}")


def _check_node_budget(root: yaml.Node, source: str) -> None:
    """Count the nodes a reader of `root` would visit (an alias at each use, without expanding
    anything) and stop at MAX_CONFIG_NODES or MAX_NESTING levels."""
    stack = [(root, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        if visited > MAX_CONFIG_NODES or depth > MAX_NESTING:
            limit = (
                f"more than {MAX_CONFIG_NODES} YAML nodes (aliases counted at each use)"
                if visited > MAX_CONFIG_NODES
                else f"more than {MAX_NESTING} levels"
            )
            raise FadError(f"{source}:{node.start_mark.line + 1}: invalid config: {limit}")
        if isinstance(node, yaml.MappingNode):
            stack += [(child, depth + 1) for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(child, depth + 1) for child in node.value]


def merge_from_file(cfg: CN, path: str | Path) -> None:
    """Merge a YAML config file into `cfg`, reporting errors as `file:line: ...`."""
    merge_from_text(cfg, read_text_file(path, MAX_CONFIG_BYTES, "config file"), str(path))


def merge_from_list(cfg: CN, opts: Sequence[str]) -> None:
    """Merge trailing `KEY VALUE` pairs from the command line."""
    if len(opts) % 2:
        raise FadError(f"overrides must be KEY VALUE pairs; {shown(opts[-1])} has no value")
    for text in opts:
        if len(text) > MAX_OVERRIDE_CHARS:
            raise FadError(
                f"override {shown(text)}: {len(text)} characters, more than the "
                f"{MAX_OVERRIDE_CHARS} allowed"
            )
    for key, value in zip(opts[0::2], opts[1::2]):
        _set(cfg, key, value, f"override {key}")


def load_config(
    config_file: str | Path | None = None,
    opts: Sequence[str] = (),
    *,
    world_size: int = 1,
    freeze: bool = True,
    text: str | None = None,
    text_source: str = "<config>",
) -> CN:
    """Defaults <- `config_file` (or YAML `text`, e.g. from a checkpoint) <- `opts`, validated
    (`world_size` checks the batch split)."""
    cfg = get_default_config()
    if text is not None:
        merge_from_text(cfg, text, text_source)
    if config_file:
        merge_from_file(cfg, config_file)
    merge_from_list(cfg, list(opts))
    validate_config(cfg, world_size=world_size)
    if freeze:
        cfg.freeze()
    return cfg


def save_config(cfg: CN, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically) so a run can be reproduced from its folder."""
    from fad.runtime.atomic import atomic_write_text

    atomic_write_text(Path(path), cfg.dump())
