"""Load a scenario file: YAML -> located nodes -> typed :class:`Scenario`.

Every error names the file, the line and the field (``robots[0].base.xyz``) and, for a misspelt
key, suggests the nearest valid one.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from robocell.errors import ScenarioError
from robocell.scenario.model import NAME_PATTERN, Scenario

PathT = tuple[str | int, ...]


def field_name(path: PathT) -> str:
    """``("robots", 0, "base")`` -> ``robots[0].base``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse_field(name: str) -> PathT:
    """Inverse of :func:`field_name`."""
    path: list[str | int] = []
    for part in name.replace("]", "").split("."):
        head, *idx = part.split("[")
        if head:
            path.append(head)
        path += [int(i) for i in idx]
    return tuple(path)


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with where it came from, to locate later (semantic) errors."""

    scenario: Scenario
    file: Path
    lines: Mapping[PathT, int] = field(default_factory=dict)
    #: the file each top-level key came from, when it is not ``file`` (``extends``)
    files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    def line_of(self, path: PathT) -> int | None:
        """The line of the deepest existing node on ``path``."""
        for k in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:k]))
            if line is not None:
                return line
        return None

    def error(self, fld: str | PathT, message: str) -> ScenarioError:
        path = parse_field(fld) if isinstance(fld, str) else fld
        file = self.files.get(str(path[0]), self.file) if path else self.file
        return ScenarioError(
            message, file=str(file), line=self.line_of(path), field=field_name(path) or None
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


#: Most YAML nodes (aliases counted each time they are used) and deepest nesting of a scenario:
#: far above any real cell, they stop "billion laughs" alias bombs and runaway nesting.
MAX_NODES = 200_000
MAX_DEPTH = 100


def _walk(node: yaml.Node, path: PathT, lines: dict[PathT, int], file: str) -> Any:
    """Node tree -> Python data, recording the 1-based line of every path."""
    if len(lines) >= MAX_NODES or len(path) > MAX_DEPTH:
        what = (
            f"more than {MAX_NODES:,} values (aliases counted where used)"
            if len(lines) >= MAX_NODES
            else f"nested more than {MAX_DEPTH} levels deep"
        )
        raise ScenarioError(f"the scenario is {what}", file=file, line=node.start_mark.line + 1)
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise ScenarioError(
                    "keys must be plain names",
                    file=file,
                    line=knode.start_mark.line + 1,
                    field=field_name(path),
                )
            key = str(knode.value)
            if key in out:
                raise ScenarioError(
                    f"duplicate key '{key}'",
                    file=file,
                    line=knode.start_mark.line + 1,
                    field=field_name((*path, key)),
                )
            lines[(*path, key)] = knode.start_mark.line + 1
            out[key] = _walk(vnode, (*path, key), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*path, i), lines, file) for i, v in enumerate(node.value)]
    loader = _UniqueKeyLoader("")
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[PathT, int]]:
    """YAML text -> (data, line of each path). Raises ScenarioError on a syntax error."""
    try:
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise ScenarioError(
            f"the YAML is nested more than {MAX_DEPTH} levels deep", file=file
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or str(exc)).strip()
        raise ScenarioError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"YAML error: {exc}", file=file) from None
    lines: dict[PathT, int] = {}
    if root is None:
        return None, lines
    try:
        data = _walk(root, (), lines, file)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ScenarioError(
            f"YAML error: {exc.problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    return data, lines


def _unwrap(tp: Any) -> list[Any]:
    """Model classes reachable through Optional/Union/list/dict annotations."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        out: list[Any] = []
        for a in typing.get_args(tp):
            out += _unwrap(a)
        return out
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _pick_model(models: list[Any], node: Any) -> Any:
    """Of a union's models, the one a mapping's ``type`` value selects (else the first)."""
    if len(models) > 1 and isinstance(node, dict) and "type" in node:
        for m in models:
            f = m.model_fields.get("type")
            if f is not None and node["type"] in (typing.get_args(f.annotation) or ()):
                return m
    return models[0] if models else None


def _model_at(path: PathT, data: Any = None) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (None if not a model); with the
    parsed ``data``, a type-discriminated entry (a bin among the stations) gets its own."""
    model: type[BaseModel] | None = Scenario
    node = data
    for i, p in enumerate(path):
        if model is None:
            return None
        if isinstance(p, int):
            node = node[p] if isinstance(node, list) and p < len(node) else None
            continue
        f = model.model_fields.get(p)
        if f is None:
            return None
        node = node.get(p) if isinstance(node, dict) else None
        models = _unwrap(f.annotation)
        # a list of models: the entry decides (the next path element is its index)
        target = node
        if isinstance(node, list) and i + 1 < len(path) and isinstance(path[i + 1], int):
            k = path[i + 1]
            target = node[k] if k < len(node) else None
        model = _pick_model(models, target)
    return model


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathT:
    """Drop pydantic's union/type tags from an error location, keeping real data keys."""
    path: list[str | int] = []
    cur = data
    for p in loc:
        if isinstance(cur, dict) and isinstance(p, str) and (p in cur or _is_field(path, p, data)):
            path.append(p)
            cur = cur.get(p)
        elif isinstance(cur, list) and isinstance(p, int):
            path.append(p)
            cur = cur[p] if p < len(cur) else None
    return tuple(path)


def _is_field(path: list[str | int], key: str, data: Any = None) -> bool:
    m = _model_at(tuple(path), data)
    return m is not None and key in m.model_fields


def _message(err: Mapping[str, Any], path: PathT, data: Any = None) -> str:
    etype = err["type"]
    if etype == "extra_forbidden":
        key = str(path[-1])
        parent = _model_at(path[:-1], data)
        valid = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}; valid keys: {', '.join(valid)}"
    if etype == "missing":
        if err["loc"] and isinstance(err["loc"][-1], int):
            return f"too few values: entry {err['loc'][-1]} is missing"
        return "required key is missing"
    msg = str(err["msg"])
    if etype == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
        msg = "a name starts with a letter or '_' and holds only letters, digits, '_' and '-'"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    inp = err.get("input")
    if etype not in ("missing",) and not isinstance(inp, (dict, list)):
        msg += f" (got {json.dumps(inp, default=str)})"
    return msg


def validate_data(
    data: Any,
    file: Path,
    lines: Mapping[PathT, int],
    files: Mapping[str, Path] | None = None,
) -> LoadedScenario:
    """Validate parsed YAML data into a :class:`LoadedScenario`."""
    files = dict(files or {})
    shell = LoadedScenario(Scenario.model_construct(), file, lines, files)
    if not isinstance(data, dict):
        raise shell.error((), "a scenario must be a YAML mapping (key: value lines)")
    try:
        scn = Scenario.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        # report the first error (in file order) so the message is one line
        located = []
        for e in errs:
            path = _clean_loc(tuple(e["loc"]), data)
            located.append((shell.line_of(path) or 0, path, e))
        located.sort(key=lambda x: x[0])
        _, path, e = located[0]
        if e["type"] == "missing" and e["loc"]:
            # a required key reported missing because it is misspelt: report the misspelling,
            # whose message suggests the key
            want = str(e["loc"][-1])
            parent = path[:-1] if path and path[-1] == want else path
            for _, p2, e2 in located:
                if (
                    e2["type"] == "extra_forbidden"
                    and p2[:-1] == parent
                    and difflib.get_close_matches(str(p2[-1]), [want], n=1, cutoff=0.6)
                ):
                    path, e = p2, e2
                    break
        fld = path
        if e["type"] == "missing" and e["loc"] and not isinstance(e["loc"][-1], int):
            fld = (*path, e["loc"][-1]) if e["loc"][-1] not in path else path
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ScenarioError(
            _message(e, path, data) + more,
            file=str(files.get(str(path[0]), file) if path else file),
            line=shell.line_of(path),
            field=field_name(fld) or None,
        ) from None
    return LoadedScenario(scn, file, lines, files)


#: how many files deep ``extends`` may chain
MAX_EXTENDS = 8


def _read(p: Path) -> tuple[Any, dict[PathT, int]]:
    if not p.is_file():
        what = "is a directory, not a scenario file" if p.is_dir() else "scenario file not found"
        raise ScenarioError(what, file=str(p))
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"the file is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
            file=str(p),
        ) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror or exc}", file=str(p)) from None
    data, lines = parse_yaml(text, str(p))
    if data is None:
        raise ScenarioError("the scenario file is empty", file=str(p), line=1)
    return data, lines


def _resolve_extends(
    p: Path, data: Any, lines: dict[PathT, int], seen: tuple[Path, ...]
) -> tuple[Any, dict[PathT, int], dict[str, Path]]:
    """Merge the file a scenario ``extends``: its top-level keys, each replaced as a whole by
    the extending file's own."""
    if not isinstance(data, dict) or "extends" not in data:
        return data, lines, {}
    ref = data["extends"]
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError(
            "extends names a scenario file (relative to this one)",
            file=str(p),
            line=lines.get(("extends",)),
            field="extends",
        )
    parent = (p.parent / ref).resolve()
    where = {"file": str(p), "line": lines.get(("extends",)), "field": "extends"}
    if parent in seen or parent == p.resolve():
        raise ScenarioError(f"'{ref}' extends itself (a loop of extends)", **where)
    if len(seen) >= MAX_EXTENDS:
        raise ScenarioError(f"more than {MAX_EXTENDS} files chained by extends", **where)
    if not parent.is_file():
        raise ScenarioError(f"extends '{ref}': file not found", **where)
    pdata, plines = _read(parent)
    if not isinstance(pdata, dict):
        raise ScenarioError("a scenario must be a YAML mapping", file=str(parent), line=1)
    pdata, plines, pfiles = _resolve_extends(parent, pdata, plines, (*seen, p.resolve()))
    merged = {k: v for k, v in pdata.items() if k != "extends"}
    merged.update(data)
    merged_lines: dict[PathT, int] = {}
    files: dict[str, Path] = {}
    for key in merged:
        own = key in data
        src_lines = lines if own else plines
        merged_lines.update({k: v for k, v in src_lines.items() if k and k[0] == key})
        if not own:
            files[key] = pfiles.get(key, parent)
    merged_lines[()] = lines.get((), 1)
    return merged, merged_lines, files


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read and validate a scenario file (structure and types; see ``cell.build`` for the
    checks that need the robot models and the controller)."""
    p = Path(path)
    data, lines = _read(p)
    data, lines, files = _resolve_extends(p, data, lines, ())
    return validate_data(data, p, lines, files)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the scenario format (for editor autocompletion)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "robocell scenario"
    return schema
