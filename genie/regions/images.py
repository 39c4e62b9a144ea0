"""Opening the images of posts for region extraction, the way a detector should see them.

Social-media images are whatever users uploaded: phone photos whose EXIF says "rotate me",
palette GIFs, transparent PNGs, grayscale scans, 50-megapixel originals and files cut off
mid-download. Each is either turned into the RGB picture a viewer shows, or refused with a
reason (`BadImage`) that the caller counts and lists; nothing becomes zeros silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from genie.errors import GenieError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit
MIN_SIDE = 16  # a side shorter than this holds nothing to detect (a 1x1 tracking pixel, a 600x3 divider)
DRAFT_SIDE = 2048  # JPEGs this many times larger are decoded at a reduced scale (no detector needs more)


class BadImage(Exception):
    """An image that cannot be used: missing, not an image, truncated, corrupt, too large or too small, or
    one the detector cannot read."""


def find_image(reference: str, folder: Path | None) -> Path | None:
    """The file a post or record names: a path (as given, or inside `folder`), or an image id
    that `folder` holds with one of the usual extensions."""
    candidates = [Path(reference)]
    if folder is not None:
        candidates.append(folder / reference)
        candidates += [folder / f"{reference}{ext}" for ext in (*EXTENSIONS, *(e.upper() for e in EXTENSIONS))]
    return next((path for path in candidates if path.is_file()), None)


def image_id(path: Path) -> str:
    """The id a region file is named by: the file name without its extension (`123.jpg` -> `123`)."""
    return path.name[: -len(path.suffix)] if path.suffix.lower() in EXTENSIONS else path.name


def list_images(folder: Path) -> list[Path]:
    """Every image file directly in `folder`, sorted by name."""
    if not folder.is_dir():
        raise GenieError("image folder not found", folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())


@dataclass
class Picture:
    """An image ready for a detector, and how its pixels map to the original's."""

    image: object  # PIL.Image.Image, RGB, oriented as shown
    scale: float  # original pixels per pixel of `image` (> 1 when a large JPEG was decoded smaller)
    size: tuple[int, int]  # (w, h) of the original as shown: the space boxes are written in


def open_image(path: Path, max_pixels: int = MAX_PIXELS) -> Picture:
    """The picture as a viewer shows it: EXIF orientation applied, transparency flattened onto
    white, first frame only. A large JPEG is decoded at a reduced scale (`Image.draft`), many
    times faster and smaller; `Picture.scale` maps boxes found on it back. Raises BadImage, also
    for a side under MIN_SIDE px: detectors resize such an image to nothing or to noise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise BadImage("no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadImage(f"too large: {width}x{height} pixels (limit {max_pixels})")
                if min(width, height) < MIN_SIDE:
                    raise BadImage(f"too small: {width}x{height} pixels (a side under {MIN_SIDE} px holds nothing "
                                   f"to detect)")
                if image.format == "JPEG" and min(width, height) > 2 * DRAFT_SIDE:
                    image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))
                rgb = _rgb(image)
                scale = width / rgb.width
                picture = ImageOps.exif_transpose(rgb)
    except BadImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"not a readable image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's truncated / corrupt data errors
        raise BadImage(f"truncated or corrupt image ({' '.join(str(exc).split())})") from None
    size = (round(picture.width * scale), round(picture.height * scale))
    return Picture(picture, scale, size)


def _rgb(image):
    """The first frame in RGB; transparent pixels shown on white."""
    from PIL import Image

    image.seek(0)
    image.load()  # decode now: a truncated file fails here, inside the error handling
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits first
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")
