"""Reading a YAML config: `${ENV}` expansion, validation, and errors that point at the YAML.

Relative paths (sources, output folders, SQLite files) are relative to the directory the
pipeline is run from, like the paths a user types on the command line.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config import safe_yaml
from pipeline.config.base import yaml_path
from pipeline.config.cameras import CHECK_SOURCES, FILE_PROBE, PROBE_SOURCES, FileProbe
from pipeline.config.hosts import unknown_hosts
from pipeline.config.schema import PipelineConfig
from pipeline.folders import LINK_LOOP, link_loop
from pipeline.urls import mask_credentials

MAX_PROBLEMS_SHOWN = 50
"""Problems the message lists; the rest are counted (all stay in `ConfigError.problems`)."""
MAX_PROBLEM_CHARS = 300
"""Longest problem line: a value is shown by its start (a hostile one may be megabytes)."""


class ConfigError(ValueError):
    """The config cannot be used; `problems` lists each bad field as "path (line N): why".

    One problem makes a one-line message; more are listed one a line below the source.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = [_clip(mask_credentials(p), MAX_PROBLEM_CHARS) for p in problems]
        if len(self.problems) == 1:
            super().__init__(f"{source}: {self.problems[0]}")
            return
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        more = len(self.problems) - len(shown)
        lines = [f"{source}: {len(self.problems)} problems", *(f"  {p}" for p in shown)]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


def load_config(
    path: str | Path,
    *,
    check_sources: bool = True,
    probe_sources: bool = False,
    file_probe: FileProbe | None = None,
    resolve_hosts: bool = False,
) -> PipelineConfig:
    """Read, expand and validate a YAML config; raises ConfigError naming every bad field.

    `check_sources=False` leaves out whether source files and folders exist: a run reports a
    missing one as that camera's failure instead. `probe_sources=True` also checks that
    each file source is a video and each image source holds an image (`PROBE_SOURCES`),
    the files by `file_probe` when given (`FILE_PROBE`). `resolve_hosts=True` also asks the
    system whether the host names the run binds or must reach resolve (`unknown_hosts`),
    once the rest holds.
    """
    path = Path(path)
    shown = safe_yaml.shown_path(str(path))
    try:
        if not path.is_file():  # a folder, a FIFO that would block, /dev/zero that never ends
            why = "not a regular file" if path.exists() else "no such file"
            why = LINK_LOOP if link_loop(path) else why  # not "no such file": a link is there
            raise ConfigError(shown, [f"cannot read the file: {why}"])
        with path.open("rb") as file:
            raw = file.read(safe_yaml.MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(shown, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        safe_yaml.check_size(len(raw))
        text = raw.decode("utf-8")
    except safe_yaml.YamlRefused as exc:
        raise ConfigError(shown, [_yaml_problem(exc)]) from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            shown, [f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})"]
        ) from None
    return parse_config(
        text,
        source=shown,
        check_sources=check_sources,
        probe_sources=probe_sources,
        file_probe=file_probe,
        resolve_hosts=resolve_hosts,
    )


def parse_config(
    text: str,
    source: str = "<config>",
    *,
    check_sources: bool = True,
    probe_sources: bool = False,
    file_probe: FileProbe | None = None,
    resolve_hosts: bool = False,
) -> PipelineConfig:
    """Expand and validate YAML `text`; raises ConfigError naming every bad field (and with
    `resolve_hosts`, a host name that does not resolve: `unknown_hosts`)."""
    try:
        root, data = safe_yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_problem(exc)]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a mapping with at least a 'cameras' key"])

    unset: dict[tuple[str | int, ...], str] = {}
    data = _expand_env(data, (), unset)
    problems = [
        f"{_where(loc, root)}: environment variable {name} is not set"
        for loc, name in unset.items()
    ]
    nul = _nul_strings(data, ())
    problems += [f"{_where(loc, root)}: {NUL_PROBLEM}" for loc in nul]
    problems += _keys_not_text(root, ())
    context: dict[str, object] = {CHECK_SOURCES: check_sources, PROBE_SOURCES: probe_sources}
    if file_probe is not None:
        context[FILE_PROBE] = file_probe
    try:
        config = PipelineConfig.model_validate(data, context=context)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _yaml_loc(err["loc"], data)
            if err["type"] == "invalid_key":  # reported by `_keys_not_text`, at their lines
                continue
            if loc not in unset and loc not in nul:  # already reported as what it came from
                problems.append(_describe(err, loc, data, root))
    except OSError as exc:  # a path the file system will not look up, e.g. a name too long
        name = safe_yaml.short_repr(exc.filename)
        problems.append(f"cannot check the path {name}: {exc.strerror or exc}")
    if not problems and resolve_hosts:
        problems = [f"{_where(loc, root)}: {why}" for loc, why in unknown_hosts(config)]
    if problems:
        raise ConfigError(source, problems)
    return config


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: "line N: invalid YAML: why" ("line N: why" for a limit)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):  # str() of it spans lines
        problem = f"character {exc.character!r} at position {exc.position}: {exc.reason}"
    kind = "" if isinstance(exc, safe_yaml.YamlRefused) else "invalid YAML: "
    return f"{where}{kind}{' '.join(str(problem).split())}"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


NUL_PROBLEM = "holds a NUL character (\\0), which no path, URL or name may hold"
"""Why a string with "\\0" (a YAML escape) is refused: the operating system cuts or refuses
such a path, which would otherwise fail only once a sink opens it, mid-run."""


def _nul_strings(value: Any, loc: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    """The paths of the strings in `value` that hold a NUL character."""
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _nul_strings(v, (*loc, k))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _nul_strings(v, (*loc, i))]
    return [loc] if isinstance(value, str) and "\0" in value else []


_KEY_KINDS = {"int": "number", "float": "number", "bool": "yes/no value", "null": "null",
              "timestamp": "date"}  # fmt: skip
"""What YAML reads an unquoted key as, by its tag's last part, for a key that is not text."""


def _keys_not_text(node: Any, loc: tuple[str | int, ...]) -> list[str]:
    """A problem for each mapping key YAML reads as other than text (`1:`, `~:`, `yes:`),
    at the path of its mapping and its own line: every key of a config is a name."""
    problems = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            kind = str(getattr(key, "tag", "")).rpartition(":")[2]
            if isinstance(key, yaml.ScalarNode) and kind != "str" and kind != "merge":
                what = _KEY_KINDS.get(kind, kind)
                problems.append(
                    f"{yaml_path(loc) or '<top>'} (line {key.start_mark.line + 1}): YAML reads "
                    f"the key {safe_yaml.short_repr(key.value)} as a {what}, not a name; quote it"
                )
            elif isinstance(key, yaml.ScalarNode):
                problems += _keys_not_text(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _keys_not_text(item, (*loc, index))
    return problems


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(
    value: Any, loc: tuple[str | int, ...], unset: dict[tuple[str | int, ...], str]
) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; records unset variables by path."""
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), unset) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name, default)
        if found is None:
            unset[loc] = name
            return ""
        return found

    return _ENV.sub(substitute, value)


def _describe(err: Any, loc: tuple[str | int, ...], data: Any, root: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = _lookup(data, loc[:-1])
        fields = _field_names(loc[:-1], data)
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = (
            f"; allowed: {', '.join(sorted(fields))}" if fields and isinstance(parent, dict) else ""
        )
        return f"{_where(loc, root)}: unknown key{hint}{allowed}"
    if kind == "missing":
        return f"{_where(loc, root)}: required field is missing"
    if kind == "union_tag_invalid":
        expected = str(err.get("ctx", {}).get("expected_tags", "")).replace("'", "")
        return f"{_where(loc, root)}: unknown type; expected one of {expected}"
    if kind == "union_tag_not_found":
        kinds = " (video, live, zmq or sql)" if loc[:1] == ("sinks",) else ""
        return f"{_where(loc, root)}: missing 'type'{kinds}"
    msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    shown = (
        ""
        if kind.startswith("value_error") or isinstance(got, (dict, list))
        else f" (got {safe_yaml.short_repr(got)})"
    )
    text = _text_of(loc, root) if kind == "string_type" and type(got) in _YAML_KINDS else ""
    if text:
        shown += f": YAML reads {text!r} as a {_YAML_KINDS[type(got)]}; quote it"
    return f"{_where(loc, root)}: {msg}{shown}"


_YAML_KINDS = {bool: "yes/no value", int: "number", float: "number", date: "date", datetime: "date"}
"""What YAML made of unquoted text that a text field was given: `on`, `1.0`, `2026-01-01`."""


def _text_of(loc: Sequence[str | int], root: Any) -> str:
    """The text at `loc` as the YAML file writes it."""
    node = root
    for part in loc:
        found = _child_node(node, part)
        if found is None:
            return ""
        node = found[0]
    return str(getattr(node, "value", ""))


def _yaml_loc(loc: Sequence[str | int], data: Any) -> tuple[str | int, ...]:
    """Pydantic's error location without the union tags it inserts (sinks.0.video.crf)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if not isinstance(node, (dict, list)) and out:
            break  # a shorthand scalar (`source: clip.mp4`) stands for the fields under it
        out.append(part)
        node = _child(node, part)
    return tuple(out)


def _child(node: Any, part: str | int) -> Any:
    """node[part] of a parsed YAML mapping or list; None when there is no such entry."""
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _lookup(data: Any, loc: Sequence[str | int]) -> Any:
    node = data
    for part in loc:
        node = _child(node, part)
    return node


def _field_names(loc: Sequence[str | int], data: Any) -> list[str]:
    """Field names of the model at `loc`, for "did you mean" hints; [] when unknown."""
    model: type[BaseModel] = PipelineConfig
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        candidates = _models_in(field.annotation)
        if len(candidates) > 1:  # a type-keyed union: the item's `type` picks the model
            item = _lookup(data, loc[: i + 2])
            tag = item.get("type") if isinstance(item, dict) else None
            candidates = [
                m for m in candidates if get_args(m.model_fields["type"].annotation) == (tag,)
            ]
        if len(candidates) != 1:
            return []
        model = candidates[0]
    return list(model.model_fields)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _where(loc: Sequence[str | int], root: Any) -> str:
    text = yaml_path(loc)
    line = _line_of(loc, root)
    camera = _camera_id(loc, root)
    notes = [f"camera {camera}"] if camera else []
    notes += [f"line {line}"] if line else []
    return f"{text or '<top>'} ({', '.join(notes)})" if notes else (text or "<top>")


def _camera_id(loc: Sequence[str | int], root: Any) -> str | None:
    """The id of the camera entry `loc` is inside, as written; None elsewhere (and for the
    id itself, which its message shows)."""
    if len(loc) < 2 or loc[0] != "cameras" or not isinstance(loc[1], int) or loc[2:3] == ("id",):
        return None
    node = root
    for part in (*loc[:2], "id"):
        found = _child_node(node, part)
        if found is None:
            return None
        node = found[0]
    return node.value if isinstance(node, yaml.ScalarNode) and node.value else None


def _line_of(loc: Sequence[str | int], node: Any) -> int | None:
    """1-based line of the deepest YAML node on the path `loc`."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        found = _child_node(node, part)
        if found is None:
            break
        node, line = found
    return line


def _child_node(node: Any, part: str | int) -> tuple[Any, int] | None:
    """The YAML node at `part` under `node`, and its 1-based line (a mapping entry's is its
    key's); None when there is none."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value, key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child = node.value[part]
        return child, child.start_mark.line + 1
    return None
