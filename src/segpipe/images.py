"""Reading real-world image and mask files, checking an example, and resizing it for the model.

Real files are messy: palette, RGBA, grayscale and CMYK images, PNG data behind a `.jpg` name,
phone photos stored sideways with an EXIF orientation tag. Every image becomes 3-channel RGB,
turned upright (prepare turns its mask with it); every problem becomes a `DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from segpipe.errors import DataError

# Oxford-IIIT Pet trimaps: 1 pet, 2 background, 3 border; stored as classes 0, 1, 2.
TRIMAP_CLASS_NAMES = ("pet", "background", "border")
# What is taken as an image where a folder is listed (prepare's masks layout, predict): the formats `read_rgb`
# reads (by content: PNG or GIF data behind a .jpg name is read too).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
_ORIENTATION = 0x0112  # the EXIF tag; its values 2..8 map to these turns (as PIL's exif_transpose does)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def read_rgb(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """Any image file PIL can read (by content, not by name), as uint8 H×W×3 RGB, turned upright by
    its EXIF orientation tag (prepare and predict both read it so; `read_pair` turns the mask too).

    An image of more than `max_pixels` is refused from its header, before its pixels are decoded.
    High-bit-depth grayscale (16-bit, 32-bit integer, float: `HIGH_DEPTH_MODES`) is scaled to 8 bits
    by `eight_bit`, never clipped; of a multi-frame file (GIF, TIFF) the first frame is read.
    """
    with _opened(path, max_pixels) as image:
        turn = _TRANSPOSE.get(image.getexif().get(_ORIENTATION, 1))
        if turn is not None:
            image = image.transpose(turn)
        if image.mode in HIGH_DEPTH_MODES:  # PIL's own conversion clips them at 255: almost all white
            return np.repeat(eight_bit(np.asarray(image))[..., None], 3, axis=-1)
        if image.mode in ("P", "PA", "LA"):  # palettes may carry transparency: expand it first
            image = image.convert("RGBA")
        if image.mode != "RGB":  # no copy when it already is: prepare's threads share Python's lock
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)


HIGH_DEPTH_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_BIT_DEPTHS = (8, 10, 12, 14, 16, 24, 32)  # what cameras and containers hold: 12-bit data often sits in 16 bits


def eight_bit(values: np.ndarray) -> np.ndarray:
    """Grayscale of any depth as uint8 (H×W), scaled so that images of one camera scale alike.

    Integers are divided by the full range of the smallest common bit depth that holds their largest
    value (a 12-bit sensor's 0..4095 in a 16-bit file maps to 0..255, as does a full 16-bit image's
    0..65535); negative integers are shifted to start at 0. Floats in [0, 1] are multiplied by 255,
    other floats are scaled from their own minimum to maximum; NaN and infinities become 0.
    """
    if np.issubdtype(values.dtype, np.floating):
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low >= 0.0 and high <= 1.0:
            return np.round(values * 255.0).astype(np.uint8)
        span = high - low or 1.0  # a constant image: all 0, not a division by zero
        return np.round((values - low) / span * 255.0).astype(np.uint8)
    values = values.astype(np.int64)
    values = values - min(0, int(values.min(initial=0)))
    top = int(values.max(initial=0))
    depth = next(bits for bits in _BIT_DEPTHS if top < 2**bits)
    return np.round(values * (255.0 / (2**depth - 1))).astype(np.uint8)


def read_pair(image_path: Path, mask_path: Path, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An image turned upright by its EXIF orientation tag, and its mask in the same orientation.

    A mask of the stored image's size was drawn on the stored pixels: it is turned the same way. A
    mask that only fits the upright image (a 90° tag) was drawn on the upright photo: taken as it is.
    """
    with _opened(image_path, max_pixels, decode=False) as image:  # the header only
        orientation = image.getexif().get(_ORIENTATION, 1)
        stored_size = image.size
    pixels = read_rgb(image_path, max_pixels=max_pixels)
    with _opened(mask_path, max_pixels) as mask:
        turn = _TRANSPOSE.get(orientation)
        if turn is not None and not (orientation >= 5 and mask.size == stored_size[::-1]):
            mask = mask.transpose(turn)
        return pixels, _mask_values(mask, mask_path)


# Single-channel modes whose values are class ids: bilevel (0/1), 8-bit, palette indices, 16/32-bit integers.
MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")


def _mask_values(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode not in MASK_MODES:
        raise DataError(
            f"{path}: a mask must be a single-channel image of class ids (mode {', '.join(MASK_MODES)}), "
            f"got mode {image.mode}"
        )
    values = np.asarray(image)
    if values.max(initial=0) > 255:
        raise DataError(f"{path}: mask values must be below 256, found {int(values.max())}")
    return values.astype(np.uint8)[..., None]


def trimap_to_classes(trimap: np.ndarray, name: str) -> np.ndarray:
    """Map Oxford trimap values 1 (pet), 2 (background), 3 (border) to class ids 0, 1, 2."""
    values = np.unique(trimap)
    if values.size and (values.min() < 1 or values.max() > 3):
        raise DataError(f"{name}: trimap values must be 1, 2 or 3, found {values.tolist()}")
    return trimap - 1


def checked_pair(name: str, image: np.ndarray, mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, mask) after checking they have the same size and the mask holds class ids only."""
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{name}: image is {image.shape[1]}x{image.shape[0]} but its mask is {mask.shape[1]}x{mask.shape[0]}"
        )
    top = int(mask.max(initial=0))
    if top >= num_classes:
        raise DataError(f"{name}: mask value {top} is not a class id (0..{num_classes - 1})")
    return image, mask


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of a uint8 H×W×3 image to size×size, rounded back to uint8."""
    return _resized_image(image, size).numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a uint8 H×W×1 mask: every output value is one of the input's labels."""
    return _resized_mask(mask, size).numpy()


# Compiled once for any image size: one graph call instead of a handful of eager ops, which is
# faster and holds Python's lock less, so prepare's threads overlap it with decoding. Same pixels.
@tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32)])
def _resized_image(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    resized = tf.image.resize(image, tf.stack([size, size]), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


@tf.function(input_signature=[tf.TensorSpec([None, None, 1], tf.uint8), tf.TensorSpec([], tf.int32)])
def _resized_mask(mask: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.image.resize(mask, tf.stack([size, size]), method="nearest"), tf.uint8)


def _opened(path: Path, max_pixels: int | None = None, decode: bool = True) -> Image.Image:
    try:
        image = Image.open(path)
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            image.close()
            raise DataError(
                f"{path}: {width}x{height} is {width * height / 1e6:.1f} megapixels, "
                f"above the limit of {max_pixels / 1e6:g} megapixels"
            )
        if decode:
            image.load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not an image file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: unreadable image ({error})") from None
    except MemoryError:
        raise DataError(f"{path}: too large to decode in memory") from None
    return image
