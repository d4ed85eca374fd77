"""YAML from an untrusted file, parsed in bounded time and memory.

PyYAML's safe loading builds nothing but plain data, yet a small file can still cost
without limit: aliases that repeat aliases ("billion laughs") expand into more values than
memory holds once the data is walked, an alias inside what it names makes a structure
with no end, and deep nesting overflows Python's stack. It also keeps the last of two
equal keys without a word. `compose` refuses each of these with a `yaml.MarkedYAMLError`
naming the line. libyaml scans and parses when PyYAML has it (3 to 6 times faster than
PyYAML's own parser); the nodes are composed here, where the limits are kept.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

MAX_BYTES = 1 << 20
"""Largest config accepted: 1 MiB (a config of 10,000 cameras is about 400 KB)."""
MAX_DEPTH = 32
"""Deepest nesting accepted (a config nests 5 levels deep)."""
MAX_VALUES = 200_000
"""Most values (mappings, lists, keys and scalars) a config may hold, each alias counted
as all it names (10,000 cameras are 50,000)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_PATH = reprlib.Repr()
_PATH.maxstring = 4096  # PATH_MAX: a path the system opens is shown whole


class YamlRefused(yaml.MarkedYAMLError):
    """Valid YAML, but over a limit; `problem` says which."""


def compose(text: str) -> tuple[Node | None, Any]:
    """The YAML document in `text` as (node tree, plain data); (None, None) when empty.

    The node tree holds the line of every value. Raises yaml.YAMLError: YamlRefused for a
    limit, a ConstructorError for a duplicate key or a value that cannot be read.
    """
    check_size(len(text))
    loader = LOADERS[0](text)
    root = loader.get_single_node()
    return root, None if root is None else loader.construct_document(root)


def check_size(size: int) -> None:
    """Raises YamlRefused when a config of `size` bytes (or characters) is too large."""
    if size > MAX_BYTES:
        raise YamlRefused(problem=f"the file is larger than {MAX_BYTES >> 20} MiB")


def short_repr(value: object) -> str:
    """repr() of a value quoted in a message: a long one by its start and end only."""
    return _SHORT.repr(value)


def path_repr(path: str) -> str:
    """repr() of a path quoted in a message: whole, so that the user can tell which file,
    on one line; one longer than any the system opens by its start and end only."""
    return _PATH.repr(path)


def shown_path(path: str) -> str:
    """A path as a message names it: as typed when that prints on one line, else its
    `path_repr` (a newline, a terminal escape, bytes that are not UTF-8)."""
    return path if path.isprintable() else path_repr(path)


class _Bounded(Composer, SafeConstructor, Resolver):
    """SafeLoader's composing and constructing, with a nesting limit, a budget of values
    counting aliases expanded, no alias inside what it names, and no duplicate keys."""

    def __init__(self, text: str) -> None:
        self._read(text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._composed = 0  # nodes made: bounds memory before any collection is complete
        self._values: dict[int, int] = {}  # id(node): values in it, aliases expanded

    def _read(self, text: str) -> None:
        """Sets up the scanner and parser on `text`."""
        raise NotImplementedError

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            named = self.anchors.get(event.anchor)
            if named is not None and id(named) not in self._values:
                raise YamlRefused(
                    problem=f"alias *{event.anchor} is inside what it names (no end to it)",
                    problem_mark=mark,
                )
            return super().compose_node(parent, index)
        self._composed += 1
        if self._composed > MAX_VALUES:
            raise _too_many(mark)
        if self._depth >= MAX_DEPTH:
            raise YamlRefused(problem=f"nested over {MAX_DEPTH} levels deep", problem_mark=mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._values[id(node)] = self._count(node)
        return node

    def _count(self, node: Node) -> int:
        """Values in `node`, each alias under it counted as all it names."""
        if not isinstance(node, CollectionNode):
            return 1
        pairs = isinstance(node, MappingNode)
        children = [n for pair in node.value for n in pair] if pairs else node.value
        total = 1 + sum(self._values[id(child)] for child in children)
        if total > MAX_VALUES:
            raise _too_many(node.start_mark)
        return total

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # 2026-13-45, an int of 5,000 digits
            raise ConstructorError(
                problem=f"cannot read {short_repr(node.value)} as {node.tag.rsplit(':', 1)[-1]}: "
                f"{str(exc).split(';')[0]}",
                problem_mark=node.start_mark,
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # keys merged in (<<) are there to be overridden
            key = self.construct_object(key_node)
            if key in first_line:
                raise ConstructorError(
                    problem=f"duplicate key {short_repr(key)} (first on line {first_line[key]})",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _too_many(mark: Any) -> YamlRefused:
    return YamlRefused(
        problem=f"more than {MAX_VALUES:,} values, counting each alias as all it names",
        problem_mark=mark,
    )


class _PythonLoader(_Bounded, Reader, Scanner, Parser):
    """PyYAML's own scanner and parser."""

    def _read(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


LOADERS: list[type[_Bounded]] = [_PythonLoader]
"""The loaders that can run here; `compose` uses the first."""

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _LibyamlLoader(_Bounded, CParser):
        """libyaml's scanner and parser."""

        def _read(self, text: str) -> None:
            CParser.__init__(self, text)

    LOADERS.insert(0, _LibyamlLoader)
