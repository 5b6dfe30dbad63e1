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
def _penalty_gradient(centers, radii, mu):
    """Gradient of -sum(radii) + mu * (squared overlaps + squared wall crossings)."""
    diff = centers[:, None, :] - centers[None, :, :]
    dist = np.sqrt((diff**2).sum(-1)) + np.eye(N)
    overlap = np.maximum(radii[:, None] + radii[None, :] - dist, 0.0)
    np.fill_diagonal(overlap, 0.0)
    g_radii = -np.ones(N) + 2 * mu * overlap.sum(1)
    g_centers = -2 * mu * ((overlap / dist)[:, :, None] * diff).sum(1)
    for k in range(2):
        low = np.maximum(radii - centers[:, k], 0.0)
        high = np.maximum(radii + centers[:, k] - 1.0, 0.0)
        g_radii += 2 * mu * (low + high)
        g_centers[:, k] += 2 * mu * (high - low)
    return g_centers, g_radii


def _adam(centers, radii, steps, mu, lr):
    """Adam on the penalty, the penalty weight and the step size moving geometrically from
    mu[0] to mu[1] and lr[0] to lr[1]."""
    m = np.zeros((N, 3))
    v = np.zeros((N, 3))
    for t in range(1, steps + 1):
        frac = t / steps
        g_centers, g_radii = _penalty_gradient(centers, radii, mu[0] * (mu[1] / mu[0]) ** frac)
        g = np.concatenate([g_centers, g_radii[:, None]], 1)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = lr[0] * (lr[1] / lr[0]) ** frac * (m / (1 - 0.9**t))
        step /= np.sqrt(v / (1 - 0.999**t)) + 1e-12
        centers = np.clip(centers - step[:, :2], 0.0, 1.0)
        radii = np.maximum(radii - step[:, 2], 0.0)
    return centers, radii


def _make_valid(centers, radii, margin=1e-12):
    """Radii no larger than the given ones that fit: cut to the walls, then shrink each
    overlapping pair in proportion (shrinking never creates an overlap, so one pass does)."""
    radii = np.minimum.reduce(
        [radii, centers[:, 0], centers[:, 1], 1.0 - centers[:, 0], 1.0 - centers[:, 1]]
    )
    radii = np.clip(radii, 0.0, None)
    for i in range(N):
        for j in range(i + 1, N):
            d = math.dist(centers[i], centers[j])
            if radii[i] + radii[j] > d:
                scale = d / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return np.clip(radii * (1.0 - margin) - margin, 0.0, None)


def construct_packing():
    """Return (centers, radii): centers an (N, 2) array inside [0, 1]^2, radii an (N,) array.

    A reference packing, not a model's output: a penalty method (maximise the sum of radii
    minus a growing penalty on overlaps and wall crossings, by Adam) from 8 random starts
    (fixed seeds 0-7), the best start polished with a much larger penalty, then the radii
    shrunk until the packing is strictly valid.
    """
    runs = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        centers = rng.uniform(0.1, 0.9, (N, 2))
        centers, radii = _adam(centers, np.full(N, 0.05), 5000, (10.0, 1e4), (1e-2, 1e-4))
        runs.append((float(np.sum(_make_valid(centers, radii))), seed, centers, radii))
    _, _, centers, radii = max(runs, key=lambda run: (run[0], -run[1]))
    centers, radii = _adam(centers, radii, 4000, (1e4, 1e7), (1e-4, 1e-6))
    return centers, _make_valid(centers, radii)


# EVOLVE-BLOCK-END


def run_packing():
    """Entry point the evaluator calls: (centers, radii, reported sum of radii)."""
    centers, radii = construct_packing()
    return centers, radii, float(np.sum(radii))


if __name__ == "__main__":
    c, r, total = run_packing()
    print(f"{len(r)} circles, sum of radii {total:.6f}")
