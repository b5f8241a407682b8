"""Training augmentations, applied to whole batches at once and identically to image and mask.

Working on batches keeps the input pipeline far ahead of the model (one vectorized op per
augmentation instead of one per image). Randomness is stateless, drawn from a per-batch seed, so
a fixed `train.seed` fixes every flip, crop and jitter.
"""

from __future__ import annotations

import tensorflow as tf

from segpipe.config import AugmentConfig


def augment_batch(
    images: tf.Tensor, masks: tf.Tensor, seed: tf.Tensor, config: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Return float32 images (0–255 range) and uint8 masks, flipped, zoomed and jittered per image."""
    seeds = tf.random.experimental.stateless_split(tf.stack([seed, tf.constant(0, tf.int64)]), num=5)
    batch = tf.shape(images)[0]
    images = tf.cast(images, tf.float32)
    if config.flip:
        flip = tf.random.stateless_uniform([batch], seeds[0]) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        masks = tf.where(flip[:, None, None, None], tf.reverse(masks, axis=[2]), masks)
    if config.min_scale < 1.0:
        images, masks = _random_zoom(images, masks, config.min_scale, seeds[1], seeds[2])
    if config.jitter > 0.0:
        images = _random_brightness_contrast(images, config.jitter, seeds[3], seeds[4])
    return images, masks


def _random_zoom(images, masks, min_scale: float, size_seed, offset_seed):
    """Crop a random square of side min_scale..1 of each image and resize it back to full size.

    One affine resampling per batch: output pixel (y, x) reads input (y0 + side·y, x0 + side·x), in
    pixels, exactly what `tf.image.crop_and_resize` computes for the box; that op is avoided because
    grappler's cost model logs a long warning for it on every training run.
    """
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    side = tf.random.stateless_uniform([batch], size_seed, min_scale, 1.0)
    start = tf.random.stateless_uniform([batch, 2], offset_seed) * (1.0 - side[:, None])
    y0 = start[:, 0] * tf.cast(height - 1, tf.float32)
    x0 = start[:, 1] * tf.cast(width - 1, tf.float32)
    zero = tf.zeros_like(side)
    transforms = tf.stack([side, zero, x0, zero, side, y0, zero, zero], axis=1)

    def resample(values, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=values,
            transforms=transforms,
            output_shape=tf.stack([height, width]),
            fill_value=0.0,
            interpolation=interpolation,
            fill_mode="NEAREST",
        )

    images = resample(images, "BILINEAR")
    masks = resample(tf.cast(masks, tf.float32), "NEAREST")
    return images, tf.cast(masks, tf.uint8)


def _random_brightness_contrast(images, strength: float, brightness_seed, contrast_seed):
    """Scale each image's contrast by 1±strength and shift its brightness by ±strength of the range."""
    batch = tf.shape(images)[0]
    contrast = tf.random.stateless_uniform([batch, 1, 1, 1], contrast_seed, 1.0 - strength, 1.0 + strength)
    shift = tf.random.stateless_uniform([batch, 1, 1, 1], brightness_seed, -strength, strength) * 255.0
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value((images - mean) * contrast + mean + shift, 0.0, 255.0)
