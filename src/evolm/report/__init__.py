"""Reports on runs: pictures and animations of what a run found."""

from evolm.report.show import show

__all__ = ["show"]
