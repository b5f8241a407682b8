"""Image and mask files (images.py): every image mode PIL opens read into the right 8-bit RGB, every
single-channel mask mode as class ids, EXIF orientation, oversized and unreadable files, resizing, trimaps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segpipe import images
from segpipe.errors import DataError, PipelineError
from segpipe.images import eight_bit, read_pair, read_rgb, resize_image, resize_mask, trimap_to_classes
from segpipe.preparation import prepare_dataset
from tests.helpers import (
    QUIRKY,
    RED,
    data_config,
    folder_source,
    png_header_claiming,
    save_image,
    write_masks_folder,
    write_oxford_folder,
)

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


@pytest.mark.parametrize("mode", sorted(QUIRKY.values()))
def test_every_image_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / "photo.jpg"  # PNG and GIF data behind a .jpg name, as in the real archives
    save_image(path, mode)
    pixels = images.read_rgb(path)
    assert pixels.shape == (20, 24, 3) and pixels.dtype == np.uint8
    if mode in ("RGB", "RGBA", "CMYK"):
        np.testing.assert_allclose(pixels[10, 12], RED, atol=12)


def test_mask_of_another_size_is_an_error_naming_the_file(tmp_path, project_params):
    root = write_oxford_folder(tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB"})
    Image.fromarray(np.full((7, 9), 2, dtype=np.uint8)).save(root / "annotations/trimaps/cat_2.png")
    with pytest.raises(DataError, match=r"cat_2\.jpg: image is 24x20 but its mask is 9x7"):
        prepare_dataset(data_config(project_params, **folder_source(root)), tmp_path / "out")


def test_mask_value_outside_the_class_ids_is_an_error_naming_the_file(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=4, num_classes=5)
    config = data_config(project_params, **folder_source(root, "masks", class_names=["a", "b", "c"]))
    with pytest.raises(DataError, match=r"img_\d\.png: mask value 4 is not a class id \(0\.\.2\)"):
        prepare_dataset(config, tmp_path / "out")


def test_unreadable_image_is_an_error_naming_the_file(tmp_path, project_params):
    root = write_oxford_folder(tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB"})
    (root / "images/dog_1.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"dog_1\.jpg: unreadable image"):
        prepare_dataset(data_config(project_params, **folder_source(root)), tmp_path / "out")


def test_an_image_over_the_limit_is_refused_from_its_header(tmp_path):
    (tmp_path / "big.png").write_bytes(png_header_claiming(10000, 5000))
    with pytest.raises(PipelineError) as error:
        read_rgb(tmp_path / "big.png", max_pixels=40_000_000)
    assert (
        str(error.value) == f"{tmp_path / 'big.png'}: 10000x5000 is 50.0 megapixels, above the limit of 40 megapixels"
    )


def test_a_decompression_bomb_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_header_claiming(20000, 10000))
    with pytest.raises(PipelineError) as error:
        read_rgb(tmp_path / "bomb.png")
    assert str(error.value).startswith(f"{tmp_path / 'bomb.png'}: unreadable image (Image size (200000000 pixels)")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("drawn_on", ["stored pixels", "upright photo"])
def test_a_rotated_photo_and_its_mask_come_out_upright_together(tmp_path, drawn_on):
    stored = np.zeros((2, 4, 3), dtype=np.uint8)  # 4 wide, 2 high as stored
    stored[0, 0] = 255  # a marker in the stored top-left corner
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated by 90°: 2 wide, 4 high
    image.save(tmp_path / "photo.png", exif=exif.tobytes())
    mask = (stored[..., 0] > 0).astype(np.uint8)
    upright_mask = np.asarray(Image.fromarray(mask).transpose(Image.Transpose.ROTATE_270))
    Image.fromarray(mask if drawn_on == "stored pixels" else upright_mask).save(tmp_path / "mask.png")
    pixels, labels = read_pair(tmp_path / "photo.png", tmp_path / "mask.png")
    assert pixels.shape == (4, 2, 3) and labels.shape == (4, 2, 1)
    np.testing.assert_array_equal(labels[..., 0], (pixels[..., 0] > 0).astype(np.uint8))


def test_resized_mask_keeps_exactly_the_input_labels():
    rng = np.random.default_rng(0)
    mask = rng.choice([0, 2, 5], size=(37, 53, 1)).astype(np.uint8)
    resized = resize_mask(mask, 16)
    assert resized.shape == (16, 16, 1)
    assert resized.dtype == np.uint8
    assert set(np.unique(resized)) <= {0, 2, 5}


def test_resized_image_is_square_uint8_and_keeps_a_flat_colour():
    image = np.full((30, 70, 3), (10, 200, 255), dtype=np.uint8)
    resized = resize_image(image, 8)
    assert resized.shape == (8, 8, 3) and resized.dtype == np.uint8
    np.testing.assert_array_equal(resized, np.broadcast_to([10, 200, 255], (8, 8, 3)))


def test_trimap_values_become_class_ids():
    trimap = np.array([[1, 2, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(trimap_to_classes(trimap, "x.png"), [[0, 1, 2]])


def test_trimap_value_outside_one_to_three_names_the_file():
    with pytest.raises(DataError, match=r"^cat_1\.png: trimap values must be 1, 2 or 3, found \[1, 4\]$"):
        trimap_to_classes(np.array([[1, 4]], dtype=np.uint8), "cat_1.png")
