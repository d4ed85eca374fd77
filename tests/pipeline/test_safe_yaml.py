"""Hostile YAML: every config, however made, is refused in one line, in bounded time and
memory, naming the line where it can; none is half-read (the last of two keys kept)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config, parse_config, safe_yaml

CAMERA = "cameras:\n  - id: a\n    source: clip.mp4\n"


@pytest.fixture(autouse=True)
def in_folder_with_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"x")


@pytest.fixture(params=[loader.__name__ for loader in safe_yaml.LOADERS])
def each_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Runs a test with libyaml's parser (where PyYAML has it) and with PyYAML's own."""
    chosen = next(loader for loader in safe_yaml.LOADERS if loader.__name__ == request.param)
    monkeypatch.setattr(safe_yaml, "LOADERS", [chosen])
    yield


def problem_of(text: str) -> str:
    """The one problem `text` is refused for."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="cams.yaml")
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def laughs(levels: int, fanout: int, inline: str) -> str:
    """Anchors each naming `fanout` aliases of the one before ("billion laughs")."""
    lines = ["l0: &l0 [lol]"]
    for i in range(1, levels):
        items = ", ".join([f"*l{i - 1}"] * fanout)
        lines.append(inline.format(name=f"l{i}", items=items, prev=f"l{i - 1}"))
    return "\n".join(lines) + f"\ncameras: *l{levels - 1}\n"


ALIAS_BOMBS = {
    "lists": laughs(9, 9, "{name}: &{name} [{items}]"),
    "mappings": laughs(9, 9, "{name}: &{name} {{a: *{prev}, b: *{prev}, c: *{prev}, "
                             "d: *{prev}, e: *{prev}, f: *{prev}, g: *{prev}, h: *{prev}}}"),
    "wide-and-shallow": laughs(3, 1000, "{name}: &{name} [{items}]"),
    "inside-a-camera": CAMERA.replace("source: clip.mp4", "source: clip.mp4\n    x: *l8")
    .replace("cameras:", laughs(9, 9, "{name}: &{name} [{items}]").rsplit("\n", 2)[0]
             + "\ncameras:"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ALIAS_BOMBS))
def test_aliases_that_expand_beyond_the_budget_are_refused_at_their_line(
    name: str, each_loader: None
) -> None:
    problem = problem_of(ALIAS_BOMBS[name])
    assert "values, counting each alias as all it names" in problem
    assert problem.startswith("line ")


def test_an_anchor_reused_and_merged_within_the_budget_is_read_as_written(
    each_loader: None,
) -> None:
    config = parse_config(
        "cameras:\n  - &cam {id: a, source: clip.mp4, detect_every: 2}\n"
        "  - {<<: *cam, id: b, detect_every: 3}\n  - {<<: *cam, id: c}\n"
    )
    assert [(c.id, c.detect_every) for c in config.cameras] == [("a", 2), ("b", 3), ("c", 2)]


@pytest.mark.parametrize(
    "text",
    [
        "cameras: &a [*a]\n",
        "cameras: &a {x: *a}\n",
        "cameras: &a [[[*a]]]\n",
        "cameras: &a\n  - id: a\n    source: *a\n",
        "cameras: &a {<<: *a}\n",
    ],
)
def test_an_alias_inside_what_it_names_is_refused(text: str, each_loader: None) -> None:
    assert problem_of(text).endswith(": alias *a is inside what it names (no end to it)")


DEEP = 10_000


@pytest.mark.parametrize(
    "text",
    [
        "cameras: " + "[" * DEEP + "]" * DEEP + "\n",
        "cameras: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n",
        "cameras:\n" + "".join("  " * i + f"k{i}:\n" for i in range(100)),
        "cameras:\n" + "".join("  " * i + "-\n" for i in range(100)),
        "cameras: " + "[{a: " * (DEEP // 2) + "1" + "}]" * (DEEP // 2) + "\n",
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings", "block-lists", "mixed"],
)
def test_deep_nesting_is_refused_at_its_line_without_a_recursion_error(
    text: str, each_loader: None
) -> None:
    assert problem_of(text).endswith(f"nested over {safe_yaml.MAX_DEPTH} levels deep")


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = safe_yaml.MAX_DEPTH - 1  # the document's mapping is the first level
    root, data = safe_yaml.compose("x: " + "[" * depth + "]" * depth + "\n")
    assert root is not None and data is not None


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("cameras: []\ndetector: {}\ncameras: [x]\n", 3, "'cameras'"),
        (CAMERA + "    id: b\n", 4, "'id'"),
        (CAMERA + "detector: {batch_size: 4, batch_size: 8}\n", 4, "'batch_size'"),
        (CAMERA + "sinks:\n  - type: sql\n    url: a\n    type: zmq\n", 7, "'type'"),
        (CAMERA + "tracker:\n  t_min: 1\n  'max_age': 1\n  \"t_min\": 2\n", 7, "'t_min'"),
    ],
    ids=["top", "camera", "flow", "sink-type", "quoted"],
)
def test_duplicate_keys_are_refused_naming_both_lines(
    text: str, line: int, key: str, each_loader: None
) -> None:
    problem = problem_of(text)
    assert problem.startswith(f"line {line}: invalid YAML: duplicate key {key} (first on line ")


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("9" * 5000, 4),  # more digits than Python converts to an int
        ("2026-13-45", 4),  # a date that does not exist
        ("0000-01-01", 4),
    ],
)
def test_a_scalar_that_cannot_be_read_is_refused_at_its_line(value: str, line: int) -> None:
    problem = problem_of(CAMERA + f"    queue_size: {value}\n")
    assert problem.startswith(f"line {line}: invalid YAML: cannot read ")
    assert len(problem) < 300


@pytest.mark.parametrize(
    "raw",
    [
        CAMERA.encode() + b"    # caf\xe9 in latin-1\n",
        "cameras: []\n".encode("utf-16"),
        CAMERA.encode() + b"    \xe2\x82\n",  # a UTF-8 sequence cut short
        b"\xff" * 100,
    ],
    ids=["latin-1", "utf-16", "truncated", "binary"],
)
def test_a_file_that_is_not_utf8_is_refused_naming_the_line(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "cams.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "not UTF-8 text (byte 0x" in problem and problem.startswith("line ")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b"])
def test_control_characters_are_refused_in_one_line(char: str, each_loader: None) -> None:
    problem = problem_of(CAMERA + f"    id: a{char}b\n")
    assert "\n" not in problem
    assert "invalid YAML: " in problem and "characters are not allowed" in problem


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    with path.open("w") as f:
        f.write(CAMERA)
        f.write("#" * (safe_yaml.MAX_BYTES + 1))
    with pytest.raises(ConfigError, match=r"cams.yaml: the file is larger than 1 MiB$"):
        load_config(path)


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_a_path_that_is_not_a_regular_file_is_refused_without_waiting(
    tmp_path: Path, kind: str
) -> None:
    path = {"folder": tmp_path, "fifo": tmp_path / "pipe", "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer forever
    with pytest.raises(ConfigError, match=r"cannot read the file: not a regular file$"):
        load_config(path)


def test_a_config_path_that_is_a_link_loop_is_named_as_one_not_as_missing(
    tmp_path: Path,
) -> None:
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)  # ln -s loop.yaml loop.yaml
    with pytest.raises(ConfigError) as info:
        load_config(loop)
    assert str(info.value) == f"{loop}: cannot read the file: a link that leads back to itself"


def test_many_values_without_aliases_are_refused_once_over_the_budget(
    each_loader: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safe_yaml, "MAX_VALUES", 1000)  # the same count, made fast
    _, data = safe_yaml.compose("x: [" + "1, " * 996 + "1]\n")  # 1 + 1 + 1 + 997 values
    assert len(data["x"]) == 997
    for text in ("x: [" + "1, " * 997 + "1]\n", "cameras:\n" + "  - 1\n" * 2000):
        assert problem_of(text).endswith(
            ": more than 1,000 values, counting each alias as all it names"
        )


def test_a_thousand_cameras_are_read_and_checked(each_loader: None) -> None:
    text = "cameras:\n" + "".join(f"  - id: cam{i}\n    source: clip.mp4\n" for i in range(1000))
    assert len(parse_config(text).cameras) == 1000
