"""A domain module whose import never finishes in a sandbox worker."""

from __future__ import annotations

import os
import time

from tests.toy_domain import ToyDomain


def wait_for_server() -> None:
    while True:
        time.sleep(1)


if os.environ.get("EVOLM_SANDBOX"):
    wait_for_server()


class ImportHangs(ToyDomain):
    pass
