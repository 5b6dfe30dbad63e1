"""``python -m evolm.cli``: the ``evolm`` command line, as ``python -m evolm`` runs it."""

from evolm.cli import app

if __name__ == "__main__":
    app(prog_name="evolm")
