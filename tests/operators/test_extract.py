"""extract_code on messy completions: a table of real-world shapes of model output."""

from __future__ import annotations

import ast

import pytest

from evolm.operators.extract import END_TOKENS, extract_code

DRAW = "import numpy as np\n\n\ndef draw():\n    return np.zeros((8, 8, 3))\n"
OTHER = "def helper():\n    return 1\n"
FENCE = "```"

# (id, completion, prefix, expected code); the expected code is compared after extraction.
OK_CASES = [
    ("plain fenced", f"{FENCE}python\n{DRAW}{FENCE}\n", "", DRAW),
    (
        "prose before and after",
        f"Sure! Here is the new program:\n\n{FENCE}python\n{DRAW}{FENCE}\n\nIt draws black.",
        "",
        DRAW,
    ),
    ("no language tag", f"{FENCE}\n{DRAW}{FENCE}", "", DRAW),
    ("py tag and info", f"{FENCE}py title=image.py\n{DRAW}{FENCE}", "", DRAW),
    ("tilde fence", f"Here:\n~~~python\n{DRAW}~~~\nDone.", "", DRAW),
    ("longer fence", f"````python\n{DRAW}````", "", DRAW),
    (
        "indented fence in a list",
        "1. The code:\n\n   ```python\n"
        + "".join(f"   {line}\n" if line else "\n" for line in DRAW.split("\n")[:-1])
        + "   ```\n2. Run it.",
        "",
        DRAW,
    ),
    ("unclosed fence (max_tokens)", f"Here you go:\n{FENCE}python\n{DRAW}", "", DRAW),
    (
        "several fences, the one defining draw",
        f"First a helper:\n{FENCE}python\n{OTHER}{FENCE}\nThen:\n{FENCE}python\n{DRAW}{FENCE}\n"
        f"Usage:\n{FENCE}python\nimg = draw()\nprint(img.shape)\n{FENCE}",
        "",
        DRAW,
    ),
    (
        "several fences defining draw, the last wins",
        f"Old:\n{FENCE}python\n{DRAW}{FENCE}\nNew:\n{FENCE}python\n"
        f"{DRAW.replace('zeros', 'ones')}{FENCE}",
        "",
        DRAW.replace("zeros", "ones"),
    ),
    (
        "bash block then python block",
        f"Install:\n{FENCE}bash\npip install numpy\n{FENCE}\n{FENCE}python\n{DRAW}{FENCE}",
        "",
        DRAW,
    ),
    ("raw code, no fence", DRAW, "", DRAW),
    (
        "raw code with prose before and after",
        f"Here is the program.\n\n{DRAW}\nThis returns a black image of the right shape.\n",
        "",
        DRAW,
    ),
    (
        "raw code then a main block",
        f"{DRAW}\nif __name__ == '__main__':\n    print(draw())\n",
        "",
        DRAW,
    ),
    ("raw code then print", f"{DRAW}\nprint(draw().shape)\n", "", DRAW),
    (
        "raw code keeps helpers and constants after draw",
        f"{DRAW}\n\nSCALE = 2\n\n\n{OTHER}\nThat is all.",
        "",
        f"{DRAW}\n\nSCALE = 2\n\n\n{OTHER}",
    ),
    (
        "raw code keeps multi-line literals and comments",
        "import numpy as np\n\n"
        "PALETTE = [\n(1, 0, 0),\n(0, 1, 0),\n]\n\n"
        "def draw():\n    return np.zeros((8, 8, 3))\n"
        "# a note\n"
        "DOC = '''\nmulti-line\ntext at column 0\n'''\n"
        "Explanation: the palette is unused.",
        "",
        "import numpy as np\n\n"
        "PALETTE = [\n(1, 0, 0),\n(0, 1, 0),\n]\n\n"
        "def draw():\n    return np.zeros((8, 8, 3))\n"
        "# a note\n"
        "DOC = '''\nmulti-line\ntext at column 0\n'''\n",
    ),
    (
        "raw code then a stray closing fence",
        f"{DRAW}{FENCE}\n\nThe function returns zeros.",
        "",
        DRAW,
    ),
    (
        "completion continuing a prefix",
        "    img = np.ones((8, 8, 3))\n    return img * 0.5\n",
        "import numpy as np\n\n\ndef draw():\n",
        "import numpy as np\n\n\ndef draw():\n    img = np.ones((8, 8, 3))\n    return img * 0.5\n",
    ),
    (
        "completion continuing a prefix, then junk",
        "    return np.ones((8, 8, 3))\n\n\nprint('done')\nOld version follows\n",
        "import numpy as np\n\n\ndef draw():\n",
        "import numpy as np\n\n\ndef draw():\n    return np.ones((8, 8, 3))\n",
    ),
    (
        "completion continuing a prefix, then a closing fence",
        "    return np.ones((8, 8, 3))\n```\nExplanation below.",
        "import numpy as np\n\n\ndef draw():\n",
        "import numpy as np\n\n\ndef draw():\n    return np.ones((8, 8, 3))\n",
    ),
    *[
        (f"end token {tok}", f"{FENCE}python\n{DRAW}{FENCE}{tok}garbage after", "", DRAW)
        for tok in END_TOKENS
    ],
    ("end token inside unclosed fence", f"{FENCE}python\n{DRAW}<|endoftext|>\n```", "", DRAW),
    (
        "end token ends raw completion",
        "    return np.ones((8, 8, 3))\n</s>\n# next file\nx = (",
        "import numpy as np\n\n\ndef draw():\n",
        "import numpy as np\n\n\ndef draw():\n    return np.ones((8, 8, 3))\n",
    ),
    (
        "reasoning section removed",
        f"<think>Maybe\n{FENCE}python\ndef draw():\n    return 0\n{FENCE}\nno.</think>\n"
        f"{FENCE}python\n{DRAW}{FENCE}",
        "",
        DRAW,
    ),
    ("windows line endings", f"{FENCE}python\r\n{DRAW}{FENCE}\r\n".replace("\n", "\r\n"), "", DRAW),
    (
        "truncated mid-expression in unclosed fence",
        f"{FENCE}python\n{DRAW}\n\ndef helper():\n    x = np.array([1, 2,\n        3, 4",
        "",
        DRAW,
    ),
    (
        "truncated mid-name still parses",
        "import numpy as np\n\ndef draw():\n    img = np.zeros((8, 8, 3))\n    img[2:4] = np.cl",
        "",
        "import numpy as np\n\ndef draw():\n    img = np.zeros((8, 8, 3))\n    img[2:4] = np.cl\n",
    ),
    (
        "truncated mid-call inside draw",
        "import numpy as np\n\ndef draw():\n    img = np.zeros((8, 8, 3))\n    img = np.clip(img,",
        "",
        "import numpy as np\n\ndef draw():\n    img = np.zeros((8, 8, 3))\n",
    ),
    (
        "truncated in a triple-quoted string",
        f'{DRAW}\n\ndef helper():\n    """Explains\n    the thing',
        "",
        DRAW,
    ),
    ("async draw", "async def draw():\n    return 1\n", "", "async def draw():\n    return 1\n"),
    (
        "decorated draw",
        "import functools\n\n@functools.cache\ndef draw():\n    return 1\n\nDone!",
        "",
        "import functools\n\n@functools.cache\ndef draw():\n    return 1\n",
    ),
]


@pytest.mark.parametrize(
    ("text", "prefix", "expected"), [c[1:] for c in OK_CASES], ids=[c[0] for c in OK_CASES]
)
def test_extracts(text: str, prefix: str, expected: str) -> None:
    result = extract_code(text, "draw", prefix=prefix)
    assert result.ok, result.error
    assert result.code == expected
    ast.parse(result.code)


ERROR_CASES = [
    ("empty", "", "empty completion"),
    ("whitespace", " \n\n\t\n", "empty completion"),
    ("only an end token", "<|endoftext|>def draw(): pass", "empty completion"),
    ("prose only", "I cannot help with that request.", "no function draw() in completion"),
    ("garbage", "@@@ ### $$$ \x00\x01 ((((", "no function draw() in completion"),
    (
        "code without draw",
        f"{FENCE}python\nimport numpy as np\n\ndef paint():\n    return 0\n{FENCE}",
        "no function draw() in completion",
    ),
    (
        "unfenced code without draw",
        "import numpy as np\nx = 3\n",
        "no function draw() in completion",
    ),
    (
        "draw only nested",
        f"{FENCE}python\nclass Painter:\n    def draw(self):\n        return 0\n{FENCE}",
        "no function draw() in completion at top level",
    ),
    (
        "draw with a broken body",
        f"{FENCE}python\ndef draw():\nreturn 0\n{FENCE}",
        "completion does not parse: SyntaxError at line 2: expected an indented block",
    ),
    (
        "draw broken early, truncation cannot help",
        f"{FENCE}python\ndef draw(:\n    return 0\n{FENCE}",
        "completion does not parse: SyntaxError at line 1:",
    ),
    (
        "truncated right after the def line",
        f"{FENCE}python\nimport numpy as np\n\ndef draw():\n    img = np.zeros((8,",
        "completion does not parse: SyntaxError at line 4",
    ),
    ("other function name only", "def draw_more():\n    return 0\n", "no function draw()"),
]


@pytest.mark.parametrize(
    ("text", "error"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors(text: str, error: str) -> None:
    result = extract_code(text, "draw")
    assert not result.ok
    assert result.code == ""
    assert result.error is not None and result.error.startswith(error), result.error


def test_function_name_is_respected() -> None:
    text = f"{FENCE}python\n{DRAW}{FENCE}\n{FENCE}python\ndef make_walker():\n    return 1\n{FENCE}"
    assert extract_code(text, "make_walker").code == "def make_walker():\n    return 1\n"
    assert extract_code(text, "draw").code == DRAW


def test_function_name_with_regex_characters_is_literal() -> None:
    assert not extract_code("def drawX():\n    return 1\n", "draw.").ok


def test_fenced_block_wins_over_prefix() -> None:
    result = extract_code(f"{FENCE}python\n{DRAW}{FENCE}", "draw", prefix="def draw():\n")
    assert result.code == DRAW


def test_prefix_only_is_empty_completion() -> None:
    assert extract_code("", "draw", prefix="def draw():\n").error == "empty completion"


def test_long_truncated_completion_is_fast() -> None:
    body = "".join(f"    x{i} = np.zeros((8, 8, 3)) + {i}\n" for i in range(3000))
    text = f"{FENCE}python\nimport numpy as np\n\ndef draw():\n{body}    return np.clip(x0,"
    result = extract_code(text, "draw")
    assert result.ok
    assert result.code.endswith("x2999 = np.zeros((8, 8, 3)) + 2999\n")


def test_never_executes_code() -> None:
    text = f"{FENCE}python\nraise SystemExit('ran')\ndef draw():\n    return 0\n{FENCE}"
    assert extract_code(text, "draw").ok
