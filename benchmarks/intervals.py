"""Confidence intervals the benchmark scripts print (imported by them as ``intervals``: a script
run as ``python benchmarks/NAME.py`` has this directory on its path). They live in
:mod:`evolm.stats`, shared with the report and ``evolm compare``."""

from __future__ import annotations

from evolm.stats import t_interval, wilson

__all__ = ["t_interval", "wilson"]
