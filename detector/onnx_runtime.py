"""ONNX Runtime for an SSD's network on the CPU: the same weights, about twice as fast.

PyTorch's eager CPU kernels run the MobileNet backbones of the SSDLite models at well
under the CPU's multiply-add rate; ONNX Runtime's fused, blocked-layout kernels run the
same graph faster (figures in docs/performance.md). The network is
exported once with `torch.onnx.export` and the file is cached by the hash of its weights,
so later runs start in well under a second. Pre- and post-processing stay in PyTorch,
except in a run from the cache (`detector.cached_onnx`), which never imports it.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from detector import host
from detector.errors import ModelConfigError
from detector.files import write_whole
from detector.quantize import RECIPE, quantize_int8
from pipeline.cores import cores_each, usable_cores
from pipeline.folders import folder_problem

if TYPE_CHECKING:  # torch is imported where a network is exported or hashed, not to run one
    from torch import Tensor

    from detector.ssd import SSD

log = logging.getLogger(__name__)

CACHE_ENV = "SSD_PIPELINE_CACHE"
"""Environment variable naming the cache folder (default: ~/.cache/ssd-pipeline)."""
EXPORT_FORMAT = 1
"""Bumped when the export changes, so that files cached by older versions are not used."""
KEEP_FILES = 16
"""Exported networks kept in the cache, the most recently used; older ones are deleted."""
INPUT, OUTPUTS = "images", ("box_regression", "class_logits")

Announce = Callable[[str], None]
"""Says one line to the person waiting, at once (`python -m pipeline run` prints it among
its start lines on stderr)."""


def cache_dir() -> Path:
    """Where exported networks are kept: $SSD_PIPELINE_CACHE, else the user's cache folder."""
    if root := os.environ.get(CACHE_ENV):
        return Path(root).expanduser() / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ssd-pipeline" / "onnx"


def threads_per_worker(workers: int, sharing: int = 1) -> int:
    """ONNX Runtime's intra-op threads for each of `workers` sessions: a share of the cores
    this process may use, itself one of `sharing` processes that share them (`cores_each`:
    a cluster's shards on one machine)."""
    return max(1, cores_each(sharing) // workers)


def open_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of the network at `path`, on `threads` intra-op threads
    (default: every usable core). Raises what onnxruntime raises when the file cannot be loaded."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    # Spinning threads would take the cores that decoding and encoding need between
    # batches (docs/performance.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Denormal floats are many times slower; flushing them changes no detection.
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if host.int8_sums_saturate():
        # Without VNNI, ONNX Runtime's default u8s8 kernel sums in 16 bits, which saturate:
        # person_ssdlite's int8 network lost 6 % of vtest.avi's people on an AVX2 EPYC. The
        # exact kernel gives the VNNI CPUs' detections, still 1.1x float32's speed there
        # (docs/performance.md, "int8 accuracy"). Float32 networks have no int8 kernels.
        options.add_session_config_entry("session.x64quantprecision", "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def model_key(model: SSD) -> str:
    """A hash of everything the exported graph depends on: class, input size, every
    parameter and buffer (anchors, mean and std included), the torch version."""
    import torch

    digest = hashlib.sha256()
    digest.update(f"{EXPORT_FORMAT}|{torch.__version__}|{type(model).__qualname__}|".encode())
    digest.update(f"{model.input_size}|".encode())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        data = tensor.detach().to("cpu")
        digest.update(f"{name}|{data.dtype}|{list(data.shape)}|".encode())
        if data.dtype == torch.bfloat16:  # numpy has no bfloat16
            data = data.float()
        digest.update(data.numpy().tobytes())  # C order whatever the memory format
    return digest.hexdigest()[:32]


def export_onnx(model: SSD, path: Path) -> None:
    """Write `model` as ONNX to `path`: uint8 images [B, 3, H, W] in, raw outputs out,
    the batch size dynamic."""
    import torch

    net = copy.deepcopy(model).eval().to("cpu").to(memory_format=torch.contiguous_format)
    example = torch.zeros((2, 3, *model.input_size), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,  # one self-contained file (these networks are < 2 GB)
            verbose=False,
        )


class OnnxRuntimeForward:
    """`SSD.forward` through ONNX Runtime on the CPU.

    Args:
        model: the (prepared) network to run; exported once per distinct set of weights.
        name: how to name the model in messages.
        threads: ONNX Runtime's intra-op threads (default: every usable core).
        calibration: run an int8 copy of the network, its activation ranges measured on
            these model inputs, uint8 [N, 3, H, W] (`detector.quantize`); None: float32.
        announce: told, before it starts, of a first run's export or quantization (the
            pause it causes); without it, the log is told (INFO).
        int8_network: run this int8 ONNX file as it is (a checkpoint's measured network,
            `detector.measured_int8`) instead of quantizing `model`.

    Raises:
        ModelConfigError: the packages are missing, or the model cannot be exported or loaded.
    """

    def __init__(
        self,
        model: SSD,
        name: str = "model",
        threads: int | None = None,
        calibration: npt.NDArray[np.uint8] | None = None,
        announce: Announce | None = None,
        int8_network: Path | None = None,
    ) -> None:
        if not host.onnxruntime_available():
            raise ModelConfigError(
                "runtime onnxruntime needs the packages "
                f"{', '.join(host.ONNXRUNTIME_PACKAGES)} ({host.ONNXRUNTIME_INSTALL}); "
                "or set `detector.runtime: torch`"
            )
        self.threads = threads or usable_cores()
        self.int8 = calibration is not None or int8_network is not None
        if int8_network is not None:
            self.path = int8_network
            try:
                self.session = open_session(int8_network, self.threads)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelConfigError(
                    f"onnxruntime cannot load the measured int8 network {int8_network}: "
                    f"{_first_line(exc)}; use `detector.precision: fp32`"
                ) from exc
            return
        self.path, fresh = self._cached(model, name, calibration, announce)
        try:
            self.session = open_session(self.path, self.threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            if fresh:
                raise ModelConfigError(
                    f"onnxruntime cannot load the exported {name} ({self.path}): "
                    f"{_first_line(exc)}; set `detector.runtime: torch`"
                ) from exc
            # A damaged cache file (a full disk, say): export again.
            log.warning("cached ONNX file %s is unusable (%s); exporting again", self.path, exc)
            self.path.unlink(missing_ok=True)
            self.path, _ = self._cached(model, name, calibration, announce)
            self.session = open_session(self.path, self.threads)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images uint8 [B, 3, H, W] on the CPU -> box_regression [B, A, 4] and
        class_logits [B, A, C], float32."""
        import torch

        if images.dtype != torch.uint8:
            raise ValueError(f"onnxruntime runs the network on uint8 images, got {images.dtype}")
        pixels = np.ascontiguousarray(images.numpy())
        box_regression, class_logits = self.session.run(list(OUTPUTS), {INPUT: pixels})
        return torch.from_numpy(box_regression), torch.from_numpy(class_logits)

    @classmethod
    def _cached(
        cls,
        model: SSD,
        name: str,
        calibration: npt.NDArray[np.uint8] | None,
        announce: Announce | None,
    ) -> tuple[Path, bool]:
        """The cached float32 or int8 network to run, made first if it is not cached; and
        whether it was just made."""
        path, fresh = cached_export(model, name, announce=announce)
        if calibration is None:
            return path, fresh
        import onnxruntime

        digest = hashlib.sha256(f"{onnxruntime.__version__}|{RECIPE}|{calibration.shape}|".encode())
        digest.update(np.ascontiguousarray(calibration).tobytes())
        quantized = path.with_name(f"{path.stem}-int8-{digest.hexdigest()[:16]}.onnx")
        if quantized.is_file():
            touch(quantized)
            return quantized, False
        _preparing(
            f"quantizing {name} to int8 on {len(calibration)} calibration frames, once per "
            "calibration (about 10 s)",
            announce,
        )
        _write_cached(
            quantized,
            lambda partial: quantize_int8(path, partial, calibration, INPUT),
            f"quantize {name} to int8",
            "use `detector.precision: fp32`",
        )
        return quantized, True


def cached_export(
    model: SSD,
    name: str,
    fix: str = "set `detector.runtime: torch`",
    announce: Announce | None = None,
) -> tuple[Path, bool]:
    """The cached ONNX file of `model` (`export_onnx`), exported first if there is none;
    and whether it was just exported. `name` names the model in messages and errors;
    `announce` hears of the export before its pause (`_preparing`).

    Raises:
        ModelConfigError: "cannot export {name} ...: why; {fix}".
    """
    folder = cache_dir()
    path = folder / f"{model_key(model)}.onnx"
    if path.is_file():
        touch(path)  # most recently used: the last to be pruned
        return path, False
    if (problem := folder_problem(folder)) is not None:  # caching is an optimisation: run on
        folder = Path(tempfile.mkdtemp(prefix="ssd-pipeline-onnx-"))
        # the sessions hold the network in memory: the files go with the process, not
        # left behind, a network per run, in the temp folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        log.warning("ONNX cache: %s; exporting to %s for this run only", problem, folder)
        path = folder / path.name
    _preparing(
        f"exporting {name} to ONNX for onnxruntime, once per set of weights "
        f"(10-30 s; cached in {folder})",
        announce,
    )
    _write_cached(
        path,
        lambda partial: export_onnx(model, partial),
        f"export {name} to ONNX",
        fix,
    )
    return path, True


def _preparing(what: str, announce: Announce | None) -> None:
    """Says what a first run does before the pause it causes: to the person waiting through
    `announce`, else to the log (INFO); once, not both."""
    if announce is None:
        log.info("preparing the detector: %s", what)
    else:
        announce(f"preparing the detector: {what}…")


def _write_cached(path: Path, write: Callable[[Path], None], action: str, fix: str) -> None:
    """Make the cache file `path` with `write(partial file)`, then rename it into place
    (atomic: another process never sees half a file) and prune the cache.

    Raises:
        ModelConfigError: "cannot {action}: {why}; {fix}", the partial file removed.
    """
    try:  # Ctrl-C too leaves no partial file, which no pruning would ever delete
        write_whole(path, write)
    except Exception as exc:  # the exporter and quantizer raise many types; all mean the same
        raise ModelConfigError(f"cannot {action}: {_first_line(exc)}; {fix}") from exc
    prune(path.parent, keep=path)


def prune(folder: Path, keep: Path, files: int | None = None, pattern: str = "*.onnx") -> None:
    """Delete all but the `files` (default `KEEP_FILES`) most recently used networks (or
    other files matching `pattern`) in `folder`; never `keep`."""
    files = KEEP_FILES if files is None else files
    try:
        cached = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in cached[files:]:
            if old != keep:
                old.unlink(missing_ok=True)
    except OSError as exc:  # another process pruning at the same time, say
        log.warning("cannot prune the ONNX cache %s: %s", folder, exc)


def touch(path: Path) -> None:
    """Marks the cache file `path` as used now (the last to be pruned)."""
    try:
        os.utime(path)
    except OSError:
        # A read-only cache still works; its files are just pruned by export time.
        log.debug("cannot mark %s as used", path)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
