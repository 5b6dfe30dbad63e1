"""``python -m evolm``: the ``evolm`` command line (see :mod:`evolm.cli`)."""

from evolm.cli import app

if __name__ == "__main__":
    app(prog_name="evolm")
