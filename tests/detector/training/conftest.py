"""Fixtures of the training tests: one small shapes dataset per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.detector.training.datasets import ShapesData, make_shapes_dataset


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> ShapesData:
    """12 shapes images, the last 4 for validation. Read only: copy them (write_coco,
    write_voc, write_yolo into a test's tmp_path) before changing anything."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), images=12, val=4, seed=0)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread, as in a DataLoader worker, for tests that augment images: on a
    busy 2-core machine, two threads spend most of a small op handing work over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
