"""What the suite's cases share: the plan, the deadline, the models built so far, the
detector being timed (one at a time), the end-to-end clip, a scratch folder, cuDNN's
autotuning, and the device's peak memory."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.gpu_suite.budget import Deadline
from benchmarks.gpu_suite.plan import Plan
from detector.errors import ModelConfigError
from pipeline.bench.clips import scaled_clip
from pipeline.bench.model_only import bench_weights

if TYPE_CHECKING:
    import torch

    from detector.engine import Detector
    from detector.ssd import SSD
    from pipeline.types import LabelMap

MIB = 1024 * 1024


class CaseSkipped(Exception):
    """A case that cannot run here, with the reason (e.g. fp16 asked of a CPU)."""


class Workbench:
    """The state the cases share; `root` is the project's checkout (where the tests are),
    `scratch` a folder that lives as long as the suite."""

    def __init__(
        self, plan: Plan, deadline: Deadline, device: torch.device, clip: Path, root: Path,
        scratch: Path,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.deadline = deadline
        self.device = device
        self.clip = clip
        self.root = root
        self.scratch = scratch
        self._detector: Detector | None = None
        self._key: tuple[str, str, str] | None = None
        self._models: dict[str, tuple[SSD, LabelMap]] = {}
        self._scaled: str | None = None

    def detector(self, model: str, runtime: str, precision: str) -> Detector:
        """The detector of (model, runtime, precision) on the plan's device, made once for
        the cases in a row that share it (the one before is let go first), from the model
        built at its first case and kept on the CPU: each detector runs its own prepared
        copy of it, as `Detector.build` would give it.

        Raises:
            CaseSkipped: the combination cannot run here (`ModelConfigError`'s message).
        """
        import torch

        from detector.engine import Detector
        from detector.models import build_model
        from detector.options import DetectorOptions
        from detector.request import DetectorRequest

        key = (model, runtime, precision)
        if self._detector is not None and self._key == key:
            return self._detector
        self.release()
        if runtime == "compile":
            # SSD.forward is one function to torch.compile whatever the model: past its
            # limit on recompilations it would run the next models eagerly.
            torch.compiler.reset()
        try:
            request = DetectorRequest(
                model=model, weights=bench_weights(model), device=str(self.device),
                runtime=runtime, precision=precision,  # type: ignore[arg-type]
            )  # fmt: skip
            options = DetectorOptions.resolve(request)
            if model not in self._models:  # ssd300_vgg16's random init alone takes seconds
                self._models[model] = build_model(request.model, request.weights)
            network, labels = self._models[model]
            self._detector = Detector(network, labels, options)
        except ModelConfigError as error:
            raise CaseSkipped(f"cannot run here: {error}") from None
        self._key = key
        return self._detector

    def release(self) -> None:
        """Lets the detector go, and hands its device memory back (a compiled one's CUDA
        graphs' too, which the next case's peak memory would otherwise count)."""
        compiled = self._key is not None and self._key[1] == "compile"
        if self._detector is not None:
            self._detector.close()  # its host-copy threads, which GC would end later
        self._detector, self._key = None, None
        if compiled:
            import torch

            torch.compiler.reset()
        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def autotuning(self, on: bool) -> Iterator[None]:
        """cuDNN's autotuning (`torch.backends.cudnn.benchmark`) on or off for a case, as it
        was after. Model-only cases time their fixed shapes with it on, as a CUDA detector
        runs; the trainer runs with it off."""
        import torch

        was = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = on
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = was

    def end_to_end_clip(self) -> str:
        """The bundled clip re-encoded at the end-to-end size (made once)."""
        if self._scaled is None:
            e2e = self.plan.end_to_end
            self._scaled = scaled_clip(str(self.clip), e2e.size, self.scratch, e2e.frames)
        return self._scaled

    def reset_peak_memory(self) -> None:
        """Starts counting the device's peak memory afresh (CUDA)."""
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_mib(self) -> float | None:
        """Most device memory torch held since `reset_peak_memory`, MiB; None on the CPU."""
        if self.device.type != "cuda":
            return None
        import torch

        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) / MIB
