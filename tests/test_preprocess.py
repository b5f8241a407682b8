"""Resizing, trimap remapping and the validation split."""

from __future__ import annotations

import numpy as np
import pytest

from segpipe.errors import DataError
from segpipe.images import resize_image, resize_mask, trimap_to_classes
from segpipe.sources import held_out_indices


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


def test_validation_split_is_seeded_and_sized_by_fraction():
    first = held_out_indices(100, 0.1, seed=3)
    assert first == held_out_indices(100, 0.1, seed=3)
    assert first != held_out_indices(100, 0.1, seed=4)
    assert len(first) == 10 and first <= set(range(100))


def test_validation_split_leaves_at_least_one_example_on_each_side():
    assert len(held_out_indices(3, 0.01, seed=0)) == 1
    assert len(held_out_indices(3, 0.99, seed=0)) == 2
