"""The colour of each class: the same for class i in every figure (visualize) and predicted mask (predict).

Only matplotlib's colormaps are imported (not pyplot, pandas or DVCLive), so `segpipe predict` needs nothing of
the plotting code.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap


def class_colours(count: int) -> ListedColormap:
    """One distinct colour per class: tab10 up to 10 classes, tab20 up to 20, then evenly spaced hues."""
    if count <= 10:
        return ListedColormap(colormaps["tab10"].colors[:count])
    if count <= 20:
        return ListedColormap(colormaps["tab20"].colors[:count])
    return ListedColormap(colormaps["hsv"](np.linspace(0, 1, count, endpoint=False)))


def class_palette(count: int) -> np.ndarray:
    """The colours of `class_colours` as uint8 RGB, count×3, for palette PNGs and overlays."""
    return np.round(class_colours(count)(np.arange(count))[:, :3] * 255).astype(np.uint8)
