"""Fixtures shared by the detector tests."""

from __future__ import annotations

import pytest
import torch

from detector import host
from detector.ssd import SSD
from detector.tf_ssd import person_ssdlite


@pytest.fixture(scope="session")
def person() -> SSD:
    """The bundled person model (tests never change it: `Detector` works on a copy)."""
    return person_ssdlite("default")[0]


@pytest.fixture
def cuda_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch says one CUDA device is there, whatever machine runs the tests: for
    `DetectorOptions.resolve`, which only asks (nothing may run on that device)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(host, "gpu_device_nodes", lambda: True)


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees no CUDA device, whatever machine runs the tests."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
