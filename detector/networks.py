"""The network a `Detector` runs, chosen once when it is built: PyTorch in micro-batches,
PyTorch under `torch.compile`, or ONNX Runtime (`detector.onnx_runtime`), all one `Network`."""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from detector.errors import ModelConfigError
from detector.onnx_runtime import Announce, OnnxRuntimeForward, threads_per_worker
from detector.options import DetectorOptions
from detector.ssd import SSD

log = logging.getLogger(__name__)


class Network(Protocol):
    """An SSD's raw outputs for a batch of model inputs."""

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] (0..255) -> box_regression [B, A, 4], class_logits [B, A, C]."""
        ...


class CompiledNetwork:
    """A prepared SSD under `torch.compile` (inductor, fixed shapes: each new batch size
    compiles again, tens of seconds each). On CUDA it replays CUDA graphs (mode
    "reduce-overhead"), which removes the per-kernel launch cost of small batches."""

    def __init__(self, model: SSD, device: torch.device) -> None:
        self.cuda_graphs = device.type == "cuda"
        mode = "reduce-overhead" if self.cuda_graphs else None
        self.network = torch.compile(model, mode=mode, dynamic=False)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] -> box_regression [B, A, 4], class_logits [B, A, C]."""
        if not self.cuda_graphs:
            return self.network(images)
        torch.compiler.cudagraph_mark_step_begin()
        box_regression, class_logits = self.network(images)
        # A graph's replay writes its outputs into the same memory every time: the next
        # batch's forward pass would overwrite these while `result` still reads them.
        return box_regression.clone(), class_logits.clone()


class MicroBatches:
    """A torch network run on `size` images at a time (None: the whole batch at once), its
    outputs concatenated: the same outputs as one pass."""

    def __init__(self, network: Network, size: int | None) -> None:
        self.network = network
        self.size = size

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] -> box_regression [B, A, 4], class_logits [B, A, C]."""
        if self.size is None or images.shape[0] <= self.size:
            return self.network(images)
        outputs = [self.network(chunk) for chunk in images.split(self.size)]
        return (
            torch.cat([o[0] for o in outputs]),
            torch.cat([o[1] for o in outputs]),
        )


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that conv.

    Works on `nn.Sequential` children (torchvision's `Conv2dNormActivation` and its SSD
    heads are such); the norm becomes `nn.Identity`. Changes `module` in place; returns it.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = seq._modules[first], seq._modules[second]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and conv.out_channels == norm.num_features
            ):
                seq._modules[first] = fuse_conv_bn_eval(conv.eval(), norm.eval())
                seq._modules[second] = nn.Identity()
    return module


def prepare_model(model: SSD, device: torch.device) -> SSD:
    """An inference copy of `model` on `device`: eval, batch norms folded, channels_last.

    The caller's model is left as it was (it may share modules with another model).
    """
    prepared = copy.deepcopy(model).eval()
    fold_batch_norms(prepared)
    return prepared.to(device).to(memory_format=torch.channels_last)


Calibration = Callable[[], npt.NDArray[np.uint8]]
"""Makes the int8 calibration inputs, uint8 [N, 3, H, W], resized as the detector resizes."""


def open_network(
    model: SSD, options: DetectorOptions, calibration: Calibration, announce: Announce | None = None
) -> tuple[Network, DetectorOptions]:
    """The network `options` ask for, running the prepared `model`, and the options that
    really run: where an `auto` choice cannot be made here (auto's int8 network, or auto's
    onnxruntime, fails to export, quantize or load), the next choice, with a warning.
    `announce` is told of a first run's export or quantization before it starts.

    Raises:
        ModelConfigError: what was asked for (not left to `auto`) cannot run.
    """
    if options.runtime != "onnxruntime":
        network = CompiledNetwork(model, options.device) if options.runtime == "compile" else model
        return MicroBatches(network, options.micro_batch), options
    try:
        return _onnx_network(model, options, calibration, announce), options
    except ModelConfigError as exc:
        if (fallback := options.without_auto_int8(str(exc))) is not None:
            # int8 was this machine's choice, not the user's: float32 still works. Info, not a
            # warning: the run's first line and its summary say what ran and why.
            log.info("%s; running the network in float32 instead", exc)
        elif (fallback := options.without_auto_onnxruntime(str(exc))) is not None:
            one = ", one batch at a time" if options.workers > 1 else ""
            log.info("%s; running the network with torch instead%s", exc, one)
        else:
            raise
    return open_network(model, fallback, calibration, announce)


def _onnx_network(
    model: SSD, options: DetectorOptions, calibration: Calibration, announce: Announce | None
) -> OnnxRuntimeForward:
    """`model` run by ONNX Runtime (for precision int8, its measured int8 network where
    there is one, else an int8 copy quantized here), each worker's runs on its share of the
    cores."""
    height, width = model.input_size
    name = f"the {type(model).__name__} network ({height}x{width} input)"
    threads = threads_per_worker(options.workers, options.sharing)
    if options.int8_network is not None:
        return OnnxRuntimeForward(model, name, threads, int8_network=options.int8_network)
    inputs = calibration() if options.precision == "int8" else None
    return OnnxRuntimeForward(model, name, threads, calibration=inputs, announce=announce)
