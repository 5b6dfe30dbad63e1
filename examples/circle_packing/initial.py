"""Circle packing: place 26 circles in the unit square, without overlap, to maximise the sum of
their radii. evolm evolves the code between the EVOLVE-BLOCK markers; the rest stays as it is.

The evaluator calls run_packing() and checks the circles itself: every circle inside the square,
no two overlapping, every value finite. Circles that touch exactly are at the mercy of rounding,
so leave a small margin (shrink_to_fit does).
"""

import math

import numpy as np

N = 26


def shrink_to_fit(centers, margin=1e-12):
    """The largest radii for fixed centres, found greedily: each radius starts at the distance
    to the nearest wall, then every overlapping pair is shrunk in proportion until none
    overlaps. A small margin keeps rounding from making touching circles overlap."""
    centers = np.asarray(centers, dtype=float)
    n = len(centers)
    radii = np.minimum.reduce(
        [centers[:, 0], centers[:, 1], 1.0 - centers[:, 0], 1.0 - centers[:, 1]]
    )
    radii = np.clip(radii, 0.0, None)
    for i in range(n):
        for j in range(i + 1, n):
            d = math.dist(centers[i], centers[j])
            if radii[i] + radii[j] > d:
                scale = d / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii * (1.0 - margin) - margin


# EVOLVE-BLOCK-START
def construct_packing():
    """Return (centers, radii): centers an (N, 2) array inside [0, 1]^2, radii an (N,) array."""
    # Start from a 6 x 5 grid and keep its first 26 points.
    xs = (np.arange(6) + 0.5) / 6
    ys = (np.arange(5) + 0.5) / 5
    centers = np.array([(x, y) for y in ys for x in xs])[:N]
    radii = shrink_to_fit(centers)
    return centers, radii


# EVOLVE-BLOCK-END


def run_packing():
    """Entry point the evaluator calls: (centers, radii, reported sum of radii)."""
    centers, radii = construct_packing()
    return centers, radii, float(np.sum(radii))


if __name__ == "__main__":
    c, r, total = run_packing()
    print(f"{len(r)} circles, sum of radii {total:.6f}")
