"""The scenes of the embedded dataset (scenes.py): pets, their borders and background in plausible shares."""

from __future__ import annotations

import numpy as np

from segpipe.scenes import draw_scene


def test_scenes_have_pets_borders_and_background():
    pixels = np.zeros(3, dtype=np.int64)
    for index in range(20):
        rng = np.random.default_rng([0, index])
        _, trimap, _ = draw_scene(rng, 64, 80)
        pixels += np.bincount(trimap.ravel(), minlength=4)[1:]
    shares = pixels / pixels.sum()
    assert 0.1 < shares[0] < 0.6, "pet share"
    assert 0.3 < shares[1] < 0.85, "background share"
    assert 0.03 < shares[2] < 0.25, "border share"
