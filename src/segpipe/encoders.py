"""Backbones from `keras.applications` as the U-Net's encoder (`model.encoder`), and their weights.

Each backbone is built without its classifier (`include_top=False`) and cut into a nested model named
`encoder` whose outputs are the features the decoder joins: one per stride 1 (VGG16 only), 2, 4, ...
up to `2**model.depth`, the deepest. The backbone's own preprocessing comes first, inside the model,
so the model takes 0-255 RGB like the from-scratch U-Net.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from segpipe.config import Encoder, ModelConfig
from segpipe.errors import ConfigError
from segpipe.keras_workarounds import recorded_downloads

log = logging.getLogger(__name__)

ENCODER = "encoder"  # the nested model's name: what train.freeze_encoder_epochs freezes
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # ImageNet's mean pixel, as keras.applications.vgg16 subtracts it


def _from_minus_one_to_one(images):
    """keras.applications' "tf" mode (MobileNetV2, ResNet50V2): 0-255 to [-1, 1]."""
    return layers.Rescaling(1 / 127.5, -1.0, dtype="float32", name="preprocess")(images)


def _as_given(images):
    """EfficientNetV2 rescales and normalizes 0-255 RGB itself (its include_preprocessing)."""
    return images


def _caffe(images):
    """keras.applications' "caffe" mode (VGG16): RGB to BGR, minus ImageNet's mean pixel, as one frozen
    1x1 convolution (a channel flip has no Keras layer, and a Lambda would not load in safe mode)."""
    convert = layers.Conv2D(3, 1, dtype="float32", trainable=False, name="preprocess")
    converted = convert(images)
    flip = np.zeros((1, 1, 3, 3), dtype="float32")
    for rgb in range(3):
        flip[0, 0, rgb, 2 - rgb] = 1.0
    convert.set_weights([flip, -np.array(CAFFE_MEAN_BGR, dtype="float32")])
    return converted


@dataclass(frozen=True)
class Backbone:
    application: Callable[..., keras.Model]  # the keras.applications constructor
    preprocessing: Callable  # 0-255 RGB tensor -> what the backbone expects
    features: dict[int, str]  # stride -> the layer whose output the decoder joins at that stride


# The natural skip layers (tests/test_encoders.py checks each name and stride): the last layer at each stride,
# before the block that halves the resolution (the expansion's activation for MobileNetV2 and ResNet50V2).
BACKBONES: dict[Encoder, Backbone] = {
    "mobilenet_v2": Backbone(  # phones: 2.3 M parameters in the encoder, depthwise convolutions
        keras.applications.MobileNetV2,
        _from_minus_one_to_one,
        {
            2: "block_1_expand_relu",
            4: "block_3_expand_relu",
            8: "block_6_expand_relu",
            16: "block_13_expand_relu",
            32: "out_relu",
        },
    ),
    "efficientnet_v2_b0": Backbone(  # balanced: 5.9 M, the best ImageNet accuracy of the four
        keras.applications.EfficientNetV2B0,
        _as_given,
        {
            2: "block1a_project_activation",
            4: "block2b_add",
            8: "block3b_add",
            16: "block5e_add",
            32: "top_activation",
        },
    ),
    "resnet50_v2": Backbone(  # servers: 23.6 M
        keras.applications.ResNet50V2,
        _from_minus_one_to_one,
        {
            2: "conv1_conv",
            4: "conv2_block3_1_relu",
            8: "conv3_block4_1_relu",
            16: "conv4_block6_1_relu",
            32: "post_relu",
        },
    ),
    "vgg16": Backbone(  # the classic U-Net encoder: 14.7 M, plain convolutions, features at full resolution too
        keras.applications.VGG16,
        _caffe,
        {
            1: "block1_conv2",
            2: "block2_conv2",
            4: "block3_conv3",
            8: "block4_conv3",
            16: "block5_conv3",
            32: "block5_pool",
        },
    ),
}


def encoder_features(images, image_size: int, config: ModelConfig, with_weights: bool = True) -> dict[int, object]:
    """The backbone's features of `images` (0-255 RGB), by stride, the deepest at `2**config.depth`.

    With `with_weights`, the backbone starts from `config.encoder_weights`; without, from random init (for a
    model whose weights are set afterwards).
    """
    backbone = BACKBONES[config.encoder]
    model = _backbone_model(backbone, image_size, config, with_weights)
    deepest = 2**config.depth
    outputs = {
        f"stride_{stride}": model.get_layer(name).output
        for stride, name in backbone.features.items()
        if stride <= deepest
    }
    encoder = keras.Model(model.input, outputs, name=ENCODER)
    features = encoder(backbone.preprocessing(images))
    return {int(name.removeprefix("stride_")): tensor for name, tensor in features.items()}


def _backbone_model(backbone: Backbone, image_size: int, config: ModelConfig, with_weights: bool) -> keras.Model:
    weights = _weights_argument(config) if with_weights else None
    with recorded_downloads() as wanted:
        try:
            return backbone.application(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
        except Exception as error:  # Keras's failed download is a bare Exception: one line, not a traceback
            missing = [download for download in wanted if not download.path.is_file()]
            if weights == "imagenet" and missing:
                raise ConfigError(_offline_message(config, missing[-1], error)) from None
            if config.weights_file is not None and isinstance(error, ValueError | OSError):
                raise ConfigError(_misfit_message(config, error)) from None
            raise


def _weights_argument(config: ModelConfig) -> str | None:
    if config.encoder_weights == "none":
        return None
    if config.weights_file is not None:
        log.info("encoder %s starts from %s", config.encoder, config.weights_file)
        return str(config.weights_file)
    return config.encoder_weights


def _offline_message(config: ModelConfig, download, error: Exception) -> str:
    reason = (str(error).splitlines() or [type(error).__name__])[0].split(" -- ")[-1]  # Keras's: "URL ... -- why"
    return (
        f"model.encoder_weights imagenet: Keras could not download {download.path.name} ({reason}) and found none "
        f"in {download.path.parent}: put that file there (from {download.origin}, on a machine that can reach it), "
        f"or set model.encoder_weights to a Keras weights file of {config.encoder} (include_top=False) inside "
        f"model.pretrained_dir ({Path(config.pretrained_dir)}), or to none"
    )


def _misfit_message(config: ModelConfig, error: Exception) -> str:
    """Keras's complaint about a weights file, on one line: what it says, then its first example."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
    return (
        f"model.encoder_weights ({config.weights_file}) is not a Keras weights file of {config.encoder} built "
        f"without its classifier (include_top=False): {' '.join(lines) or type(error).__name__}"
    )
