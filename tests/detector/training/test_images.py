"""Images are seen upright: a photo's EXIF orientation turns its size and pixels; a JPEG
cut short is found by reading its header and last bytes, without decoding it; garbage in a
JPEG's compressed data, or data that ends before its image, is named when it is decoded;
an MPO is used as its first image."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, MpoImagePlugin

from detector.training.images import (
    CUT_SHORT,
    UnreadableImage,
    decode_rgb,
    image_size,
    warn_corrupt,
)
from detector.training.jpeg import CORRUPT, ENDS_EARLY, SCANS_MISSING
from detector.training.loader import SampleDataset
from detector.training.samples import DatasetError, read_dataset
from detector.training.transforms import eval_transform
from tests.detector.training.corrupt import (
    broken_huffman_tables,
    ending_early,
    random_bytes,
    with_garbage,
)

ORIENTATION = 0x0112
TURNED_RIGHT = 6  # "rotate 90 degrees clockwise to display"


def photo(path: Path, orientation: int | None) -> np.ndarray:
    """A 60x40 JPEG as stored, with a bright top-left corner; its pixels [40, 60, 3]."""
    pixels = np.full((40, 60, 3), 40, np.uint8)
    pixels[:10, :20] = 250
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return pixels


def test_a_turned_photo_has_the_size_and_pixels_it_is_shown_with(tmp_path: Path) -> None:
    photo(tmp_path / "turned.jpg", TURNED_RIGHT)
    assert image_size(tmp_path / "turned.jpg") == (40, 60)
    upright = decode_rgb(tmp_path / "turned.jpg")
    assert upright.shape == (60, 40, 3)
    # shown turned clockwise, the stored top-left corner is at the top right
    assert upright[:20, -10:].mean() > 200 and upright[:20, :10].mean() < 100


def test_a_photo_without_orientation_is_as_stored(tmp_path: Path) -> None:
    stored = photo(tmp_path / "plain.jpg", None)
    assert image_size(tmp_path / "plain.jpg") == (60, 40)
    assert np.abs(decode_rgb(tmp_path / "plain.jpg").astype(int) - stored).mean() < 3


def test_a_missing_image_is_said_to_be_missing(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="missing image"):
        image_size(tmp_path / "nowhere.jpg")


def test_a_pipe_is_named_not_a_regular_file_not_a_broken_link(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(UnreadableImage, match="not a regular file"):
        image_size(tmp_path / "pipe.jpg")


def test_a_name_too_long_for_the_system_is_unreadable_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match=r"cannot be read \(File name too long\)"):
        decode_rgb(tmp_path / ("x" * 300 + ".jpg"))


def test_a_turned_photo_in_a_dataset_trains_upright(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    photo(tmp_path / "images" / "a.jpg", TURNED_RIGHT)
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("train: images\nnames: [thing]\n")
    [sample] = read_dataset(tmp_path).train
    assert (sample.width, sample.height) == (40, 60)
    assert sample.boxes.tolist() == [[10, 15, 30, 45]]
    image, _, _ = SampleDataset([sample], eval_transform(32))[0]
    assert image.shape == (3, 32, 32)


def with_thumbnail(path: Path) -> bytes:
    """The bytes of a JPEG at `path` whose header holds a thumbnail, a JPEG of its own with
    its own end marker (as cameras store one in EXIF); written to `path`."""
    photo(path, None)
    thumbnail = path.with_suffix(".thumb.jpg")
    photo(thumbnail, None)
    embedded = thumbnail.read_bytes()
    segment = b"\xff\xe1" + (len(embedded) + 2).to_bytes(2, "big") + embedded
    whole = path.read_bytes()
    path.write_bytes(whole[:2] + segment + whole[2:])
    return path.read_bytes()


def test_a_jpeg_cut_short_is_unreadable_from_its_size_on_though_its_header_reads(
    tmp_path: Path,
) -> None:
    whole = with_thumbnail(tmp_path / "a.jpg")
    assert image_size(tmp_path / "a.jpg") == (60, 40)
    (tmp_path / "a.jpg").write_bytes(whole[: len(whole) - 20])  # the thumbnail's end kept
    with pytest.raises(UnreadableImage) as caught:
        image_size(tmp_path / "a.jpg")
    assert str(caught.value) == CUT_SHORT


def test_a_jpeg_with_more_after_its_end_is_whole(tmp_path: Path) -> None:
    whole = with_thumbnail(tmp_path / "a.jpg")
    rng = np.random.default_rng(0)
    after = rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes() + b"\xff\xda\x00"
    (tmp_path / "a.jpg").write_bytes(whole + after)  # a motion photo's video, say
    assert image_size(tmp_path / "a.jpg") == (60, 40)
    assert decode_rgb(tmp_path / "a.jpg").shape == (40, 60, 3)


def textured(path: Path, **options: Any) -> bytes:
    """A 160x120 JPEG of noisy gradients written to `path` (its compressed data some
    kilobytes, as a photo's); its bytes."""
    y, x = np.mgrid[0:120, 0:160]
    pixels = np.stack([x * 1.5, y * 2.0, (x + y) * 0.9], axis=-1)
    pixels += np.random.default_rng(0).integers(0, 40, pixels.shape)
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, **{"quality": 90, **options})
    return path.read_bytes()


def corrupt_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings naming corrupt JPEGs."""
    return [
        r.getMessage()
        for r in caplog.records
        if any(problem in r.getMessage() for problem in (CORRUPT, ENDS_EARLY, SCANS_MISSING))
    ]


def pillow_rgb(path: Path) -> np.ndarray:
    """The pixels of the image at `path` as Pillow decodes them, not a word said."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


@pytest.fixture(autouse=True)
def _each_test_warns_anew() -> None:
    warn_corrupt.cache_clear()  # once a process: a file named in one test, again in the next


def test_garbage_holding_a_marker_in_a_jpeg_is_named_where_it_lies_and_decoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = random_bytes(512, seed=1)
    (tmp_path / "a.jpg").write_bytes(with_garbage(textured(tmp_path / "a.jpg"), garbage))
    assert image_size(tmp_path / "a.jpg") == (160, 120)  # its header is whole
    decoded = np.array(Image.open(tmp_path / "a.jpg").convert("RGB"))  # Pillow: not a word
    assert np.array_equal(decode_rgb(tmp_path / "a.jpg"), decoded)
    [warning] = corrupt_warnings(caplog)
    assert warning.startswith(f"{tmp_path / 'a.jpg'}: {CORRUPT} at byte ")
    assert warning.endswith("; used as it decodes (copy it again if it was broken)")


@pytest.mark.parametrize("seed", range(3))
def test_garbage_without_a_marker_in_a_jpeg_is_named_and_decoded(
    seed: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = random_bytes(64, seed, high=0xFF)  # no 0xFF: no marker, nothing stuffed
    (tmp_path / "a.jpg").write_bytes(with_garbage(textured(tmp_path / "a.jpg"), garbage))
    Image.open(tmp_path / "a.jpg").load()  # Pillow decodes it without a word
    assert decode_rgb(tmp_path / "a.jpg").shape == (120, 160, 3)
    assert corrupt_warnings(caplog) == [
        f"{tmp_path / 'a.jpg'}: {CORRUPT} (its image was complete before its data ended); "
        "used as it decodes (copy it again if it was broken)"
    ]


def test_a_corrupt_jpeg_in_a_dataset_is_named_once_and_trained_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "images").mkdir()
    whole = textured(tmp_path / "images" / "a.jpg")
    (tmp_path / "data.yaml").write_text("train: images\nnames: [thing]\n")
    [sample] = read_dataset(tmp_path).train
    sample.image.write_bytes(with_garbage(whole, random_bytes(64, seed=0, high=0xFF)))
    dataset = SampleDataset([sample], eval_transform(32))
    first, again = dataset[0], dataset[0]  # each epoch decodes it anew
    assert torch.equal(first[0], again[0])
    [warning] = corrupt_warnings(caplog)
    assert warning.startswith(f"{sample.image}: {CORRUPT} (")


def test_a_jpeg_too_broken_to_decode_stops_training_naming_its_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    whole = textured(tmp_path / "images" / "a.jpg")
    (tmp_path / "data.yaml").write_text("train: images\nnames: [thing]\n")
    [sample] = read_dataset(tmp_path).train
    sample.image.write_bytes(broken_huffman_tables(whole))
    with pytest.raises(DatasetError) as caught:
        SampleDataset([sample], eval_transform(32))[0]
    [problem] = caught.value.problems
    assert problem.startswith("images/a.jpg: unreadable image (OSError: ")
    assert problem.endswith(f": {sample.image}") and "\n" not in problem


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"progressive": True},
        {"restart_marker_rows": 1},
        {"progressive": True, "restart_marker_blocks": 3},
        {"optimize": True, "comment": b"\xff\xd9 in a comment"},
        {"subsampling": 0, "quality": 100},
    ],
    ids=[
        "baseline",
        "progressive",
        "restart markers",
        "progressive with restart markers",
        "comment",
        "no subsampling",
    ],
)
def test_a_whole_jpeg_of_many_scans_or_restart_markers_is_not_taken_for_corrupt(
    options: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    textured(tmp_path / "a.jpg", **options)
    assert np.array_equal(decode_rgb(tmp_path / "a.jpg"), pillow_rgb(tmp_path / "a.jpg"))
    assert corrupt_warnings(caplog) == []


def test_a_whole_jpeg_with_a_segment_between_its_scan_and_its_end_is_not_taken_for_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = textured(tmp_path / "a.jpg")
    text = b"written after the scan, longer than the bytes held back"
    comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    (tmp_path / "a.jpg").write_bytes(whole[:-2] + comment + whole[-2:])
    assert np.array_equal(decode_rgb(tmp_path / "a.jpg"), pillow_rgb(tmp_path / "a.jpg"))
    assert corrupt_warnings(caplog) == []


@pytest.mark.parametrize("kept", [2 / 3, 0.995], ids=["a third lost", "its last bytes lost"])
@pytest.mark.parametrize(
    "options", [{}, {"restart_marker_rows": 1}], ids=["baseline", "restart markers"]
)
def test_a_jpeg_whose_data_ends_early_is_named_and_decoded_as_pillow_decodes_it(
    kept: float, options: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = textured(tmp_path / "a.jpg", **options)
    (tmp_path / "a.jpg").write_bytes(ending_early(whole, int(len(whole) * kept)))
    assert image_size(tmp_path / "a.jpg") == (160, 120)  # it has its end marker
    decoded = pillow_rgb(tmp_path / "a.jpg")  # grey where its data ran out
    assert np.array_equal(decode_rgb(tmp_path / "a.jpg"), decoded)
    assert corrupt_warnings(caplog) == [
        f"{tmp_path / 'a.jpg'}: {ENDS_EARLY}; used as it decodes (copy it again if it was broken)"
    ]


def test_a_progressive_jpeg_cut_short_is_unreadable_from_its_size_on(tmp_path: Path) -> None:
    whole = textured(tmp_path / "a.jpg", progressive=True)
    (tmp_path / "a.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(UnreadableImage) as caught:
        image_size(tmp_path / "a.jpg")
    assert str(caught.value) == CUT_SHORT


def test_garbage_holding_a_marker_in_a_progressive_jpeg_is_named_where_it_lies(
    tmp_path: Path,
) -> None:
    whole = textured(tmp_path / "a.jpg", progressive=True)
    (tmp_path / "a.jpg").write_bytes(with_garbage(whole, random_bytes(512, seed=1)))
    assert image_size(tmp_path / "a.jpg") == (160, 120)
    with pytest.raises(OSError):
        pillow_rgb(tmp_path / "a.jpg")  # its decoder reads the marker as a segment, and stops
    with pytest.raises(UnreadableImage) as caught:
        decode_rgb(tmp_path / "a.jpg")
    assert str(caught.value).startswith(f"unreadable image: {CORRUPT} at byte ")
    assert "; too broken to decode (OSError: " in str(caught.value)


def scan_middles(jpeg: bytes) -> list[int]:
    """The byte in the middle of the compressed data of each scan of `jpeg`."""
    middles = []
    for found in re.finditer(rb"\xff\xda", jpeg):
        start = found.start() + 2 + int.from_bytes(jpeg[found.start() + 2 :][:2], "big")
        end = re.compile(rb"\xff[^\x00\xd0-\xd7]").search(jpeg, start)
        assert end is not None
        middles.append((start + end.start()) // 2)
    return middles


@pytest.mark.parametrize("options", [{}, {"restart_marker_blocks": 3}], ids=["", "restart markers"])
def test_a_progressive_jpeg_whose_data_ends_before_its_last_scan_is_named_and_decoded(
    options: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = textured(tmp_path / "a.jpg", progressive=True, **options)
    (tmp_path / "a.jpg").write_bytes(ending_early(whole, scan_middles(whole)[-2]))
    assert image_size(tmp_path / "a.jpg") == (160, 120)  # it has its end marker
    assert np.array_equal(decode_rgb(tmp_path / "a.jpg"), pillow_rgb(tmp_path / "a.jpg"))
    assert corrupt_warnings(caplog) == [
        f"{tmp_path / 'a.jpg'}: {SCANS_MISSING}; used as it decodes (copy it again if it was "
        "broken)"
    ]


@pytest.mark.parametrize("damage", ["ends early", "garbage"])
def test_a_progressive_jpeg_damaged_within_its_last_scan_is_used_as_it_decodes_unnamed(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a known limit: Pillow tells nothing of it, and its decoder reads every scan anyway
    whole = textured(tmp_path / "whole.jpg", progressive=True)
    middle = scan_middles(whole)[-1]
    if damage == "ends early":
        broken = ending_early(whole, middle)
    else:  # no 0xFF byte: no marker
        broken = whole[:middle] + random_bytes(256, seed=1, high=255) + whole[middle + 256 :]
    (tmp_path / "a.jpg").write_bytes(broken)
    decoded = decode_rgb(tmp_path / "a.jpg")
    assert np.array_equal(decoded, pillow_rgb(tmp_path / "a.jpg"))
    assert not np.array_equal(decoded, pillow_rgb(tmp_path / "whole.jpg"))
    assert corrupt_warnings(caplog) == []


def mpo(path: Path) -> bytes:
    """A multi-picture file (MPO, as stereo and phone cameras write): the 160x120 JPEG of
    `textured` and a second, 40x30 one after its end; its bytes, written to `path`."""
    first = Image.open(io.BytesIO(textured(path)))
    second = Image.new("RGB", (40, 30), (200, 30, 30))
    first.save(path, format="MPO", save_all=True, append_images=[second], quality=90)
    return path.read_bytes()


def test_an_mpo_is_used_as_its_first_image_not_taken_for_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mpo(tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.jpg").format == "MPO"
    assert image_size(tmp_path / "a.jpg") == (160, 120)
    assert np.array_equal(decode_rgb(tmp_path / "a.jpg"), pillow_rgb(tmp_path / "a.jpg"))
    assert corrupt_warnings(caplog) == []


def test_garbage_in_the_first_image_of_an_mpo_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = mpo(tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as opened:
        assert isinstance(opened, MpoImagePlugin.MpoImageFile)
        assert opened.mpinfo is not None
        first_end = opened.mpinfo[0xB002][0]["Size"]  # the first image's length in bytes
    garbage = random_bytes(64, seed=0, high=0xFF)
    (tmp_path / "a.jpg").write_bytes(with_garbage(whole, garbage, end=first_end))
    assert decode_rgb(tmp_path / "a.jpg").shape == (120, 160, 3)
    [warning] = corrupt_warnings(caplog)
    assert warning.startswith(f"{tmp_path / 'a.jpg'}: {CORRUPT} (")


def test_a_jpeg_cut_short_is_still_unreadable_when_decoded_not_corrupt(tmp_path: Path) -> None:
    whole = textured(tmp_path / "a.jpg")
    (tmp_path / "a.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(UnreadableImage) as caught:
        decode_rgb(tmp_path / "a.jpg")
    assert str(caught.value).startswith("unreadable image (OSError: image file is truncated")


def test_a_png_whose_pixels_are_broken_is_unreadable_when_its_size_is_read(
    tmp_path: Path,
) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    whole = (tmp_path / "a.png").read_bytes()
    middle = len(whole) // 2  # in its compressed pixels; its header is whole
    (tmp_path / "a.png").write_bytes(whole[:middle] + bytes(64) + whole[middle + 64 :])
    with pytest.raises(UnreadableImage) as caught:  # Pillow looks for EXIF after the pixels
        image_size(tmp_path / "a.png")
    assert str(caught.value) == (
        "unreadable image (OSError: broken data stream when reading image file)"
    )


def test_a_16_bit_greyscale_png_decodes_to_its_top_8_bits_not_clipped_to_white(
    tmp_path: Path,
) -> None:
    ramp = (np.arange(40 * 60).reshape(40, 60) * 27).astype(np.uint16)  # 0..63_693
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    assert image_size(tmp_path / "grey16.png") == (60, 40)
    pixels = decode_rgb(tmp_path / "grey16.png")
    assert pixels.shape == (40, 60, 3)
    np.testing.assert_array_equal(pixels[..., 1], (ramp >> 8).astype(np.uint8))


@pytest.mark.parametrize("mode", ["F", "I"])
def test_a_32_bit_image_is_named_unreadable_at_its_header(tmp_path: Path, mode: str) -> None:
    Image.new(mode, (60, 40)).save(tmp_path / "wide.tif")
    with pytest.raises(UnreadableImage, match=r"^a 32-bit .* image, not one of 8 or 16 bits"):
        image_size(tmp_path / "wide.tif")
