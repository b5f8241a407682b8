"""Every model format behind one Predictor (inference.py): flip TTA, and the class names a model carries."""

from __future__ import annotations

import numpy as np

from segpipe.config import ModelConfig
from segpipe.inference import Predictor, class_names_for, open_predictor, probabilities_with_tta
from segpipe.model import build_unet, save_model
from segpipe.prepared import Normalization

CONFIG = ModelConfig(depth=1, base_filters=2, batch_norm=True, batch_norm_momentum=0.9, dropout=0.0)
CLASSES = ("sky", "road", "car")


def test_flip_tta_averages_the_prediction_with_that_of_the_mirror_image_mirrored_back():
    def probabilities(images):  # class 1 in the left column, whatever the image: a model biased by position
        left = np.zeros(images.shape[:3] + (1,), dtype=np.float32)
        left[:, :, 0] = 1.0
        return np.concatenate([1.0 - left, left], axis=-1)

    predictor = Predictor(path=None, image_size=2, num_classes=2, probabilities=probabilities)
    images = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    np.testing.assert_array_equal(probabilities_with_tta(predictor, images, "none"), probabilities(images))
    # Mirrored back, the mirror image's prediction puts class 1 in the right column: the average is 0.5 everywhere.
    np.testing.assert_array_equal(probabilities_with_tta(predictor, images, "flip"), np.full((1, 2, 2, 2), 0.5))


def test_a_keras_model_names_its_classes_without_any_file_beside_it(tmp_path):
    model = build_unet(16, 3, CONFIG, Normalization(scale=1 / 255, offset=0.0))
    save_model(model, tmp_path / "model.keras", CLASSES)
    assert class_names_for(open_predictor(tmp_path / "model.keras")) == CLASSES
