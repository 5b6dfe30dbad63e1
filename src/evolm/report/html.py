"""``evolm report``: one self-contained HTML file for one or more run databases.

The page needs no server and no network: plotly.js is inlined once, followed by the page's own
script and style (``report.js``, ``report.css`` next to this module) and the report data as one
JSON block. The page draws every figure from that data with ``Plotly.newPlot``, so several
figures share the one copy of the library, and switching a run, an axis or a snapshot redraws
without reloading anything.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from evolm.report.data import ReportLimits, load_run
from evolm.report.reference import reference_bins, reference_series
from evolm.report.sidebyside import compare_runs

__all__ = ["build_report", "render_html"]


def _static(name: str) -> str:
    return resources.files("evolm.report").joinpath("static", name).read_text(encoding="utf-8")


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as exc:  # a core dependency, but say what to do if it went missing
        raise RuntimeError(
            "evolm report needs plotly: pip install 'plotly>=6' (it is a dependency of evolm)"
        ) from exc
    return get_plotlyjs()


def _finite(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None: JSON has no NaN or Infinity, and a
    configuration or an extras value may hold one."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: no ``</`` and no ``<!--``
    sequence can end the element or start a comment early."""
    text = json.dumps(_finite(data), separators=(",", ":"), default=str, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\u0021--")


def _title(runs: Sequence[dict[str, Any]]) -> str:
    if len(runs) == 1:
        return f"evolm report: {runs[0]['name']}"
    return f"evolm report: {len(runs)} runs"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_html(runs: Sequence[dict[str, Any]]) -> str:
    """The report page of ``runs`` (data from :func:`evolm.report.data.load_run`)."""
    from evolm import __version__

    data = {
        "runs": list(runs),
        "compare": compare_runs(runs) if len(runs) > 1 else None,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "version": __version__,
    }
    title = _escape(_title(runs))
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>{title}</title>\n<style>\n",
            _static("report.css"),
            "\n</style>\n</head>\n<body>\n",
            f'<header><h1>{title}</h1><nav id="nav"></nav></header>\n',
            '<main id="app"><p id="loading">Loading the report…</p></main>\n',
            '<script type="application/json" id="evolm-data">',
            _script_json(data),
            "</script>\n<script>\n",
            _plotly_js(),
            "\n</script>\n<script>\n",
            _static("report.js"),
            "\n</script>\n</body>\n</html>\n",
        ]
    )


def build_report(
    run_dbs: Sequence[str | Path],
    out: str | Path,
    *,
    limits: ReportLimits | None = None,
    animations: bool = True,
    views: bool = True,
) -> Path:
    """Read each run database (read-only) and write the report page to ``out``.

    Raises:
        evolm.store.StoreError: a file is not a run database or cannot be read.
        evolm.report.data.ReportError: a run has no programs or cannot be read.
        FileNotFoundError: the folder of ``out`` does not exist.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(
            f"the folder of --out {out} does not exist; create it (mkdir -p {out.parent}) or "
            "choose another path"
        )
    runs = [load_run(p, limits, animations=animations, views=views) for p in run_dbs]
    if len(runs) > 1:  # side by side: every run also measured on one reference grid
        bins = reference_bins([run["info"]["config"] for run in runs])
        for path, run in zip(run_dbs, runs, strict=True):
            ref = reference_series(path, bins, run["series"]["batch"])
            if ref is not None:
                run["reference"] = {"bins": bins, "series": ref}
    html = render_html(runs)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
