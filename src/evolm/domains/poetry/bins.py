"""Non-uniform bins for probability descriptors, as a monotone warp onto uniform bins.

QDAIF (Bradley et al. 2023) bins each AI-feedback probability with edges dense near 0 and 1
(``0, .005, .02, .05, .20, .50, .80, .95, .98, .995, 1``): judge probabilities pile up near the
ends, and uniform bins would leave most texts in the two outer cells. evolm's grid archives cut
each descriptor into equal bins; rather than teach every archive (and its pyribs twin) about
per-descriptor edges, the poetry domain reports each probability ``p`` through the piecewise
linear map :func:`warp`: ``edges[i] <= p <= edges[i + 1]`` goes to
``(i + (p - edges[i]) / (edges[i + 1] - edges[i])) / n`` in ``[0, 1]``. A grid of ``n`` equal
bins over ``[0, 1]`` then holds exactly the cells the edges define; :func:`unwarp` gives the
probability back.

Edges come from :func:`edges_named` (``"qdaif"``, ``"logit"``, ``"uniform"``) or
:func:`fit_edges`, which fits them to a sample of scores (quantiles), e.g. a first run's judge
probabilities, so each bin holds about the same share of texts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["EDGE_NAMES", "QDAIF_EDGES", "check_edges", "edges_named", "fit_edges", "unwarp", "warp"]

#: The bin edges of QDAIF's experiments (10 bins per axis).
QDAIF_EDGES: tuple[float, ...] = (0.0, 0.005, 0.02, 0.05, 0.2, 0.5, 0.8, 0.95, 0.98, 0.995, 1.0)
EDGE_NAMES: tuple[str, ...] = ("qdaif", "logit", "uniform")


def check_edges(edges: Sequence[float]) -> tuple[float, ...]:
    """``edges`` as floats, checked: at least 2, strictly increasing, from 0 to 1.

    Raises:
        ValueError: edges that are not numbers, not from 0 to 1, or not strictly increasing.
    """
    if isinstance(edges, str):
        raise ValueError(f"edges must be a list of numbers or one of {EDGE_NAMES}, got {edges!r}")
    try:
        out = tuple(float(e) for e in edges)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"edges must be a list of numbers, got {edges!r}") from exc
    if len(out) < 2 or out[0] != 0.0 or out[-1] != 1.0:
        raise ValueError(
            f"edges must run from 0 to 1 (at least two numbers, first 0, last 1), got {list(out)}"
        )
    if any(not b > a for a, b in itertools.pairwise(out)):
        raise ValueError(f"edges must be strictly increasing, got {list(out)}")
    return out


def edges_named(name: str, bins: int) -> tuple[float, ...]:
    """The ``bins + 1`` edges called ``name``: ``"qdaif"`` (:data:`QDAIF_EDGES`, 10 bins only),
    ``"logit"`` (equal steps in log-odds from -5 to 5: ``1 / (1 + exp(-x))`` at ``bins - 1``
    inner points of ``linspace(-5, 5, bins + 1)``, ends 0 and 1), ``"uniform"`` (equal steps).

    Raises:
        ValueError: an unknown name, ``bins`` below 1, or ``"qdaif"`` with bins other than 10.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    if name == "qdaif":
        if bins != len(QDAIF_EDGES) - 1:
            raise ValueError(
                f"edges = 'qdaif' has 10 bins but bins = {bins}; set bins = 10, or use "
                "edges = 'logit' or a list of bins + 1 numbers from 0 to 1"
            )
        return QDAIF_EDGES
    if name == "logit":
        inner = [1.0 / (1.0 + math.exp(-x)) for x in np.linspace(-5.0, 5.0, bins + 1)[1:-1]]
        return (0.0, *inner, 1.0)
    if name == "uniform":
        return tuple(float(x) for x in np.linspace(0.0, 1.0, bins + 1))
    raise ValueError(f"unknown edges {name!r}; choose one of {', '.join(EDGE_NAMES)} or a list")


def fit_edges(scores: Sequence[float], bins: int) -> tuple[float, ...]:
    """Edges that put about the same share of ``scores`` (probabilities) in each of ``bins``
    bins: 0, the ``i / bins`` quantiles for ``i = 1 .. bins - 1``, and 1. Quantiles that tie (or
    reach 0 or 1) are spread out with :func:`edges_named` ``"logit"`` edges between their
    neighbours, so the edges stay strictly increasing.

    Raises:
        ValueError: no scores, a score outside [0, 1] or not finite, or ``bins`` below 1.
    """
    s = np.asarray(list(scores), dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1:
        raise ValueError("fit_edges needs at least one score, all finite and in [0, 1]")
    fallback = edges_named("logit", bins)
    inner = np.quantile(s, np.arange(1, bins) / bins) if bins > 1 else np.array([])
    edges = [0.0, *(float(q) for q in inner), 1.0]
    for i in range(1, bins):
        if not edges[i - 1] < edges[i] < 1.0:
            edges[i] = max(fallback[i], edges[i - 1] + (1.0 - edges[i - 1]) / (bins - i + 1))
    return check_edges(edges)


def warp(p: float, edges: Sequence[float]) -> float:
    """``p`` (clipped to [0, 1]) mapped piecewise linearly so that ``edges[i]`` goes to
    ``i / (len(edges) - 1)``; equal bins of the result are the bins the edges define."""
    p = min(1.0, max(0.0, float(p)))
    n = len(edges) - 1
    i = min(n - 1, int(np.searchsorted(edges, p, side="right")) - 1)
    return (i + (p - edges[i]) / (edges[i + 1] - edges[i])) / n


def unwarp(x: float, edges: Sequence[float]) -> float:
    """The probability :func:`warp` maps to ``x`` (clipped to [0, 1])."""
    n = len(edges) - 1
    x = min(1.0, max(0.0, float(x))) * n
    i = min(n - 1, int(x))
    return edges[i] + (x - i) * (edges[i + 1] - edges[i])
