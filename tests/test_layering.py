"""The layering of the packages, read from their imports (README, "How it works").

`pipeline/types/`, `pipeline/boxes.py`, `pipeline/urls.py`, `pipeline/folders.py`,
`pipeline/cores.py` and `pipeline/stoppable.py` (the vocabulary) import nothing from the project but their own modules;
`detector/`, `trackers/`, `analytics/` and `sinks/` import only the vocabulary and
themselves, never each other; the rest of `pipeline/` sits on top, and nothing but
`python -m pipeline` imports the command line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("pipeline", "detector", "trackers", "analytics", "sinks", "benchmarks")
# pipeline.folders is here so that the detector (its ONNX cache) and the sinks (their output
# folders) check a folder by one rule with one wording, which neither may import from the
# other; a leaf like the rest, it imports nothing from the project (checked below).
VOCABULARY = (
    "pipeline.types",
    "pipeline.boxes",
    "pipeline.urls",
    "pipeline.folders",
    "pipeline.cores",
    "pipeline.stoppable",
)
STAGES = ("detector", "trackers", "analytics", "sinks")


def project_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a project module in `path`, wherever it stands
    (functions included: an import deferred for speed is still a dependency)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pipeline import boxes` imports pipeline.boxes, not the package
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT:
                yield node.lineno, name


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def is_within(name: str, module: str) -> bool:
    """Whether `name` is `module` or something inside it (a submodule, or a name in it)."""
    return name == module or name.startswith(module + ".")


def layering_violations(path: Path) -> list[str]:
    """The imports of `path` that point up or sideways, as "file:line imports module"."""
    module = module_name(path)
    package = module.split(".")[0]
    bad = []
    for line, name in project_imports(path):
        home = next((v for v in VOCABULARY if is_within(module, v)), None)
        if home is not None:  # a leaf: only its own package's modules
            allowed = is_within(name, home)
        elif package in STAGES:
            allowed = is_within(name, package) or any(is_within(name, v) for v in VOCABULARY)
        elif package == "benchmarks":  # stand-alone scripts on the library, not the CLI
            allowed = not is_within(name, "pipeline.cli") and not is_within(
                name, "pipeline.bench.cli"
            )
        else:  # pipeline's upper half: anything but the command line, but the CLI itself
            allowed = (
                not is_within(name, "pipeline.cli")
                or is_within(module, "pipeline.cli")
                or module == "pipeline.__main__"
            )
        if not allowed:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


def project_files() -> list[Path]:
    return sorted(p for package in PROJECT for p in (ROOT / package).rglob("*.py"))


def test_every_import_points_down_the_layers() -> None:
    files = project_files()
    assert len(files) > 40  # the whole project was read
    violations = [v for path in files for v in layering_violations(path)]
    assert violations == []


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        ("detector/agreement.py", "from trackers.iou import box_iou\n", 1),
        ("analytics/scene.py", "from trackers import IoUTracker\n", 1),
        ("sinks/video/sink.py", "def f():\n    from pipeline.config import VideoSinkConfig\n", 1),
        ("pipeline/types/tracks.py", "from pipeline.boxes import box_iou\n", 1),
        ("pipeline/types/tracks.py", "from pipeline.types.frames import check_image\n", 0),
        ("pipeline/types/__init__.py", "from sinks.base import Sink\n", 1),
        ("pipeline/folders.py", "from sinks.base import SinkError\n", 1),
        ("detector/onnx_runtime.py", "from sinks.disk import folder_problem\n", 1),
        ("detector/onnx_runtime.py", "from pipeline.folders import folder_problem\n", 0),
        ("benchmarks/vtest.py", "from pipeline.cli import main\n", 1),
        ("sinks/video/sink.py", "from pipeline import types\nfrom sinks.base import Sink\n", 0),
        ("pipeline/runner.py", "from detector import Detector\nimport sinks.base\n", 0),
    ],
)
def test_the_check_finds_imports_that_point_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, source: str, expected: int
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    assert len(layering_violations(path)) == expected
