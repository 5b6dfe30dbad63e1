"""evolm: Evolution through Large Models."""

from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

__version__ = "0.1.0"

__all__ = [
    "AddStatus",
    "DescriptorSpace",
    "Evaluation",
    "Individual",
    "Program",
    "Status",
    "__version__",
]
