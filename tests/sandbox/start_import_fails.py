"""A domain module that raises at import in a sandbox worker only."""

from __future__ import annotations

import os

from tests.toy_domain import ToyDomain

if os.environ.get("EVOLM_SANDBOX"):
    import json

    json.loads("{not json")


class ImportFails(ToyDomain):
    pass
