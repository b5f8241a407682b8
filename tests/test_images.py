"""Every image mode PIL opens is read into the right 8-bit RGB, and every single-channel mask mode as class ids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segpipe.errors import DataError
from segpipe.images import eight_bit, read_pair, read_rgb

GRADIENT = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))  # 8×64, 0..252


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB"])
def test_every_8_bit_mode_becomes_rgb_of_the_same_size(tmp_path, mode):
    Image.fromarray(GRADIENT).convert(mode).save(tmp_path / "x.tiff")
    pixels = read_rgb(tmp_path / "x.tiff")
    assert (pixels.dtype, pixels.shape) == (np.uint8, (8, 64, 3))


def test_a_16_bit_grayscale_image_agrees_with_its_8_bit_copy(tmp_path):
    sixteen = GRADIENT.astype(np.uint16) * 257  # 0..64764, the full 16-bit range
    Image.fromarray(sixteen).save(tmp_path / "x16.png")
    assert Image.open(tmp_path / "x16.png").mode == "I;16"
    pixels = read_rgb(tmp_path / "x16.png")
    np.testing.assert_array_equal(pixels[..., 0], GRADIENT)
    np.testing.assert_array_equal(pixels[..., 1], pixels[..., 2])


def test_12_bit_data_in_a_16_bit_file_fills_the_8_bit_range(tmp_path):
    twelve = (GRADIENT.astype(np.int64) * 4095 // 252).astype(np.uint16)  # 0..4095
    Image.fromarray(twelve).save(tmp_path / "x12.png")
    pixels = read_rgb(tmp_path / "x12.png")[..., 0]
    assert (int(pixels.min()), int(pixels.max())) == (0, 255)
    assert np.abs(pixels.astype(int) - GRADIENT.astype(int) * 255 // 252).max() <= 1


def test_a_32_bit_integer_image_is_scaled_not_clipped(tmp_path):
    Image.fromarray(GRADIENT.astype(np.int32) * 257, mode="I").save(tmp_path / "x.tiff")
    np.testing.assert_array_equal(read_rgb(tmp_path / "x.tiff")[..., 0], GRADIENT)


def test_a_float_image_in_0_1_is_multiplied_by_255(tmp_path):
    Image.fromarray(GRADIENT.astype(np.float32) / 255.0, mode="F").save(tmp_path / "x.tiff")
    np.testing.assert_array_equal(read_rgb(tmp_path / "x.tiff")[..., 0], GRADIENT)


def test_floats_outside_0_1_are_scaled_from_their_range_and_nan_is_0():
    values = np.array([[-1.0, 0.0, 1.0, np.nan, np.inf]], dtype=np.float32)
    assert eight_bit(values).tolist() == [[0, 128, 255, 128, 128]]


def test_a_constant_image_is_no_division_by_zero():
    assert eight_bit(np.full((2, 2), 7.5, np.float32)).tolist() == [[0, 0], [0, 0]]
    assert eight_bit(np.full((2, 2), 300, np.uint16)).tolist() == [[75, 75], [75, 75]]


@pytest.mark.parametrize(
    ("mode", "values"),
    [("1", [0, 1]), ("L", [0, 2]), ("P", [0, 2]), ("I;16", [0, 2]), ("I", [0, 2])],
)
def test_single_channel_masks_are_read_as_class_ids(tmp_path, mode, values):
    mask = np.zeros((8, 64), np.uint8)
    mask[:, 32:] = values[1]
    image = Image.fromarray(mask.astype(bool) if mode == "1" else mask.astype(np.int32 if mode == "I" else np.uint8))
    image = (
        image
        if mode in ("1", "I")
        else image.convert(mode)
        if mode != "I;16"
        else Image.fromarray(mask.astype(np.uint16))
    )
    image.save(tmp_path / "m.png" if mode != "I" else tmp_path / "m.tiff")
    Image.fromarray(GRADIENT).save(tmp_path / "x.png")
    _, read = read_pair(tmp_path / "x.png", tmp_path / ("m.png" if mode != "I" else "m.tiff"))
    assert sorted(np.unique(read).tolist()) == values
    assert read.shape == (8, 64, 1)


def test_an_rgb_mask_is_refused_naming_the_modes_that_work(tmp_path):
    Image.fromarray(GRADIENT).convert("RGB").save(tmp_path / "m.png")
    Image.fromarray(GRADIENT).save(tmp_path / "x.png")
    with pytest.raises(DataError) as error:
        read_pair(tmp_path / "x.png", tmp_path / "m.png")
    assert str(error.value) == (
        f"{tmp_path / 'm.png'}: a mask must be a single-channel image of class ids "
        "(mode 1, L, P, I, I;16, I;16L, I;16B, I;16N), got mode RGB"
    )
