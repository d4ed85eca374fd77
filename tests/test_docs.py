"""The user documentation against the code it describes: the command lines of README.md,
docs/ and benchmarks/README.md name only options the commands take, README lists every
command, every relative link in them points to a file (and heading) that exists, every config
example in them is a valid config, and the sink guide's example runs as written."""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import re
from pathlib import Path

import pytest
import yaml

import pipeline.config
import pipeline.runner
from pipeline.cli import build_parser
from pipeline.config.loader import ConfigError, parse_config
from tests.conftest import VideoFactory
from tests.pipeline.stalling import Hopping

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *(ROOT / "docs").glob("*.md")]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
PIPE = re.compile(r"\s\|\s+(?=[a-z])")
"""A shell pipe (`| head`), not a choice (`pretty|json`, `[--limit N | --all]`)."""


def readme_command_lines() -> list[tuple[list[str], set[str]]]:
    """(command words, options) of each command in README's "Commands" block; a line that
    starts with spaces goes on the command above it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands: list[tuple[list[str], set[str]]] = []
    for line in block.splitlines():
        usage = line.split("#", 1)[0]
        if usage.startswith("python -m pipeline"):
            words = command_words(usage)
            commands.append((words, set()))
        if commands:
            commands[-1][1].update(re.findall(r"(--[a-z][a-z0-9-]*)", usage))
    return commands


def command_words(usage: str) -> list[str]:
    """The command's words in `usage` (`dataset export`), before its first argument."""
    return list(itertools.takewhile(lambda w: w.isalpha(), usage.split()[3:]))[:2]


def subcommand(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The parser of `words` (`dataset export`), as deep as they name subcommands."""
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def documented_commands() -> list[tuple[str, str]]:
    """(page:line, command line) of each `python -m pipeline ...` in the pages: in code
    blocks, with its indented continuation lines, and inline; up to a pipe or comment."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
            first = text[: block.start()].count("\n") + 2
            for n, line in enumerate(block.group(1).splitlines()):
                usage = PIPE.split(line.split(" #", 1)[0], 1)[0].strip()
                if "python -m pipeline" in usage:
                    usage = usage[usage.index("python -m pipeline") :]
                    found.append((f"{page.relative_to(ROOT)}:{first + n}", usage))
                elif found and line.startswith(" ") and usage.startswith(("[", "--")):
                    found[-1] = (found[-1][0], f"{found[-1][1]} {usage}")
        for span in re.finditer(r"`(python -m pipeline [^`]*)`", FENCE.sub("", text)):
            found.append((str(page.relative_to(ROOT)), PIPE.split(span.group(1), 1)[0]))
    return found


def test_documented_command_lines_name_only_options_their_commands_take() -> None:
    parser = build_parser()
    commands = documented_commands()
    assert len(commands) > 50
    wrong = []
    for where, usage in commands:
        words = command_words(usage)
        command = subcommand(parser, words)
        known = {flag for action in command._actions for flag in action.option_strings}
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", usage))
        wrong += [f"{where}: {' '.join(words)} {option}" for option in sorted(options - known)]
    assert wrong == []


def test_readme_lists_every_command() -> None:
    parser = build_parser()
    listed = {words[0] for words, _ in readme_command_lines() if words}
    commands = subcommand(parser, [])._actions
    choices = next(a for a in commands if isinstance(a, argparse._SubParsersAction)).choices
    assert set(choices) - listed == set()


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of `page`: lower case, punctuation dropped, spaces
    made dashes, a repeated heading numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text("utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        missing = not linked.exists()
        if missing or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


SECTIONS = {"cameras", "detector", "tracker", "analytics", "sinks", "http", "cluster"}
YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def config_examples() -> list[tuple[str, str]]:
    """(page:line, text) of each YAML block of the docs made only of config sections; one
    without `cameras:` gets a camera, so that its sections are checked."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in YAML_BLOCK.finditer(text):
            data = yaml.safe_load(block.group(1))
            if not isinstance(data, dict) or not set(data) <= SECTIONS:
                continue
            example = block.group(1)
            if "cameras" not in data:
                example = "cameras: [{id: cam, source: clip.mp4}]\n" + example
            line = text[: block.start()].count("\n") + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", example))
    return found


EXAMPLES = config_examples()


@pytest.mark.parametrize("example", [e for _, e in EXAMPLES], ids=[w for w, _ in EXAMPLES])
def test_config_examples_in_the_docs_are_valid_configs(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in re.findall(r"\$\{(\w+)", example):
        monkeypatch.setenv(name, "x")
    try:
        parse_config(example, check_sources=False)
    except ConfigError as exc:
        # the files an example names (a checkpoint, a key) are the reader's own
        assert [p for p in exc.problems if "not found" not in p] == []


PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_the_sink_guides_example_runs_as_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    synthetic_video: VideoFactory,
) -> None:
    """docs/sinks.md's sink, and its lines that plug it in, run on two cameras with
    snapshots on (its "ended" events held) in place of config/cams.yaml."""
    sink_code, plugging = PYTHON_BLOCK.findall((ROOT / "docs" / "sinks.md").read_text("utf-8"))
    clip = synthetic_video("clip.mp4", frames=30, fps=10)
    config = parse_config(
        f"cameras:\n  - id: a\n    source: {clip}\n  - id: b\n    source: {clip}\n"
        "tracker:\n  t_min: 1\n  max_age: 0\n"
        f"sinks:\n  - type: snapshots\n    dir: {tmp_path / 'snaps'}\n"
    )
    monkeypatch.setattr(pipeline.config, "load_config", lambda path: config)
    run = functools.partial(pipeline.runner.Pipeline, detector=Hopping())
    monkeypatch.setattr(pipeline.runner, "Pipeline", run)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "people_csv"}
    exec(compile(sink_code, "docs/sinks.md", "exec"), namespace)
    exec(compile(plugging, "docs/sinks.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert "people-csv: 60 rows in out/people.csv; people seen: a 6, b 6" in printed
    with (tmp_path / "out" / "people.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["camera", "frame", "time", "people"]
    assert sorted((c, int(i), int(n)) for c, i, _, n in rows[1:]) == [
        (c, i, 1) for c in "ab" for i in range(30)
    ]
