"""Opening users' images: odd ones are turned into the RGB picture a viewer shows, broken ones
are refused with a reason, and box scales map back to the original's pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from genie.regions.images import BadImage, find_image, image_id, list_images, open_image


def save(path, image, **options):
    image.save(path, **options)
    return path


def test_odd_but_valid_images_become_rgb(tmp_path):
    cases = {
        "gray.jpg": Image.new("L", (40, 30), 128),
        "rgba.png": Image.new("RGBA", (40, 30), (255, 0, 0, 0)),  # fully transparent red
        "palette.gif": Image.new("P", (40, 30), 3),
        "deep.png": Image.fromarray(np.full((30, 40), 60000, np.uint16)),
        "cmyk.jpg": Image.new("CMYK", (40, 30), (0, 255, 255, 0)),
    }
    for name, image in cases.items():
        picture = open_image(save(tmp_path / name, image))
        assert picture.image.mode == "RGB" and picture.image.size == (40, 30), name
        assert picture.size == (40, 30) and picture.scale == 1.0, name
    flattened = open_image(tmp_path / "rgba.png").image.getpixel((0, 0))
    assert flattened == (255, 255, 255)  # transparent shows the white page, not black or red
    assert open_image(tmp_path / "deep.png").image.getpixel((0, 0))[0] > 200  # 16-bit scaled, not clipped to 255s


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (60, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    picture = open_image(save(tmp_path / "phone.jpg", image, exif=exif))
    assert picture.image.size == (20, 60) and picture.size == (20, 60)


def test_a_large_jpeg_is_decoded_smaller_with_its_scale(tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (4400, 4200, 3), np.uint8))
    picture = open_image(save(tmp_path / "big.jpg", image, quality=30))
    assert picture.image.width < 4200 / 1.9 and picture.scale >= 1.9  # draft mode: a power-of-two reduction
    assert picture.size == (4200, 4400)  # boxes are written in the original's pixels


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), "not a readable image"),
    (lambda p: p.write_bytes(np.random.default_rng(1).bytes(5000)), "not a readable image"),
    (lambda p: p.write_bytes(_jpeg_bytes()[:600]), "truncated or corrupt"),
])
def test_broken_images_are_refused_with_a_reason(tmp_path, make, reason):
    path = tmp_path / "broken.jpg"
    make(path)
    with pytest.raises(BadImage, match=reason):
        open_image(path)


def test_missing_and_too_large_images_are_refused(tmp_path):
    with pytest.raises(BadImage, match="no such file"):
        open_image(tmp_path / "nope.jpg")
    path = save(tmp_path / "wide.png", Image.new("RGB", (300, 200)))
    with pytest.raises(BadImage, match=r"too large: 300x200 pixels \(limit 10000\)"):
        open_image(path, max_pixels=10_000)


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (200, 200, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_images_are_found_by_path_or_id(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("123.jpg", "abc.PNG", "notes.txt"):
        (folder / name).write_bytes(b"x")
    assert find_image("123", folder) == folder / "123.jpg"
    assert find_image("abc", folder) == folder / "abc.PNG"
    assert find_image("123.jpg", folder) == folder / "123.jpg"
    assert find_image(str(folder / "abc.PNG"), None) == folder / "abc.PNG"
    assert find_image("456", folder) is None and find_image("notes", folder) is None
    assert [image_id(p) for p in list_images(folder)] == ["123", "abc"]
