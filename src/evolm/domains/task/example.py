"""The built-in example task (the ``task`` domain with no parameters): a number to tune."""

from __future__ import annotations

EXAMPLE_PROGRAM = '''"""Pick a point x in [0, 10] where a bumpy function is high."""

import math


# EVOLVE-BLOCK-START
def solve():
    """Return x in [0, 10]."""
    return 1.0
# EVOLVE-BLOCK-END


if __name__ == "__main__":
    print(solve(), math.pi)
'''

EXAMPLE_EVALUATOR = """import importlib.util
import math


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = module.solve()
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= x <= 10.0:
        return {"fitness": -10.0, "x": -1.0}
    return {"fitness": math.sin(3.0 * x) - 0.05 * (x - 7.0) ** 2, "x": float(x)}
"""

EXAMPLE_TOML = """name = "bumpy"
description = "solve() returns x in [0, 10]; the score is sin(3x) - 0.05 (x - 7)^2."
timeout = 10.0
fitness_bounds = [-10.0, 1.0]
"""
