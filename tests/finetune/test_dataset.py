"""Fine-tuning datasets from run databases: which children qualify, the formats and their round
trip through the operators, de-duplication and the lineage split."""

from __future__ import annotations

import ast
import difflib
import json
from pathlib import Path

import pytest

from evolm.domains.base import get_domain
from evolm.finetune.dataset import (
    DatasetError,
    Example,
    build_dataset,
    parent_layout,
    read_jsonl,
)
from evolm.llm.base import Request
from evolm.operators.base import Proposal
from evolm.operators.elm_diff import DIFF_STOP, ElmDiff
from evolm.operators.line_edit import LINE_STOP, LineEdit
from evolm.operators.prompt import COMPLETION_STOP, PromptMutation, completion_prefix
from evolm.operators.search_replace import COMPLETION_STOP as EDITS_STOP
from evolm.operators.search_replace import SearchReplace
from evolm.store import RunStore
from evolm.types import AddStatus, Evaluation, Individual, Program, Status

from .conftest import IMAGE, make_db

NEW, IMPROVED, NOT_ADDED = int(AddStatus.NEW), int(AddStatus.IMPROVED), int(AddStatus.NOT_ADDED)
SEED = (
    "import numpy as np\n\n\ndef draw():\n"
    "    img = np.zeros((32, 32, 3))\n    img[:, :, 0] = 0.5\n    return img\n"
)


def _variant(value: str, extra: str = "") -> str:
    return extra + SEED.replace("= 0.5", f"= {value}")


CHAT = Request(kind="chat", messages=({"role": "user", "content": "mutate it"},), seed=3)
COMPLETION = Request(kind="completion", prompt="# a file\ndef draw():\n", stop=("\n# ",), seed=4)
PROGRAMS = [
    {"id": 0, "code": SEED, "parents": [], "status": "ok", "fitness": -0.5, "add": NEW},
    {"id": 1, "code": _variant("0.7"), "parents": [0], "status": "ok", "fitness": -0.3, "add": NEW},
    {"id": 2, "code": _variant("0.2"), "parents": [0], "status": "ok", "fitness": -0.6},
    {"id": 3, "code": _variant("0.3"), "parents": [0], "status": "ok", "fitness": -0.4},
    {"id": 4, "code": _variant("9"), "parents": [0], "status": "error", "fitness": None},
    {"id": 5, "code": _variant("0.7"), "parents": [1], "status": "ok", "fitness": -0.2, "add": NEW},
    {
        "id": 6,
        "code": _variant("0.8", "import math\n"),
        "parents": [1],
        "status": "ok",
        "fitness": -0.1,
        "add": NEW,
    },
    {"id": 7, "code": _variant("0.25"), "parents": [2, 0], "status": "ok", "fitness": -0.55},
    {"id": 8, "code": _variant("0.4"), "parents": [7]},  # never evaluated
]
PROGRAMS[2]["add"] = IMPROVED
PROGRAMS[3]["add"] = NOT_ADDED
PROGRAMS[7]["add"] = NEW


@pytest.fixture
def hand_db(tmp_path: Path) -> Path:
    calls = {1: (CHAT, "```python\n" + _variant("0.7") + "```"), 2: (COMPLETION, "    pass\n")}
    return make_db(tmp_path / "hand.db", PROGRAMS, calls)


def _ids(dataset) -> set[int]:
    return {ex.program_id for ex in dataset.train + dataset.val}


@pytest.mark.parametrize(
    ("accept", "qualifying", "kept"),
    [
        ("inserted", {1, 2, 5, 6, 7}, {1, 2, 6, 7}),
        ("improved", {1, 5, 6, 7}, {1, 6, 7}),
        ("valid", {1, 2, 3, 5, 6, 7}, {1, 2, 3, 6, 7}),
    ],
)
def test_which_children_qualify(hand_db, accept, qualifying, kept):
    d = build_dataset([hand_db], accept=accept, format="elm_diff", val_fraction=0)
    assert d.counts.rows == len(PROGRAMS)
    assert d.counts.qualifying == len(qualifying)
    assert _ids(d) == kept  # 5 repeats its parent's code
    assert d.counts.skipped == {"unchanged": 1}
    assert {ex.parent_id for ex in d.train if ex.program_id == 7} <= {2}  # the first parent


def test_full_format_skips_a_changed_head(hand_db):
    d = build_dataset([hand_db], format="full", val_fraction=0)
    assert _ids(d) == {1, 2, 7}
    assert d.counts.skipped == {"unchanged": 1, "head changed": 1}
    ex = next(e for e in d.train if e.program_id == 1)
    assert isinstance(ex.prompt, str) and ex.prompt.endswith(
        "import numpy as np\n\n\ndef draw():\n"
    )
    assert ex.completion == (
        "    img = np.zeros((32, 32, 3))\n    img[:, :, 0] = 0.7\n    return img\n"
        "\n# End of draw()\n"
    )


def test_stored_gives_the_recorded_prompt_and_answer(hand_db):
    d = build_dataset([hand_db], format="stored", accept="valid", val_fraction=0)
    by_id = {ex.program_id: ex for ex in d.train}
    assert set(by_id) == {1, 2}
    assert by_id[1].prompt == [{"role": "user", "content": "mutate it"}]
    assert by_id[1].completion == "```python\n" + _variant("0.7") + "```"
    assert by_id[2].prompt == COMPLETION.prompt and by_id[2].completion == "    pass\n"
    assert d.counts.skipped == {"unchanged": 1, "no llm call": 3}
    with RunStore(hand_db, readonly=True) as store, pytest.raises(KeyError, match="no LLM call"):
        store.llm_call(99)


def test_stored_matches_the_database_of_a_real_run(fake_db):
    d = build_dataset([fake_db], format="stored", accept="valid")
    examples = d.train + d.val
    assert len(examples) >= 10
    with RunStore(fake_db, readonly=True) as store:
        for ex in examples:
            found = store.program(ex.program_id)
            prog = found.program if isinstance(found, Individual) else found
            assert prog.llm_call_id is not None
            request, completion = store.llm_call(prog.llm_call_id)
            assert ex.prompt == json.loads(request.to_json())["messages"]
            assert ex.completion == completion.text


def test_stored_skips_children_no_llm_wrote(gp_db):
    d = build_dataset([gp_db], format="stored", accept="valid")
    assert not d.train and not d.val
    assert d.counts.skipped == {"no llm call": d.counts.qualifying} and d.counts.qualifying > 0


def _cut(text: str, stops) -> str:
    at = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:at]


OPERATORS = {
    "full": (PromptMutation, COMPLETION_STOP),
    "elm_diff": (ElmDiff, DIFF_STOP),
    "search_replace": (SearchReplace, EDITS_STOP),
}


def _same(a: str, b: str) -> bool:
    return [x.rstrip() for x in a.rstrip().split("\n")] == [
        x.rstrip() for x in b.rstrip().split("\n")
    ]


@pytest.mark.parametrize("format", list(OPERATORS))
@pytest.mark.parametrize("run", ["gp_db", "fake_db"])
def test_re_rendered_formats_round_trip_through_the_operator(request, run, format):
    db = request.getfixturevalue(run)
    d = build_dataset([db], format=format, accept="valid")
    examples = d.train + d.val
    assert len(examples) >= (5 if format != "full" or run == "fake_db" else 3)
    op_class, stops = OPERATORS[format]
    op = op_class(get_domain(IMAGE["name"], IMAGE["params"]).context(), mode="completion")
    with RunStore(db, readonly=True) as store:
        for ex in examples:
            assert isinstance(ex.prompt, str)
            # what a backend returns for a model that writes the completion, stops applied
            text = _cut(ex.completion, stops)
            assert text != ex.completion  # the completion ends with a stop the operator sets
            stored = store.program(ex.parent_id)
            assert isinstance(stored, Individual)
            # the proposal as propose() made it: its parent, and the head the model continues
            head = completion_prefix(ex.prompt, op.context.function_name)
            proposal = Proposal(
                (ex.parent_id,),
                Request(kind="completion", prompt=ex.prompt),
                parents=(stored,),
                prefix=head if format == "full" else "",
            )
            result = op.finish(proposal, text)
            assert result.ok, result.error
            child = store.program(ex.program_id).program.code
            parent = store.program(ex.parent_id).program.code
            # the child's code, in the parent's layout where GP only re-printed a line
            assert ast.dump(ast.parse(result.code)) == ast.dump(ast.parse(child))
            if format != "full" or run == "fake_db":
                assert _same(result.code, parent_layout(parent, child))


def test_layout_only_changes_take_the_parents_layout_and_real_edits_stay():
    parent = "import numpy as np\n\n\ndef draw():\n    a = 1 +  2\n    b = 'x  y'\n    return a\n"
    child = "import numpy as np\n\ndef draw():\n    a = 1 + 2\n    b = 'x  y'\n    return a * 3\n"
    made = parent_layout(parent, child)
    assert (
        made
        == "import numpy as np\n\n\ndef draw():\n    a = 1 +  2\n    b = 'x  y'\n    return a * 3\n"
    )
    # spacing inside a string is meaning, not layout: such a child stays as it is
    moved = child.replace("'x  y'", "'x y'")
    assert parent_layout(parent, moved) == moved
    # an indentation change is never layout, and code that does not parse is left alone
    nested = parent.replace("    return a", "    if a:\n        return a")
    flat = parent.replace("    return a", "    if a:\n    return a")
    assert parent_layout(nested, flat) == flat


def test_comments_gp_dropped_come_back_and_only_the_real_edit_remains():
    parent = (
        "def draw():\n"
        "    # the base value\n"
        "    a = 2  # two\n"
        "\n"
        "    # scale it\n"
        "    b = a * 3\n"
        "    return b\n"
    )
    # what GP prints (ast.unparse): comments and blank lines gone, one constant changed
    child = "def draw():\n    a = 2\n    b = a * 4\n    return b\n"
    made = parent_layout(parent, child)
    assert made == parent.replace("a * 3", "a * 4")
    # the edit blocks made from it hold the changed line alone, not the lost comments
    diff = [
        line
        for line in difflib.unified_diff(parent.split("\n"), made.split("\n"), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("---", "+++"))
    ]
    assert diff == ["-    b = a * 3", "+    b = a * 4"]
    # a '#' inside a string is code: the string's change is kept, whatever the key saw
    sharp = parent.replace("return b", "return '#1'")
    changed = child.replace("return b", "return '#2'")
    assert "'#2'" in parent_layout(sharp, changed)


def test_gp_children_reformatted_from_seeds_keep_the_parents_head(gp_db):
    d = build_dataset([gp_db], format="full", accept="valid")
    # GP re-prints the whole program (blank lines change); the body's edit is what is learnt
    kept = [ex for ex in d.train + d.val if "# New version of draw()" in ex.prompt]
    assert kept and all("import numpy" not in ex.completion for ex in kept)
    total = d.counts.train + d.counts.val + sum(d.counts.skipped.values()) + d.counts.duplicates
    assert total == d.counts.qualifying


def test_search_replace_widens_context_until_the_edit_lands(tmp_path):
    body = ["    img = np.zeros((32, 32, 3))"] + [
        "    img[:, :, 0] = 0.5",
        "    img[:, :, 1] = 0.5",
    ] * 3
    parent = "import numpy as np\n\n\ndef draw():\n" + "\n".join([*body, "    return img"]) + "\n"
    lines = parent.split("\n")
    lines[9] = "    img[:, :, 0] = 0.9"  # the third of three identical lines
    child = "\n".join(lines)
    db = make_db(
        tmp_path / "r.db",
        [
            {"id": 0, "code": parent, "parents": [], "status": "ok", "fitness": -1.0, "add": NEW},
            {"id": 1, "code": child, "parents": [0], "status": "ok", "fitness": -0.5, "add": NEW},
        ],
    )
    d = build_dataset([db], format="search_replace", val_fraction=0)
    (ex,) = d.train
    search = ex.completion.split("=======")[0]
    assert search.count("\n") > 3  # one line of context either side would hit the first copy
    op = SearchReplace(get_domain(IMAGE["name"], IMAGE["params"]).context(), mode="completion")
    stored = Individual(Program(0, parent), Evaluation(Status.OK, fitness=-1.0))
    result = op.finish(
        Proposal((0,), Request(kind="completion", prompt=ex.prompt), parents=(stored,)),
        _cut(ex.completion, EDITS_STOP),
    )
    assert result.code == child


def test_duplicates_are_kept_once(fake_db):
    one = build_dataset([fake_db], format="elm_diff", accept="valid")
    two = build_dataset([fake_db, fake_db], format="elm_diff", accept="valid")
    n = one.counts.train + one.counts.val
    assert two.counts.duplicates == one.counts.duplicates + n
    assert two.train == one.train and two.val == one.val


def _root(rows: dict[int, dict], pid: int) -> int:
    while rows[pid]["parent_ids"]:
        pid = rows[pid]["parent_ids"][0]
    return pid


@pytest.mark.parametrize("split_by", ["lineage", "parent"])
def test_split_keeps_each_group_on_one_side(fake_db, gp_db, split_by):
    d = build_dataset([fake_db, gp_db], format="elm_diff", accept="valid", split_by=split_by)
    assert d.val and d.train and d.counts.groups >= 2
    rows = {}
    for db in (fake_db, gp_db):
        with RunStore(db, readonly=True) as store:
            rows[str(db)] = {r["id"]: r for r in store.export_rows()}

    def group(ex: Example) -> tuple[str, int]:
        if split_by == "parent":
            return ex.source, ex.parent_id
        return ex.source, _root(rows[ex.source], ex.program_id)

    assert not {group(e) for e in d.train} & {group(e) for e in d.val}
    again = build_dataset([fake_db, gp_db], format="elm_diff", accept="valid", split_by=split_by)
    assert again.train == d.train and again.val == d.val
    other = build_dataset([fake_db, gp_db], format="elm_diff", accept="valid", val_fraction=0)
    assert not other.val and len(other.train) == len(d.train) + len(d.val)


def test_a_single_group_leaves_validation_empty(hand_db):
    d = build_dataset([hand_db], format="elm_diff", split_by="lineage")
    assert d.counts.groups == 1 and not d.val and d.train
    d = build_dataset([hand_db], format="elm_diff", split_by="parent")
    assert d.counts.groups == 3 and d.val  # parents 0, 1 and 2


def test_write_and_read_jsonl(hand_db, tmp_path):
    d = build_dataset(
        [hand_db], format="stored", accept="valid", split_by="parent", val_fraction=0.5
    )
    train, val = d.write(tmp_path / "data")
    assert read_jsonl(train) == d.train and read_jsonl(val) == d.val
    assert d.train or d.val


def test_bad_arguments_and_missing_databases(hand_db, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset([tmp_path / "nope.db"])
    with pytest.raises(DatasetError, match="accept must be one of"):
        build_dataset([hand_db], accept="all")
    with pytest.raises(DatasetError, match="format must be one of"):
        build_dataset([hand_db], format="chat")
    with pytest.raises(DatasetError, match="val_fraction"):
        build_dataset([hand_db], val_fraction=1.0)


def _line_spot_child(ex: Example, parent: str) -> set[str]:
    """Every program the line_edit operator can make of ``ex``: the prompt's last line is the
    new line's start (indentation and a head of the old line), the parent's lines before it
    are kept, and the new line either rewrites the next parent line or is added there."""
    op = LineEdit(get_domain(IMAGE["name"], IMAGE["params"]).context(), mode="completion")
    assert isinstance(ex.prompt, str)
    body, start = ex.prompt.rsplit("\n", 1)
    lines = parent.split("\n")
    stored = Individual(Program(ex.parent_id, parent), Evaluation(Status.OK, fitness=0.0))
    text = _cut(ex.completion, LINE_STOP)
    assert text != ex.completion  # the completion ends with the operator's stop
    made = set()
    for keep in range(len(lines) + 1):
        if not body.endswith("\n".join(lines[:keep])):
            continue
        for resume in {keep, min(keep + 1, len(lines))}:
            proposal = Proposal(
                (ex.parent_id,), Request(kind="completion"), parents=(stored,),
                detail=(keep, resume, start),
            )  # fmt: skip
            result = op.finish(proposal, text)
            if result.ok:
                made.add(result.code.rstrip())
    return made


def test_the_line_format_teaches_one_line_edits_of_gp_children(gp_db):
    d = build_dataset([gp_db], format="line", accept="valid")
    examples = d.train + d.val
    assert len(examples) >= 5
    assert d.counts.skipped.get("not one line", 0) > 0  # GP's swaps, deletions, multi-line edits
    with RunStore(gp_db, readonly=True) as store:
        for ex in examples:
            # one line, the stop, the next line's indentation; no EOS in training
            line, rest = ex.completion.split("\n")
            assert line.strip() and not rest.strip() and not ex.eos
            child = store.program(ex.program_id).program.code
            parent = store.program(ex.parent_id).program.code
            assert parent_layout(parent, child).rstrip() in _line_spot_child(ex, parent)


def test_the_line_format_cuts_the_old_line_where_the_new_one_departs(tmp_path):
    parent = "import numpy as np\n\n\ndef draw():\n    img = np.zeros((32, 32, 3))\n"
    parent += "    img[:, :, 0] = 0.5\n    return img\n"
    children = {
        1: parent.replace("0] = 0.5", "0] = 0.75"),  # a rewrite
        2: parent.replace("np.zeros((32, 32, 3))", "np.ones((32, 32, 3))"),  # keeps `img = `
        3: parent.replace("    img = np", "    pic = np"),  # the bound name changed
        4: parent.replace("0.5\n", "0.5\n    img[:, :, 1] = 0.2\n"),  # an added line
        5: parent.replace("0.5", "0.6").replace("32, 3", "16, 3"),  # two lines
    }
    programs = [{"id": 0, "code": parent, "parents": [], "status": "ok", "fitness": -1.0}]
    for pid, code in children.items():
        programs.append(
            {"id": pid, "code": code, "parents": [0], "status": "ok", "fitness": -0.5, "add": NEW}
        )
    d = build_dataset([make_db(tmp_path / "r.db", programs)], format="line", val_fraction=0)
    by_id = {ex.program_id: ex for ex in d.train}
    assert sorted(by_id) == [1, 2, 4]
    assert d.counts.skipped == {"binding changed": 1, "not one line": 1}
    for pid, ex in by_id.items():
        new_line = next(
            line for line in children[pid].split("\n") if line not in parent.split("\n")
        )
        start = ex.prompt.rsplit("\n", 1)[1]
        following = "    "  # the indentation of the line after the new one
        assert start + ex.completion == new_line + "\n" + following
        if pid != 4:  # a rewrite: the head is shared by the old line and the new one
            old_line = next(
                line for line in parent.split("\n") if line not in children[pid].split("\n")
            )
            assert old_line.startswith(start)
    assert by_id[2].prompt.endswith("    img = ")  # never past the bound name's `=` ...
    assert by_id[4].prompt.endswith("0.5\n    ")  # an added line starts at the indentation
