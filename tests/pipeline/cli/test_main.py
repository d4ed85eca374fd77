"""The command line as a whole: `--version`, global options anywhere, help for everything,
Ctrl-C and SIGTERM in a command that does not stop on its own."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from pipeline.cli import MaskCredentials, build_parser, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == (
        f"python -m pipeline {importlib.metadata.version('ssd-pipeline')}\n"
    )


@pytest.mark.parametrize("command", ["validate", "query", "subscribe", "run"])
def test_log_level_works_after_the_command_as_before_it(command: str) -> None:
    given = ["cams.yaml"] if command in ("validate", "run") else []
    parse = build_parser().parse_args
    assert parse([command, *given]).log_level == "warning"
    assert parse(["--log-level", "info", command, *given]).log_level == "info"
    assert parse([command, *given, "--log-level", "debug"]).log_level == "debug"
    assert parse(["--log-level", "info", command, *given, "--log-level", "error"]).log_level == (
        "error"
    )


def test_every_command_and_option_has_help() -> None:
    parser = build_parser()
    missing = [a.dest for a in parser._actions if not a.help]
    for name, command in _commands().items():
        if not command.description and not _help_of(parser, name):
            missing.append(name)
        missing += [f"{name} {a.dest}" for a in command._actions if not a.help]
    assert missing == []


@pytest.mark.parametrize("command", [["query"], ["retention"], ["serve"], ["dataset", "export"]])
def test_every_db_option_names_the_database_it_reads_by_default(command: list[str]) -> None:
    parser = _commands()[command[0]]
    for name in command[1:]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    db = next(a for a in parser._actions if a.dest == "db")
    assert db.default == "sqlite:///out/detections.db"
    assert db.help is not None and db.default in db.help


def _help_of(parser: argparse.ArgumentParser, name: str) -> str | None:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next((c.help for c in sub._choices_actions if c.dest == name), None)


def test_a_malformed_log_call_does_not_end_the_run_through_the_password_filter() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s and %s", ("one",), None)
    assert MaskCredentials().filter(record)  # logging itself reports the bad call, once
    masked = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "%s", ("rtsp://u:secret@127.0.0.1/s",), None
    )
    assert MaskCredentials().filter(masked) and "secret" not in masked.getMessage()


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(data: object) -> object:
        raise KeyboardInterrupt  # as in `evaluate` reading its images

    monkeypatch.setattr("detector.training.samples.read_dataset", interrupted)
    assert main(["evaluate", "--model", "person_ssdlite", "--data", "coco.json"]) == 130
    out, err = capsys.readouterr()
    assert (out, err) == ("", "\ninterrupted: evaluate stopped before it finished\n")


def test_sigterm_in_a_command_is_the_same_line_as_ctrl_c_and_exit_143(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def terminated(data: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)  # `kill` while `evaluate` reads its images
        time.sleep(30)  # the handler's exception ends it at once
        raise AssertionError("SIGTERM did not stop the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr("detector.training.samples.read_dataset", terminated)
    assert main(["evaluate", "--model", "person_ssdlite", "--data", "coco.json"]) == 143
    out, err = capsys.readouterr()
    assert (out, err) == ("", "\ninterrupted: evaluate stopped before it finished\n")
    assert signal.getsignal(signal.SIGTERM) is before  # the test process's own, back


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["export", "--model", "person_ssdlite", "--out", "/dev/null/x.onnx"], "error: --out: "),
        (["train", "--data", ".", "--epochs", "-1"], "error: --epochs: must be from 1"),
        (["run"], "error: the following arguments are required: config"),
        (["dataset", "export", "--run", "x", "--out", "ds"], "error: --run: not a whole number"),
        (["query", "--limit", "many"], "error: --limit: "),
        (["validate", "cams.yaml", "--log-level", "loud"], "error: --log-level: invalid choice"),
        (["no-such-command"], "error: COMMAND: invalid choice: 'no-such-command'"),
        (["subscribe", "--timeout", "1e12"],
         "error: --timeout: must be from 0 to 31536000 seconds (365 days), got '1e12'"),
        (["serve", "--port", "70000"], "error: --port: must be from 0 to 65535, got '70000'"),
    ],
    ids=["export-out", "train-epochs", "run-no-config", "dataset-export-run", "query-limit",
         "validate-log-level", "unknown-command", "subscribe-timeout", "serve-port"],
)  # fmt: skip
def test_a_refused_argument_is_one_error_line_without_the_usage_block(
    argv: list[str], starts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert err.startswith(starts) and err.count("\n") == 1, err
    assert "usage:" not in err and err.endswith("--help`)\n")


def _leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """The paths of every command that takes no further command: `query`, `dataset export`."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        return [path]
    return [
        leaf
        for name, command in sub.choices.items()
        for leaf in _leaf_commands(command, (*path, name))
    ]


GIVEN = {"--older-than": "1d"}
"""Required options that "1" does not satisfy, and a value that does."""


def _required(command: argparse.ArgumentParser) -> list[str]:
    """Arguments that satisfy what `command` requires: "1" unless `GIVEN` says otherwise."""
    given: list[str] = []
    for action in command._actions:
        if not action.option_strings:
            given.append("1")
        elif action.required:
            option = action.option_strings[0]
            given += [option, GIVEN.get(option, "1")]
    return given


@pytest.mark.parametrize("path", _leaf_commands(build_parser()), ids=" ".join)
def test_an_unknown_argument_points_to_the_help_of_its_own_command(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # where a required output path of "1" could be written
    command = build_parser()
    for name in path:
        sub = next(a for a in command._actions if isinstance(a, argparse._SubParsersAction))
        command = sub.choices[name]
    with pytest.raises(SystemExit) as exit_:
        main([*path, *_required(command), "--bogus"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == (
        f"error: unrecognized arguments: --bogus (see `python -m pipeline {' '.join(path)} "
        "--help`)\n"
    )
