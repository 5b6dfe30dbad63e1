"""Where does a `line_edit` rewrite succeed? Its answers sorted by where the prompt ended.

Reads run databases of `line_edit` in completion mode (for instance those that
``benchmarks/self_improvement.py --keep DIR`` keeps) and sorts every LLM-written child by what
was left of the old line after the prompt's end:

==========  ===================================================================================
``number``  a number literal was still to come (``query_cppn(wc, 8, `` and ``3, 1.5, ...)``)
``names``   only names and operators (``abs(`` and ``y1 - y2))``)
``close``   only closing brackets and punctuation (``walker_creator(`` and ``)``)
``whole``   the model wrote the whole line: an insert, or a rewrite from the line's start
==========  ===================================================================================

For each it prints how many there were and the shares that were valid (ran and were scored),
copies of the old line (``unchanged``), other failures, and insertions into the archive. With
``--rebinding`` it also counts the rewrites of a line that binds names with no number in its
value (``wc = walker_creator()``), the ones ``cuts="numbers"`` no longer makes.

    .venv/bin/python benchmarks/line_edit_cuts.py KEEP_DIR/sodarace-adapter-*.db

The edit point is not stored with a child; it is recovered from the prompt, which ends with the
parent's lines up to the edited line and then the start of that line.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

from evolm.operators.line_edit import edit_sites

_NUMBER = re.compile(r"(?<![A-Za-z_0-9.])\d")


def _kind(rest: str) -> str:
    if _NUMBER.search(rest):
        return "number"
    return "names" if re.search(r"[A-Za-z_]", rest) else "close"


def classify(db: Path, function_name: str) -> list[tuple[str, str, bool, bool]]:
    """``(kind, outcome, inserted, rebinding)`` of each LLM-written child of one run, where
    ``outcome`` is ``ok``, ``unchanged`` or ``failed`` and ``rebinding`` says whether the edit
    rewrote a line that binds names with no number in its value."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    codes = dict(con.execute("SELECT id, code FROM programs"))
    rows = con.execute(
        "SELECT p.parent_ids, e.status, COALESCE(e.error, ''), COALESCE(e.add_status, 0),"
        " l.request_json FROM programs p JOIN evaluations e ON e.program_id = p.id"
        " JOIN llm_calls l ON l.id = p.llm_call_id WHERE p.operator = 'line_edit'"
    ).fetchall()
    con.close()
    out = []
    for parents, status, error, add_status, request in rows:
        parent = codes[json.loads(parents)[0]]
        prompt = json.loads(request).get("prompt") or ""
        last = prompt.rsplit("\n", 1)[-1]
        lines = parent.split("\n")
        keep = next(
            (
                k
                for k in range(len(lines), 0, -1)
                if prompt.endswith("\n".join(lines[:k]) + "\n" + last)
            ),
            None,
        )
        if keep is None:
            continue  # not a completion-mode line_edit prompt
        head = last.strip()
        old = lines[keep].strip() if keep < len(lines) else ""
        kind = _kind(old[len(head) :]) if head and old.startswith(head) else "whole"
        bound = {s.index: s.bound for s in edit_sites(parent, function_name)}.get(keep, 0)
        rebinding = bool(head) and bound > 0 and not _NUMBER.search(old[bound:])
        outcome = (
            "ok" if status == "ok" else "unchanged" if error.startswith("unchanged") else "failed"
        )
        out.append((kind, outcome, add_status > 0, rebinding))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dbs", nargs="+", type=Path, help="run databases of line_edit runs")
    ap.add_argument("--function", default="make_walker", help="the domain's function name")
    ap.add_argument("--rebinding", action="store_true", help="count rebinding rewrites too")
    args = ap.parse_args()
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    rebinding: Counter[str] = Counter()
    for db in args.dbs:
        for kind, outcome, inserted, rebinds in classify(db, args.function):
            counts[kind][outcome] += 1
            counts[kind]["inserted"] += inserted
            if rebinds:
                rebinding[outcome] += 1
    print(f"# {len(args.dbs)} runs")
    print("| prompt ended | n | valid | unchanged | failed | inserted |")
    print("|---|---|---|---|---|---|")
    for kind in ("number", "names", "close", "whole"):
        c = counts[kind]
        n = c["ok"] + c["unchanged"] + c["failed"]
        if n:
            shares = " | ".join(
                f"{c[k] / n:.2f}" for k in ("ok", "unchanged", "failed", "inserted")
            )
            print(f"| {kind} | {n} | {shares} |")
    if args.rebinding:
        total = sum(rebinding.values())
        print(
            f"rewrites of a binding line with no number in its value: {total}, "
            f"valid {rebinding['ok']}"
        )


if __name__ == "__main__":
    main()
