"""The training-epoch case's child process: `python -m pipeline train` with the arguments
given, run here, then what its trainer did (device, mixed precision, batch size, workers,
each validation's seconds) and the process's peak GPU memory, as JSON in a file.

    python -m benchmarks.gpu_suite.train_child REPORT.json --data DIR --out DIR ...
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `train` with `argv[1:]`, writes the report to `argv[0]`; train's exit status."""
    began = time.perf_counter()  # before torch's import: the set-up counts it
    report, *train_args = sys.argv[1:] if argv is None else list(argv)
    import torch

    from detector.training import trainer as trainer_module
    from detector.training.evaluation import Metrics

    seen: dict[str, Any] = {}
    validations: list[float] = []

    class ObservedTrainer(trainer_module.Trainer):
        """The command's trainer, unchanged, telling what it runs with and timing its
        validations (the epoch log's seconds hold an epoch's training and validation)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            job = self.job
            seen.update(
                device=str(self.device), amp=self.amp, batch_size=self.batch_size,
                workers=job.settings.workers, train_images=len(job.train),
                val_images=len(job.val), steps_per_epoch=self.steps_per_epoch,
                input_size=job.size, setup_seconds=time.perf_counter() - began,
            )  # fmt: skip

        def _validate(self) -> Metrics:
            started = time.perf_counter()
            metrics = super()._validate()  # its predictions come back to the host: synced
            validations.append(time.perf_counter() - started)
            return metrics

    # `train` imports the class when it runs: it makes this one.
    trainer_module.Trainer = ObservedTrainer  # type: ignore[misc]
    code = _run_pipeline(["train", *train_args])
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    data = {
        "exit_code": code,
        "trainer": seen,
        "validation_seconds": validations,
        "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / MIB if cuda else None,
        "seconds": time.perf_counter() - began,
    }
    Path(report).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return code


def _run_pipeline(args: list[str]) -> int:
    """`python -m pipeline ARGS` in this process, as a user runs it; its exit status."""
    argv = sys.argv
    sys.argv = ["pipeline", *args]
    try:
        runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else 0 if code is None else 1
    finally:
        sys.argv = argv
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
