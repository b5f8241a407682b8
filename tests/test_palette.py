"""Class colours: one per class, shared by the figures and predicted masks, without the plotting code."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from segpipe.config import MAX_CLASSES
from segpipe.palette import class_palette


@pytest.mark.parametrize("count", [2, 10, 20, 21, MAX_CLASSES])
def test_every_class_gets_a_colour_of_its_own(count):
    palette = class_palette(count)
    assert palette.shape == (count, 3) and palette.dtype == np.uint8
    assert len(np.unique(palette, axis=0)) == count


def test_a_class_keeps_its_colour_whatever_the_number_of_classes_up_to_ten():
    np.testing.assert_array_equal(class_palette(3), class_palette(10)[:3])


@pytest.mark.slow
def test_predict_loads_neither_the_plotting_code_nor_dvclive():
    code = "import sys, segpipe.predict; print(sorted({'segpipe.plotting', 'dvclive'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "[]"
