"""Supervised fine-tuning data from run databases: the mutations MAP-Elites accepted.

ELM (Lehman et al. 2022, section 4) improves its mutation operator by fine-tuning the language
model on the mutations the search kept. :func:`build_dataset` reads one or more run databases and
turns each qualifying child into one prompt/completion pair for the model that will propose the
next mutations.

**Which children qualify** (``accept``). Only programs with at least one parent whose evaluation
is ``ok``; seeds never do. ``"inserted"`` (default): the child entered the archive, in a new cell
or by beating the elite of its cell (``add_status`` NEW or IMPROVED). ``"improved"``: inserted
and strictly fitter than its first parent. ``"valid"``: every child that ran and was scored.
Children identical to their parent (up to trailing whitespace) are skipped as ``unchanged``.

**Formats** (``format``). Three of them re-render the prompt with evolm's own operators in
completion mode, for any child of the run whatever wrote it (a GP run, the fake LLM, another
model): the first parent becomes the operator's parent, the operator's ``propose`` builds the
prompt with a generator seeded by ``seed`` and a hash of the parent's and the child's code (so
the same mutation gets the same prompt wherever it occurs, and de-duplication sees it), and the
completion is what the operator must receive to produce the child.

* ``"full"`` (default): :class:`~evolm.operators.prompt.PromptMutation`. Its prompt ends with the
  parent's head (its lines up to and including ``def draw():``); the completion is the rest of
  the child. A child whose head differs from the parent's (imports, constants, helpers or the
  ``def`` line changed) cannot be written as such a completion and is skipped as ``head
  changed``; a head that is the same code laid out differently (GP's reformatting changes blank
  lines and spacing) is taken as the parent's, so the example teaches the body's change. The
  completion ends with the line ``# End of draw()`` after a blank line: a column-0 comment,
  which the operator's stop sequence ``"\\n# "`` catches, so a trained model learns to stop
  where the program ends and the stop sequence removes the line before extraction. (A closing
  fence would teach the model to write Markdown, and an end-of-text token alone is not a stop
  the operator controls.)
* ``"elm_diff"``: :class:`~evolm.operators.elm_diff.ElmDiff` (the ``<NME>/<BEF>/<MSG>/<DFF>``
  prompt). The completion is a newline, the hunks of the unified diff from parent to child
  (:mod:`difflib`, 3 lines of context, ``@@`` headers with line numbers, no file-name lines), and
  ``<|endoftext|>``, the operator's end-of-text stop.
* ``"search_replace"``: :class:`~evolm.operators.search_replace.SearchReplace`. The prompt ends
  with an opening ``<<<<<<< SEARCH`` line; the completion holds the rest of that block and any
  further blocks (one per group of changed lines, with the fewest context lines, 1, 2, 4 or 8,
  that make the edit apply correctly), then ``# End of edits``, the operator's stop.
* ``"line"``: :class:`~evolm.operators.line_edit.LineEdit`, for a child that differs from its
  parent in one line, rewritten or added, at one of the operator's sites (most GP mutations:
  a constant, an operator or a name changed, a statement duplicated); other children are
  skipped as ``not one line``, ``not a site`` or ``binding changed`` (a rewrite that changed
  the names the line binds). A rewrite's prompt ends with a head of the old line drawn as the
  operator draws it (never past where the old and new lines part); the completion is the rest
  of the new line, a newline (the operator's stop) and the next line's indentation, as the
  tokenizer writes them together (``"\\n    "`` is one token for SmolLM2), and training appends
  no end-of-sequence token (:attr:`Example.eos`): token healing makes the model write the
  indentation token that ends the prompt, so the model must learn that a line ends with that
  token, not with a bare newline followed by the end of the text.

Every re-rendered example is checked by **round trip**: the completion is cut at the first of the
request's stop sequences (as a backend would), given to the operator's ``finish``, and the code
that comes back must equal the child up to trailing whitespace. Examples that fail are dropped and
counted (``round trip failed``).

* ``"stored"``: the exact prompt and answer of the LLM call that wrote the child, as recorded in
  ``llm_calls`` (chat requests keep their messages, completion requests their prompt string);
  children no LLM wrote are skipped as ``no llm call``.

**De-duplication and split.** Pairs with the same prompt and completion are kept once (the first
in run order). The rest is split into train and validation **by group**, so that near-identical
programs never sit on both sides: ``split_by="lineage"`` (default) groups examples by the seed
their first-parent chain goes back to, ``"parent"`` by their first parent. Groups are shuffled by
``seed`` and added to validation while it stays within ``val_fraction`` of the examples; when
that admits none but there are two or more groups, the smallest group goes to validation. With
few seeds, lineage groups are coarse; ``"parent"`` gives a finer split.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evolm.domains.base import DomainContext, get_domain
from evolm.llm.base import cut_at_stop
from evolm.operators.base import Operator, Proposal
from evolm.store import RunStore, StoreError
from evolm.types import AddStatus, Individual, Status

__all__ = [
    "ACCEPT",
    "FORMATS",
    "SPLITS",
    "DatasetCounts",
    "DatasetError",
    "Example",
    "SFTDataset",
    "build_dataset",
    "read_jsonl",
]

ACCEPT: tuple[str, ...] = ("inserted", "improved", "valid")
FORMATS: tuple[str, ...] = ("full", "elm_diff", "search_replace", "line", "stored")
SPLITS: tuple[str, ...] = ("lineage", "parent")
_INSERTED = (int(AddStatus.NEW), int(AddStatus.IMPROVED))
_SR_CONTEXTS = (1, 2, 4, 8)
_DIFF_END = "<|endoftext|>"


class DatasetError(ValueError):
    """A run database cannot be read, or the arguments are wrong; the message says which."""


@dataclass(frozen=True)
class Example:
    """One training pair.

    Attributes:
        prompt: a completion prompt, or chat messages (``[{"role": ..., "content": ...}]``).
        completion: the text the model should write after the prompt.
        source: the run database it came from.
        program_id: the child's id in that database.
        parent_id: its first parent's id.
        eos: whether training appends the end-of-sequence token to the completion. False for
            the ``line`` format: its stop sequence (a newline) ends every answer, and an EOS
            after a line would teach the model to end where the next line begins.
    """

    prompt: str | list[dict[str, str]]
    completion: str
    source: str
    program_id: int
    parent_id: int
    eos: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.eos:  # the files of examples with an EOS read as before the field existed
            del d["eos"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        prompt = d["prompt"]
        if not isinstance(prompt, str):
            prompt = [dict(m) for m in prompt]
        return cls(
            prompt,
            d["completion"],
            d["source"],
            int(d["program_id"]),
            int(d["parent_id"]),
            bool(d.get("eos", True)),
        )


@dataclass
class DatasetCounts:
    """What :func:`build_dataset` saw and kept.

    Attributes:
        rows: programs read, seeds and unevaluated ones included.
        qualifying: children that pass ``accept`` (and have a parent and an ``ok`` status).
        skipped: qualifying children without an example, by reason (``unchanged``,
            ``head changed``, ``round trip failed``, ``no llm call``, ``parent missing``).
        duplicates: examples dropped as repeats of an earlier (prompt, completion).
        train, val: examples in each split.
        groups: lineage or parent groups the examples fall into.
    """

    rows: int = 0
    qualifying: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    train: int = 0
    val: int = 0
    groups: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SFTDataset:
    """Train and validation examples, with how they were made."""

    train: list[Example]
    val: list[Example]
    counts: DatasetCounts
    format: str
    accept: str
    split_by: str
    sources: tuple[Path, ...]

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``train.jsonl`` and ``val.jsonl`` (one :meth:`Example.to_dict` per line) into
        ``out_dir`` and return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = (out / "train.jsonl", out / "val.jsonl")
        for path, examples in zip(paths, (self.train, self.val), strict=True):
            with path.open("w", encoding="utf-8") as fh:
                for ex in examples:
                    fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
        return paths


def read_jsonl(path: str | Path) -> list[Example]:
    """The examples of a ``train.jsonl`` or ``val.jsonl`` written by :meth:`SFTDataset.write`."""
    with Path(path).open(encoding="utf-8") as fh:
        return [Example.from_dict(json.loads(line)) for line in fh if line.strip()]


def _same(a: str, b: str) -> bool:
    """Whether two programs differ at most in trailing whitespace."""
    return [line.rstrip() for line in a.rstrip().split("\n")] == [
        line.rstrip() for line in b.rstrip().split("\n")
    ]


def _round_trips(op: Operator, proposal: Proposal, completion: str, child: str) -> bool:
    assert proposal.request is not None
    result = op.finish(proposal, cut_at_stop(completion, proposal.request.stop)[0])
    return result.ok and _same(result.code, child)


# -- the re-rendered formats ----------------------------------------------------------------
_Render = Callable[[Individual, str, np.random.Generator], tuple[str, str] | str]


def _with_head(child: str, head: str, fn: str) -> str:
    """``child`` with its head (the lines up to its ``def fn`` line) replaced by ``head`` when
    the two are the same code laid out differently (GP's reformatting changes blank lines and
    spacing, not meaning); else ``child`` unchanged."""
    import ast

    from evolm.operators.prompt import _def_line_index

    lines = child.split("\n")
    i = _def_line_index(lines, fn)
    if i is None:
        return child
    child_head = "\n".join(lines[: i + 1]) + "\n"
    try:
        same = ast.dump(ast.parse(child_head + "    pass\n")) == ast.dump(
            ast.parse(head + "    pass\n")
        )
    except SyntaxError:
        return child
    return head + "\n".join(lines[i + 1 :]) if same else child


def _line_key(line: str) -> tuple[int, str]:
    """A layout-blind key of one line: its indentation width and its code without whitespace or
    a trailing comment (a ``#`` inside a string may cut the key short; ``parent_layout`` checks
    the syntax tree of what it builds, so such a line costs only the clean-up, never the code)."""
    code = line.split("#", 1)[0] if "#" in line else line
    return len(line) - len(line.lstrip()), "".join(code.split())


def _is_layout(line: str) -> bool:
    """A line that carries no code: blank or only a comment."""
    text = line.strip()
    return not text or text.startswith("#")


def _layout_key(lines: Sequence[str]) -> list[tuple[int, str]]:
    """The lines as layout-blind keys, blank and comment-only lines dropped."""
    return [_line_key(line) for line in lines if not _is_layout(line)]


def parent_layout(parent: str, child: str) -> str:
    """``child`` with every stretch of lines that differs from ``parent`` only in layout (blank
    lines, comments, spacing inside a line) written as the parent writes it.

    GP re-prints the whole program from its syntax tree, so a GP child also drops comments and
    changes blank lines and spacing, none of which mean anything; an example made from it would
    teach the model those edits too (an edit block that only deletes a comment, a body re-spaced
    throughout). The result is checked to be
    the same code as ``child`` (same syntax tree); when it is not (whitespace inside a string,
    say) or ``child`` does not parse, ``child`` is returned unchanged.
    """
    import ast

    old, new = parent.rstrip().split("\n"), child.rstrip().split("\n")
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        a, b = old[i1:i2], new[j1:j2]
        if tag == "equal" or _layout_key(a) == _layout_key(b):
            out.extend(a)
            continue
        # a real edit among re-printed lines: keep the parent's lines the edit left alone
        keys_a, keys_b = [_line_key(x) for x in a], [_line_key(x) for x in b]
        inner = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
        for t, k1, k2, m1, m2 in inner.get_opcodes():
            if t == "equal":
                out.extend(a[k1:k2])
                continue
            # the parent's comments and blank lines stay where the edit did not put code
            kept = a[k1:k2]
            if t == "delete" and all(_is_layout(x) for x in kept):
                out.extend(kept)
                continue
            while kept and _is_layout(kept[0]):
                out.append(kept.pop(0))
            out.extend(b[m1:m2])
    made = "\n".join(out) + "\n"
    try:
        if ast.dump(ast.parse(made)) != ast.dump(ast.parse(child)):
            return child
    except SyntaxError:
        return child
    return made


def _full(ctx: DomainContext) -> _Render:
    from evolm.operators.prompt import PromptMutation

    op = PromptMutation(ctx, mode="completion")
    fn = ctx.function_name

    def render(parent: Individual, child: str, rng: np.random.Generator) -> tuple[str, str] | str:
        proposal = op.propose([parent], rng)
        assert proposal.request is not None
        prompt = proposal.request.prompt
        head = proposal.prefix
        if head and not child.startswith(head):
            child = _with_head(child, head, fn)
        if not head or not child.startswith(head):
            return "head changed"
        target = child[len(head) :].rstrip() + f"\n\n# End of {fn}()\n"
        return (
            (prompt, target) if _round_trips(op, proposal, target, child) else "round trip failed"
        )

    return render


def _elm_diff(ctx: DomainContext) -> _Render:
    from evolm.operators.elm_diff import ElmDiff

    op = ElmDiff(ctx, mode="completion")

    def render(parent: Individual, child: str, rng: np.random.Generator) -> tuple[str, str] | str:
        proposal = op.propose([parent], rng)
        assert proposal.request is not None
        before = parent.program.code.rstrip()  # the parent as the prompt shows it
        lines = difflib.unified_diff(
            before.split("\n"), child.rstrip().split("\n"), lineterm="", n=3
        )
        hunks = [line for i, line in enumerate(lines) if i >= 2]  # drop the ---/+++ lines
        target = "\n" + "\n".join(hunks) + "\n" + _DIFF_END
        if _round_trips(op, proposal, target, child):
            return proposal.request.prompt, target
        return "round trip failed"

    return render


def _edit_blocks(before: list[str], after: list[str], context: int) -> str:
    """SEARCH/REPLACE blocks turning ``before`` into ``after``, one per group of changes with
    ``context`` unchanged lines around it, without the first block's opening marker."""
    from evolm.operators.search_replace import (
        DIVIDER,
        END_OF_EDITS,
        REPLACE_MARKER,
        SEARCH_MARKER,
    )

    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    parts = []
    for group in matcher.get_grouped_opcodes(context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        search = "".join(line + "\n" for line in before[i1:i2])
        replace = "".join(line + "\n" for line in after[j1:j2])
        parts.append(f"{SEARCH_MARKER}\n{search}{DIVIDER}\n{replace}{REPLACE_MARKER}\n")
    text = "".join(parts) + END_OF_EDITS + "\n"
    return text[len(SEARCH_MARKER) + 1 :]


def _search_replace(ctx: DomainContext) -> _Render:
    from evolm.operators.search_replace import SearchReplace

    op = SearchReplace(ctx, mode="completion")

    def render(parent: Individual, child: str, rng: np.random.Generator) -> tuple[str, str] | str:
        proposal = op.propose([parent], rng)
        assert proposal.request is not None
        before = parent.program.code
        old, new = before.rstrip().split("\n"), child.rstrip().split("\n")
        for context in _SR_CONTEXTS:
            target = _edit_blocks(old, new, context)
            if _round_trips(op, proposal, target, child):
                return proposal.request.prompt, target
        return "round trip failed"

    return render


def _line_edit(ctx: DomainContext) -> _Render:
    from evolm.operators.line_edit import LineEdit, LineSpot, cut_points, edit_sites
    from evolm.operators.textmatch import indent_of

    op = LineEdit(ctx, mode="completion")

    def following(lines: list[str], at: int) -> str:
        """The indentation of the first non-blank line after ``at`` ("" at the end)."""
        return next((indent_of(x) for x in lines[at + 1 :] if x.strip()), "")

    def spot(parent: str, child: str, rng: np.random.Generator) -> tuple[LineSpot, str] | str:
        old, new = parent.rstrip().split("\n"), child.rstrip().split("\n")
        edits = [
            o
            for o in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
            if o[0] != "equal"
        ]
        if len(edits) != 1:
            return "not one line"
        tag, i1, i2, j1, j2 = edits[0]
        sites = {s.index: s for s in edit_sites(parent, ctx.function_name)}
        if tag == "replace" and i2 - i1 == 1 and j2 - j1 == 1:
            site = sites.get(i1)
            if site is None or indent_of(old[i1]) != indent_of(new[j1]):
                return "not a site"
            before, after = old[i1].strip(), new[j1].strip()
            common = next(
                (i for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y),
                min(len(before), len(after)),
            )
            if common < site.bound:
                return "binding changed"
            cuts = [p for p in cut_points(before) if site.bound <= p <= common]
            cuts = cuts or ([site.bound] if site.bound else [])
            cut = ([] if site.bound else [0]) + cuts
            at = cut[int(rng.integers(len(cut)))]
            rest = after[at:] + "\n" + following(new, j1)
            return LineSpot(i1, i1 + 1, indent_of(old[i1]), before, before[:at]), rest
        if tag == "insert" and j2 - j1 == 1:
            site = sites.get(i1 - 1)
            if site is None or not site.whole or site.indent != indent_of(new[j1]):
                return "not a site"
            rest = new[j1].strip() + "\n" + following(new, j1)
            return LineSpot(i1, i1, site.indent, ""), rest
        return "not one line"

    def render(parent: Individual, child: str, rng: np.random.Generator) -> tuple[str, str] | str:
        made = spot(parent.program.code, child, rng)
        if isinstance(made, str):
            return made
        edit, target = made
        proposal = op.proposal(parent, edit, rng)
        assert proposal.request is not None
        if _round_trips(op, proposal, target, child):
            return proposal.request.prompt, target
        return "round trip failed"

    return render


_RENDERERS: dict[str, Callable[[DomainContext], _Render]] = {
    "full": _full,
    "elm_diff": _elm_diff,
    "search_replace": _search_replace,
    "line": _line_edit,
}


# -- reading a run --------------------------------------------------------------------------
def _qualifies(row: dict[str, Any], parent: dict[str, Any] | None, accept: str) -> bool:
    if not row["parent_ids"] or row["status"] != Status.OK.value:
        return False
    if accept == "valid":
        return True
    if row["add_status"] not in _INSERTED:
        return False
    if accept == "inserted":
        return True
    return (
        parent is not None
        and parent["status"] == Status.OK.value
        and parent["fitness"] is not None
        and row["fitness"] > parent["fitness"]
    )


def _root(pid: int, rows: dict[int, dict[str, Any]]) -> int:
    """The lineage root of ``pid``: follow first parents to a program without parents (or to
    the last one the database holds)."""
    seen = {pid}
    while True:
        parents = rows[pid]["parent_ids"] if pid in rows else []
        if not parents or parents[0] not in rows or parents[0] in seen:
            return pid
        pid = parents[0]
        seen.add(pid)


def _context(store: RunStore) -> DomainContext:
    domain = store.run_info()["config"]["domain"]
    try:
        return get_domain(domain["name"], domain.get("params") or {}).context()
    except ValueError as exc:
        raise DatasetError(f"{store.path}: cannot rebuild the run's domain: {exc}") from exc


def _examples(
    store: RunStore,
    index: int,
    *,
    accept: str,
    format: str,
    seed: int,
    split_by: str,
    counts: DatasetCounts,
) -> Iterator[tuple[Example, tuple[int, int]]]:
    """The examples of one run database with their split group ``(run index, group id)``."""
    rows = {r["id"]: r for r in store.export_rows()}
    counts.rows += len(rows)
    render = _RENDERERS[format](_context(store)) if format in _RENDERERS else None
    source = str(store.path)
    for pid, row in rows.items():
        parent_id = row["parent_ids"][0] if row["parent_ids"] else None
        parent_row = rows.get(parent_id) if parent_id is not None else None
        if not _qualifies(row, parent_row, accept):
            continue
        counts.qualifying += 1
        assert parent_id is not None
        parent = store.program(parent_id) if parent_row is not None else None
        if not isinstance(parent, Individual):
            counts.skip("parent missing")
            continue
        child = row["code"].rstrip() + "\n"
        if _same(child, parent.program.code):
            counts.skip("unchanged")
            continue
        if render is None:
            made = _stored(store, row)
        else:
            child = parent_layout(parent.program.code, child)
            if _same(child, parent.program.code):
                counts.skip("layout only")
                continue
            made = render(parent, child, _rng(seed, parent.program.code, child))
        if isinstance(made, str):
            counts.skip(made)
            continue
        group = _root(pid, rows) if split_by == "lineage" else parent_id
        example = Example(made[0], made[1], source, pid, parent_id, eos=format != "line")
        yield example, (index, group)


def _rng(seed: int, parent: str, child: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{parent}\0{child}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _stored(store: RunStore, row: dict[str, Any]) -> tuple[str | list[dict[str, str]], str] | str:
    if row["llm_call_id"] is None:
        return "no llm call"
    try:
        request, completion = store.llm_call(row["llm_call_id"])
    except KeyError:
        return "no llm call"
    if completion.error is not None:
        return "no llm call"
    if request.kind == "chat":
        return [dict(m) for m in request.messages], completion.text
    return request.prompt, completion.text


def _split(
    groups: dict[tuple[int, int], list[Example]], val_fraction: float, seed: int
) -> tuple[set[tuple[int, int]], int]:
    keys = sorted(groups)
    if val_fraction <= 0 or len(keys) < 2:
        return set(), len(keys)
    total = sum(len(v) for v in groups.values())
    budget = val_fraction * total
    rng = np.random.default_rng(seed)
    val: set[tuple[int, int]] = set()
    size = 0
    for i in rng.permutation(len(keys)):
        key = keys[int(i)]
        if size + len(groups[key]) <= budget:
            val.add(key)
            size += len(groups[key])
    if not val:
        order = [keys[int(i)] for i in rng.permutation(len(keys))]
        val.add(min(order, key=lambda k: len(groups[k])))
    return val, len(keys)


def build_dataset(
    runs: Sequence[str | Path],
    *,
    accept: str = "inserted",
    format: str = "full",
    val_fraction: float = 0.1,
    split_by: str = "lineage",
    seed: int = 0,
) -> SFTDataset:
    """Build a fine-tuning dataset from run databases (rules in the module docstring).

    Args:
        runs: run database paths (read-only).
        accept: ``"inserted"``, ``"improved"`` or ``"valid"``: which children qualify.
        format: ``"full"``, ``"elm_diff"``, ``"search_replace"`` or ``"stored"``.
        val_fraction: the share of examples to hold out, in [0, 1).
        split_by: ``"lineage"`` or ``"parent"``: the groups the split keeps whole.
        seed: seeds the re-rendered prompts and the split.

    Returns:
        The dataset; it may be empty (``counts`` says why).

    Raises:
        DatasetError: a database is missing or not an evolm run, its domain cannot be rebuilt,
            or an argument is not one of the choices above.
    """
    if accept not in ACCEPT:
        raise DatasetError(f"accept must be one of {', '.join(ACCEPT)}, got {accept!r}")
    if format not in FORMATS:
        raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if split_by not in SPLITS:
        raise DatasetError(f"split_by must be one of {', '.join(SPLITS)}, got {split_by!r}")
    if not (0 <= val_fraction < 1):
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if not runs:
        raise DatasetError("name at least one run database")
    counts = DatasetCounts()
    seen: set[str] = set()
    groups: dict[tuple[int, int], list[Example]] = {}
    order: list[tuple[Example, tuple[int, int]]] = []
    paths = tuple(Path(p) for p in runs)
    for index, path in enumerate(paths):
        try:
            store = RunStore(path, create=False, readonly=True)
        except StoreError as exc:
            raise DatasetError(str(exc)) from exc
        with store:
            for example, group in _examples(
                store,
                index,
                accept=accept,
                format=format,
                seed=seed,
                split_by=split_by,
                counts=counts,
            ):
                key = json.dumps([example.prompt, example.completion])
                if key in seen:
                    counts.duplicates += 1
                    continue
                seen.add(key)
                groups.setdefault(group, []).append(example)
                order.append((example, group))
    val_groups, counts.groups = _split(groups, val_fraction, seed)
    train = [ex for ex, g in order if g not in val_groups]
    val = [ex for ex, g in order if g in val_groups]
    counts.train, counts.val = len(train), len(val)
    return SFTDataset(train, val, counts, format, accept, split_by, paths)
