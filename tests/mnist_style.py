"""A drawing made into an MNIST digit, the way MNIST's own digits were made (LeCun et al., 1998,
"Gradient-based learning applied to document recognition", section III.A; and the MNIST page):
the ink's bounding box is scaled to fit a 20x20 box keeping its aspect ratio (anti-aliased), and the
result is placed in the 28x28 field so that its centre of mass sits at the field's centre.

The reference for the page's drawing pad (page/drawing.js computes the same numbers) and its tests.
Pixel (i, j) covers the unit square [j, j+1) x [i, i+1); resampling is the exact area average over
each target pixel's preimage, separable into two small matrices, so both sides agree to float error.
"""
import numpy as np

FIELD = 28   # the MNIST image
BOX = 20     # the longer side of the digit's bounding box in it


def coverage(n_src, lo, scale, offset, n_dst=FIELD):
    """(n_dst, n_src) matrix A: A[t, s] = length of source pixel s's part of target pixel t's preimage,
    times ``scale``, where source x maps to target (x - lo) * scale + offset. Rows sum to the share
    of the target pixel that the source covers (1 inside the digit's box)."""
    a = np.zeros((n_dst, n_src))
    src = np.arange(n_src)
    for t in range(n_dst):
        start, end = (t - offset) / scale + lo, (t + 1 - offset) / scale + lo  # preimage in source x
        overlap = np.clip(np.minimum(src + 1, end) - np.maximum(src, start), 0, None)
        a[t] = overlap * scale
    return a


def mnist_style(raster, threshold=0.0):
    """An (H, W) array of ink in [0, 1] (any size, e.g. a 280x280 pad) as the 784 intensities of an
    MNIST-style 28x28 digit, row-major; all zeros when there is no ink above ``threshold``."""
    ink = np.asarray(raster, dtype=np.float64)
    rows, cols = np.nonzero(ink > threshold)
    if len(rows) == 0:
        return np.zeros(FIELD * FIELD)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    scale = BOX / max(y1 - y0, x1 - x0)
    mass = ink.sum()
    # centre of mass of the piecewise-constant drawing (pixel centres at +0.5), mapped affinely
    cy = (ink.sum(1) * (np.arange(ink.shape[0]) + 0.5)).sum() / mass
    cx = (ink.sum(0) * (np.arange(ink.shape[1]) + 0.5)).sum() / mass
    half = FIELD / 2
    ay = coverage(ink.shape[0], y0, scale, half - (cy - y0) * scale)
    ax = coverage(ink.shape[1], x0, scale, half - (cx - x0) * scale)
    return np.clip(ay @ ink @ ax.T, 0, 1).ravel()
