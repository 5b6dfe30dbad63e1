"""Unified-diff parsing and context-tolerant application on messy, LLM-style completions."""

from __future__ import annotations

import difflib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolm.operators.diff import DiffError, Hunk, apply_diff, apply_hunks, parse_hunks

SOURCE = (
    "import numpy as np\n"
    "\n"
    "\n"
    "def draw():\n"
    "    r = 0.3\n"
    "    colour = (0.9, 0.1, 0.1)\n"
    "    img = np.zeros((16, 16, 3))\n"
    "    for i in range(16):\n"
    "        img[i, i] = colour\n"
    "    return img\n"
)


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def test_clean_diff_with_headers() -> None:
    diff = (
        "--- a/program.py\n"
        "+++ b/program.py\n"
        "@@ -4,3 +4,3 @@\n"
        " def draw():\n"
        "-    r = 0.3\n"
        "+    r = 0.4\n"
        "     colour = (0.9, 0.1, 0.1)\n"
    )
    hunks = parse_hunks(diff)
    assert hunks == [
        Hunk(
            (
                (" ", "def draw():"),
                ("-", "    r = 0.3"),
                ("+", "    r = 0.4"),
                (" ", "    colour = (0.9, 0.1, 0.1)"),
            ),
            old_start=4,
            old_len=3,
        )
    ]
    assert hunks[0].before == ["def draw():", "    r = 0.3", "    colour = (0.9, 0.1, 0.1)"]
    assert hunks[0].after == ["def draw():", "    r = 0.4", "    colour = (0.9, 0.1, 0.1)"]
    assert apply_hunks(SOURCE, hunks) == SOURCE.replace("r = 0.3", "r = 0.4")


def test_prose_fence_bare_header_and_trailing_prose() -> None:
    completion = (
        "Sure! Here is a small change that makes the disk larger:\n\n"
        "```diff\n"
        "@@\n"
        " def draw():\n"
        "-    r = 0.3\n"
        "+    r = 0.45\n"
        "```\n\n"
        "- This increases the radius.\n"
        "+ It keeps the colour.\n"
    )
    hunks = parse_hunks(completion)
    assert len(hunks) == 1 and hunks[0].old_start is None
    assert apply_hunks(SOURCE, hunks) == SOURCE.replace("r = 0.3", "r = 0.45")


def test_missing_file_headers_and_no_at_signs() -> None:
    completion = (
        "     colour = (0.9, 0.1, 0.1)\n"
        "-    img = np.zeros((16, 16, 3))\n"
        "+    img = np.ones((16, 16, 3))\n"
    )
    assert apply_diff(SOURCE, completion) == SOURCE.replace("np.zeros", "np.ones")


def test_file_headers_without_at_header() -> None:
    completion = (
        "```diff\n--- a/program.py\n+++ b/program.py\n def draw():\n-    r = 0.3\n+    r = 0.2\n```"
    )
    assert apply_diff(SOURCE, completion) == SOURCE.replace("r = 0.3", "r = 0.2")


def test_git_style_preamble() -> None:
    completion = (
        "diff --git a/program.py b/program.py\n"
        "index 3b18e51..a8c4f2d 100644\n"
        "--- a/program.py\n"
        "+++ b/program.py\n"
        "@@ -10 +10 @@ def draw():\n"
        "-    return img\n"
        "+    return 1 - img\n"
    )
    assert apply_diff(SOURCE, completion) == SOURCE.replace("return img", "return 1 - img")


def test_header_with_function_context_and_end_token() -> None:
    completion = (
        " @@ -5,2 +5,2 @@ def draw():\n"
        "-    r = 0.3\n"
        "+    r = 0.35\n"
        "     colour = (0.9, 0.1, 0.1)\n"
        "<|endoftext|>\n+    garbage after the end token\n"
    )
    hunks = parse_hunks(completion)
    assert [h.old_start for h in hunks] == [5]
    assert apply_hunks(SOURCE, hunks) == SOURCE.replace("r = 0.3", "r = 0.35")


def test_empty_line_in_hunk_is_empty_context_and_no_newline_marker_ignored() -> None:
    completion = (
        "@@ -1,5 +1,5 @@\n"
        " import numpy as np\n"
        "\n"  # the model dropped the single space of an empty context line
        "\n"
        " def draw():\n"
        "-    r = 0.3\n"
        "+    r = 0.1\n"
        "\\ No newline at end of file\n"
    )
    (hunk,) = parse_hunks(completion)
    assert hunk.lines[1:3] == ((" ", ""), (" ", ""))
    assert all(not text.startswith(" No newline") for _, text in hunk.lines)
    assert apply_hunks(SOURCE, [hunk]) == SOURCE.replace("r = 0.3", "r = 0.1")


def test_trailing_empty_lines_are_dropped() -> None:
    (hunk,) = parse_hunks("@@\n-    r = 0.3\n+    r = 0.5\n\n\nThat's all.\n")
    assert hunk.lines == (("-", "    r = 0.3"), ("+", "    r = 0.5"))


def test_trailing_whitespace_in_context() -> None:
    completion = "@@\n def draw():   \n-    r = 0.3\t\n+    r = 0.6\n"
    assert apply_diff(SOURCE, completion) == SOURCE.replace("r = 0.3", "r = 0.6")


def test_trailing_whitespace_in_source() -> None:
    source = SOURCE.replace("def draw():\n", "def draw():  \n")
    result = apply_diff(source, "@@\n def draw():\n-    r = 0.3\n+    r = 0.6\n")
    assert result == source.replace("r = 0.3", "r = 0.6")
    assert "def draw():  \n" in result  # context keeps the parent's bytes


def test_tabs_in_hunk_become_the_parents_spaces() -> None:
    completion = (
        "@@\n"
        "-\tfor i in range(16):\n"
        "-\t\timg[i, i] = colour\n"
        "+\tfor i in range(8):\n"
        "+\t\timg[i, 15 - i] = colour\n"
        "+\t\tif i % 2:\n"
        "+\t\t\timg[i, i] = 1.0\n"
        " \treturn img\n"
    )
    result = apply_diff(SOURCE, completion)
    assert result == SOURCE.replace(
        "    for i in range(16):\n        img[i, i] = colour\n",
        "    for i in range(8):\n        img[i, 15 - i] = colour\n        if i % 2:\n"
        "            img[i, i] = 1.0\n",
    )
    compile(result, "program.py", "exec")


def test_spaces_in_hunk_become_the_parents_tabs() -> None:
    source = SOURCE.replace("        ", "\t\t").replace("    ", "\t")
    completion = "@@\n     r = 0.3\n+    if r > 0.2:\n+        r = 0.2\n"
    result = apply_diff(source, completion)
    assert result == source.replace("\tr = 0.3\n", "\tr = 0.3\n\tif r > 0.2:\n\t\tr = 0.2\n")


def test_wrong_indentation_is_shifted() -> None:
    # The model dedented the function body by four spaces.
    completion = "@@\n-r = 0.3\n+r = 0.3\n+if r < 1:\n+    r = r * 2\n colour = (0.9, 0.1, 0.1)\n"
    result = apply_diff(SOURCE, completion)
    assert "    r = 0.3\n    if r < 1:\n        r = r * 2\n    colour" in result
    compile(result, "program.py", "exec")


def test_several_hunks_with_numbers() -> None:
    completion = (
        "--- a/program.py\n+++ b/program.py\n"
        "@@ -1,2 +1,3 @@\n"
        " import numpy as np\n"
        "+import math\n"
        " \n"
        "@@ -8,3 +9,3 @@ def draw():\n"
        "     for i in range(16):\n"
        "-        img[i, i] = colour\n"
        "+        img[i, 15 - i] = colour\n"
        "     return img\n"
    )
    hunks = parse_hunks(completion)
    assert [h.old_start for h in hunks] == [1, 8]
    expected = SOURCE.replace("np\n", "np\nimport math\n", 1).replace(
        "img[i, i] = colour", "img[i, 15 - i] = colour"
    )
    assert apply_hunks(SOURCE, hunks) == expected


def test_several_bare_hunks_apply_in_order() -> None:
    source = "def draw():\n    x = 1\n    y = 2\n    x = 1\n    return x\n"
    completion = "@@\n-    x = 1\n+    x = 10\n@@\n-    x = 1\n+    x = 20\n"
    assert apply_diff(source, completion) == (
        "def draw():\n    x = 10\n    y = 2\n    x = 20\n    return x\n"
    )


def test_hunk_that_does_not_apply_names_it() -> None:
    completion = "@@\n-    r = 0.3\n+    r = 0.4\n@@\n-    size = 99\n+    size = 100\n"
    with pytest.raises(DiffError) as info:
        apply_diff(SOURCE, completion)
    assert info.value.reason.startswith(
        "hunk 2: its context/removed lines were not found in the parent"
    )
    assert "size = 99" in info.value.reason
    assert isinstance(info.value, ValueError)


def test_no_hunks_and_no_op_hunk() -> None:
    with pytest.raises(DiffError, match=r"^no hunks in completion$"):
        apply_diff(SOURCE, "I think the program is fine as it is.")
    with pytest.raises(DiffError, match=r"^hunk 1 changes nothing$"):
        apply_diff(SOURCE, "@@\n def draw():\n-    r = 0.3\n+    r = 0.3\n")
    with pytest.raises(DiffError, match=r"^no hunks in completion$"):
        apply_hunks(SOURCE, [])


def test_ambiguous_match_resolved_by_header_line_number() -> None:
    source = "def draw():\n    a = 0\n    a = 0\n    a = 0\n    return a\n"
    result = apply_diff(source, "@@ -3,1 +3,1 @@\n-    a = 0\n+    a = 7\n")
    assert result == "def draw():\n    a = 0\n    a = 7\n    a = 0\n    return a\n"
    result = apply_diff(source, "@@ -4 +4 @@\n-    a = 0\n+    a = 7\n")
    assert result == "def draw():\n    a = 0\n    a = 0\n    a = 7\n    return a\n"
    # Without numbers the first place wins.
    result = apply_diff(source, "@@\n-    a = 0\n+    a = 7\n")
    assert result == "def draw():\n    a = 7\n    a = 0\n    a = 0\n    return a\n"


def test_header_numbers_follow_earlier_hunks() -> None:
    source = "a = 0\nb = 0\na = 0\nb = 0\n"
    # "-0,0": insert before line 1; "-3": the third line of the parent, now the fifth.
    completion = "@@ -0,0 +1,2 @@\n+x = 1\n+y = 2\n@@ -3 +5 @@\n-a = 0\n+a = 3\n"
    assert apply_diff(source, completion) == "x = 1\ny = 2\na = 0\nb = 0\na = 3\nb = 0\n"


def test_insertion_only_hunks() -> None:
    # With context: inserted after the matched line.
    result = apply_diff(SOURCE, "@@\n     r = 0.3\n+    r = r * 1.5\n")
    assert result == SOURCE.replace("r = 0.3\n", "r = 0.3\n    r = r * 1.5\n")
    # Without context and numbers: appended at the end.
    result = apply_diff(SOURCE, "@@\n+\n+\n+print(draw().shape)\n")
    assert result == SOURCE + "\n\nprint(draw().shape)\n"
    # Without context, at the header's line.
    result = apply_diff(SOURCE, "@@ -0,0 +1 @@\n+from math import pi\n")
    assert result == "from math import pi\n" + SOURCE


def test_deletion_only_hunk() -> None:
    completion = (
        "@@ -8,3 +8,1 @@\n-    for i in range(16):\n-        img[i, i] = colour\n     return img\n"
    )
    assert apply_diff(SOURCE, completion) == SOURCE.replace(
        "    for i in range(16):\n        img[i, i] = colour\n", ""
    )


def test_fuzz_drops_wrong_outer_context() -> None:
    completion = (
        "@@\n"
        " def draw(size=16):\n"  # the model misremembered the signature
        "-    r = 0.3\n"
        "+    r = 0.25\n"
        "     colour = (0.9, 0.1, 0.1)\n"
        "     img = np.empty((16, 16, 3))\n"  # and this line too
    )
    assert apply_diff(SOURCE, completion) == SOURCE.replace("r = 0.3", "r = 0.25")


def test_fuzz_never_drops_removed_lines_or_more_than_two_context_lines() -> None:
    with pytest.raises(DiffError, match="hunk 1"):
        apply_diff(SOURCE, "@@\n def draw():\n-    r = 0.33\n+    r = 0.25\n")
    completion = "@@\n x = 1\n y = 2\n z = 3\n-    r = 0.3\n+    r = 0.25\n"
    with pytest.raises(DiffError, match="hunk 1"):
        apply_diff(SOURCE, completion)


def test_completion_cut_mid_hunk() -> None:
    # max_tokens ran out inside the trailing context line: fuzz drops it.
    completion = "```diff\n@@ -5,3 +5,3 @@\n-    r = 0.3\n+    r = 0.7\n     colour = (0.9, 0."
    assert apply_diff(SOURCE, completion) == SOURCE.replace("r = 0.3", "r = 0.7")
    # Cut inside an added line: what was written is applied as it stands.
    completion = "@@\n-    r = 0.3\n+    r = 0.7\n+    colour = (0.2,"
    assert "    r = 0.7\n    colour = (0.2,\n    colour = (0.9" in apply_diff(SOURCE, completion)


def test_think_section_is_ignored() -> None:
    completion = (
        "<think>\n@@\n-    r = 0.3\n+    r = 0.9\n</think>\n"
        "```diff\n@@\n-    r = 0.3\n+    r = 0.2\n```"
    )
    assert apply_diff(SOURCE, completion) == SOURCE.replace("r = 0.3", "r = 0.2")


def test_bullets_next_to_a_fenced_program_are_not_hunks() -> None:
    completion = (
        "Changes:\n- bigger radius\n+ same colour\n\n"
        "```python\ndef draw():\n    r = 0.5\n    return r\n```\n"
    )
    assert parse_hunks(completion) == []


def test_trailing_newline_convention_is_kept() -> None:
    source = SOURCE.rstrip("\n")
    result = apply_diff(source, "@@\n-    return img\n+    return img * 0.5\n")
    assert result == source.replace("return img", "return img * 0.5")
    assert not result.endswith("\n")
    extra_blank = apply_diff(SOURCE + "\n\n", "@@\n-    return img\n+    return img * 0.5\n")
    assert extra_blank.endswith("img * 0.5\n\n\n")


def test_windows_line_endings_in_completion() -> None:
    completion = "@@\r\n def draw():\r\n-    r = 0.3\r\n+    r = 0.8\r\n"
    assert apply_diff(SOURCE, completion) == SOURCE.replace("r = 0.3", "r = 0.8")


def test_other_lines_stay_byte_identical() -> None:
    source = "x = 1   \n\tdef  weird( ):\n    r = 0.3\n# trailing comment  "
    result = apply_diff(source, "@@\n-    r = 0.3\n+    r = 0.4\n")
    assert result == "x = 1   \n\tdef  weird( ):\n    r = 0.4\n# trailing comment  "


_LINE = st.text(alphabet="ab(): =1\t", max_size=6)


@st.composite
def _source_and_edit(draw: st.DrawFn, unique: bool) -> tuple[str, str]:
    old = draw(st.lists(_LINE, min_size=1, max_size=12))
    start = draw(st.integers(0, len(old)))
    stop = draw(st.integers(start, min(len(old), start + 3)))
    added = draw(st.lists(_LINE, min_size=0 if stop > start else 1, max_size=3))
    if unique:  # one right place for every hunk, even without line numbers
        old = [f"{line}#{i}" for i, line in enumerate(old)]
        added = [f"{line}@{i}" for i, line in enumerate(added)]
    new = old[:start] + added + old[stop:]
    return "\n".join(old) + "\n", "\n".join(new) + "\n"


def _unified(old: str, new: str, context: int) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            "a/program.py",
            "b/program.py",
            n=context,
        )
    )


@settings(max_examples=200, deadline=None)
@given(_source_and_edit(unique=True), st.sampled_from(["full", "no_file_names", "bare_at"]))
def test_difflib_diffs_apply_back(edit: tuple[str, str], form: str) -> None:
    old, new = edit
    diff = _unified(old, new, context=3 if form == "bare_at" else 1)
    if old == new:
        assert diff == ""
        return
    if form != "full":
        diff = re.sub(r"(?m)^(---|\+\+\+) .*\n", "", diff)
    if form == "bare_at":
        diff = re.sub(r"(?m)^@@.*$", "@@", diff)
    assert apply_diff(old, diff) == new


@settings(max_examples=200, deadline=None)
@given(_source_and_edit(unique=False), st.integers(0, 3))
def test_difflib_diffs_with_repeated_lines_apply_back(edit: tuple[str, str], context: int) -> None:
    """Repeated lines make several places fit; the header's line numbers pick the right one."""
    old, new = edit
    if old != new:
        assert apply_diff(old, _unified(old, new, context)) == new
