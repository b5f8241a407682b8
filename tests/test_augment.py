"""Batch augmentations move image and mask together, and are fixed by the seed."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from segpipe.augment import augment_batch
from segpipe.config import AugmentConfig

ALL = AugmentConfig(flip=True, min_scale=0.5, jitter=0.0)


def striped_batch(count: int = 8, size: int = 32):
    """Masks of three vertical bands (0, 1, 2) and images whose grey level is 80 × the class."""
    masks = np.zeros((count, size, size, 1), dtype=np.uint8)
    masks[:, :, size // 3 : 2 * size // 3] = 1
    masks[:, :, 2 * size // 3 :] = 2
    rng = np.random.default_rng(0)
    for i in range(count):  # a different band order per image, so flips are visible
        masks[i] = rng.permutation(3)[masks[i]]
    images = np.repeat(masks * 80, 3, axis=-1).astype(np.uint8)
    return tf.constant(images), tf.constant(masks)


def test_flip_and_zoom_keep_every_mask_pixel_on_its_image_pixel():
    images, masks = striped_batch()
    out_images, out_masks = augment_batch(images, masks, tf.constant(3, tf.int64), ALL)
    out_masks = out_masks.numpy()[..., 0].astype(int)
    disagree = np.abs(out_images.numpy()[..., 0] - 80.0 * out_masks) >= 1.0
    # Only the bilinear seams between bands may differ: pixels within 2 columns of a mask edge.
    edge = np.zeros_like(disagree)
    edge[:, :, 1:] |= out_masks[:, :, 1:] != out_masks[:, :, :-1]
    near_edge = edge | np.roll(edge, 1, axis=2) | np.roll(edge, -1, axis=2) | np.roll(edge, -2, axis=2)
    assert not (disagree & ~near_edge).any()
    assert not np.array_equal(out_masks, masks.numpy()[..., 0])


def test_masks_keep_their_label_set_and_dtype():
    images, masks = striped_batch()
    labels = masks * 10  # 0, 10, 20: a mask resampled by interpolation would hold values between them
    _, out_masks = augment_batch(images, labels, tf.constant(5, tf.int64), ALL)
    assert out_masks.dtype == tf.uint8
    assert set(np.unique(out_masks.numpy())) <= {0, 10, 20}


def test_same_seed_same_batch_other_seed_other_batch():
    images, masks = striped_batch()
    first = augment_batch(images, masks, tf.constant(1, tf.int64), ALL)[0].numpy()
    again = augment_batch(images, masks, tf.constant(1, tf.int64), ALL)[0].numpy()
    other = augment_batch(images, masks, tf.constant(2, tf.int64), ALL)[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_jitter_changes_pixels_within_range_but_never_masks():
    images, masks = striped_batch()
    config = AugmentConfig(flip=False, min_scale=1.0, jitter=0.3)
    out_images, out_masks = augment_batch(images, masks, tf.constant(4, tf.int64), config)
    np.testing.assert_array_equal(out_masks.numpy(), masks.numpy())
    assert not np.allclose(out_images.numpy(), images.numpy())
    assert out_images.numpy().min() >= 0.0 and out_images.numpy().max() <= 255.0


def test_all_off_returns_the_batch_unchanged():
    images, masks = striped_batch()
    config = AugmentConfig(flip=False, min_scale=1.0, jitter=0.0)
    out_images, out_masks = augment_batch(images, masks, tf.constant(0, tf.int64), config)
    np.testing.assert_array_equal(out_images.numpy(), images.numpy().astype(np.float32))
    np.testing.assert_array_equal(out_masks.numpy(), masks.numpy())
