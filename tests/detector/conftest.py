"""Fixtures shared by the detector tests."""

from __future__ import annotations

import pytest

from detector.ssd import SSD
from detector.tf_ssd import person_ssdlite


@pytest.fixture(scope="session")
def person() -> SSD:
    """The bundled person model (tests never change it: `Detector` works on a copy)."""
    return person_ssdlite("default")[0]
