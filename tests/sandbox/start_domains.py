"""Domains that fail only while a sandbox worker starts (the engine builds them fine).

``EVOLM_SANDBOX`` is set in every worker's environment and never in the engine's, so each class
misbehaves in its ``__init__`` only inside a worker, the way a domain that reads a file the
sandbox hides or waits on the network would.
"""

from __future__ import annotations

import os
import sys
import time

from tests.toy_domain import ToyDomain

IN_WORKER = bool(os.environ.get("EVOLM_SANDBOX"))


class RaisesInWorker(ToyDomain):
    def __init__(self, n_seeds: int = 2) -> None:
        super().__init__(n_seeds)
        if IN_WORKER:
            raise FileNotFoundError("weights.bin is not readable here")


class ExitsInWorker(ToyDomain):
    def __init__(self, n_seeds: int = 2) -> None:
        super().__init__(n_seeds)
        if IN_WORKER:
            sys.exit(3)


class CrashesInWorker(ToyDomain):
    def __init__(self, n_seeds: int = 2) -> None:
        super().__init__(n_seeds)
        if IN_WORKER:
            print("about to crash", file=sys.stderr, flush=True)
            os._exit(9)


class HangsInWorker(ToyDomain):
    def __init__(self, n_seeds: int = 2) -> None:
        super().__init__(n_seeds)
        if IN_WORKER:
            time.sleep(3600)
