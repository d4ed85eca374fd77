"""What `run` checks before it reads a frame, checked without reading one: for `validate`.

The detector's options are resolved on this machine (the device is there, int8 has
onnxruntime), weights that would need a download are named, and the model is built on the
CPU (its weights read and fitted, as `run` does, without the engine's export) so that
`detector.labels` is checked against the model's own class names. Sinks are not opened:
that has effects (tables created, ports bound).
"""

from __future__ import annotations

from pipeline.config import DetectorConfig


def check_detector(config: DetectorConfig) -> str:
    """The model's class count, in words, once everything `run` checks of the detector
    before reading holds.

    Raises:
        ModelConfigError: an unknown model, a missing device, labels the model lacks, ...
        WeightsUnavailableError: weights that are missing, unreadable or not downloaded yet.
    """
    from detector.engine import resolve_label_filter
    from detector.errors import WeightsUnavailableError
    from detector.models import build_model
    from detector.options import DetectorOptions
    from detector.state_dicts import OFFLINE_ALTERNATIVES, hub_cache_file
    from detector.torchvision_models import pending_download

    request = config.to_request()
    DetectorOptions.resolve(request)
    url = pending_download(request.model, request.weights)
    if url is not None:
        cached = hub_cache_file(url)
        raise WeightsUnavailableError(
            f"{request.model} weights are not downloaded yet ({cached} is missing); run would "
            f"download {url} first, which needs internet access: run it once where there is, "
            f"or download that file elsewhere and set `detector.weights: /path/to/{cached.name}`, "
            f"{OFFLINE_ALTERNATIVES}"
        )
    model, labels = build_model(request.model, request.weights)
    resolve_label_filter(request.labels, labels, model.background_class)
    classes = len(labels.names) - (model.background_class is not None)
    return f"{classes} class{'es' if classes != 1 else ''}"
