"""A domain for the sandbox that hands back an image program's picture instead of its score.

The image domain stores no pictures (only the fitness and the mean colour), so a report that
shows one re-runs the program. It must run in a sandbox worker like any program:
:class:`ImageRender` is the image domain with a :meth:`~ImageRender.score` that returns the
checked picture as ``extras["pixels"]`` (a uint8 array), so the sandbox runs ``draw()`` in the
program's child and the check in its scoring process, exactly as during the run. Kept in its
own small module because every sandbox worker imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evolm.domains.image import ImageDomain
from evolm.types import Evaluation, Status

__all__ = ["ImageRender"]


class ImageRender(ImageDomain):
    """:class:`~evolm.domains.image.ImageDomain` whose evaluation carries the picture."""

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """The picture :meth:`run` returned (checked again: it may be forged) as
        ``extras["pixels"]``, a ``(size, size, 3)`` uint8 array; ``invalid`` when it is not an
        acceptable picture."""
        img = self._check(data)
        if isinstance(img, str):
            return Evaluation.failure(Status.INVALID, img)
        pixels = np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Evaluation(status=Status.OK, fitness=0.0, descriptors=(), extras={"pixels": pixels})
