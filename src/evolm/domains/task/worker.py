"""The worker side of the ``task`` domain: loading the user's evaluator, calling it on the
program, telling the program's failures from the evaluator's, and checking the metrics.

These functions run untrusted code (the program, through the evaluator): call them only inside
an evaluation worker (or in tests). Failures are values:

- the program's own failure (an exception raised in the program file's frames, a syntax error
  in it, ``exit()`` from it) is ``error`` (``invalid`` for a syntax error) with
  ``extras["failure"] = "program"``;
- the evaluator's failure (it does not load, raises with no program frame in the traceback,
  returns something not a dict, lacks the fitness metric, or its ``integrity_check`` raises) is
  ``error`` with ``extras["failure"] = "evaluator"`` and an error text starting
  ``"evaluator error:"``;
- metrics holding a non-empty string ``"error"`` (the OpenEvolve convention: the evaluator
  says why the program's output breaks the rules) is ``invalid`` with that text as the error
  and ``extras["failure"] = "program"``, whatever the other metrics hold;
- a non-finite or non-numeric fitness or descriptor, a fitness outside ``fitness_bounds`` or a
  failed ``integrity_check`` is ``rejected``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
import os
import shutil
import sys
import tempfile
import traceback
from types import ModuleType
from typing import TYPE_CHECKING, Any

from evolm.domains.program import MAX_ERROR_CHARS
from evolm.domains.task import blocks as _blocks
from evolm.types import Evaluation, Status

if TYPE_CHECKING:
    from evolm.domains.task import TaskDomain

__all__ = ["default_descriptors", "evaluate_task", "run_task", "score_task"]

EVALUATOR_ERROR = "evaluator error: "
_MAX_METRICS = 32
_BRANCHES = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.comprehension, ast.IfExp)


def default_descriptors() -> tuple[tuple[str, ...], tuple[tuple[float, float], ...]]:
    """Names and bounds of the descriptors of a task that declares none: the length in
    characters of the EVOLVE blocks' code, and the number of branching constructs in it
    (``if``, loops, ``try``, ``with``, comprehensions; 0 for a program that is not Python)."""
    return ("code_length", "branches"), ((0.0, 4000.0), (0.0, 30.0))


def _features(code: str) -> list[float]:
    body = "".join(_blocks.blocks(code))
    try:
        tree = ast.parse(body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        branches = 0
    else:
        branches = sum(isinstance(n, _BRANCHES) for n in ast.walk(tree))
    return [float(len(body)), float(branches)]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable message>"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def evaluator_failure(dom: TaskDomain, text: str) -> Evaluation:
    """An ``error`` evaluation blaming the evaluator."""
    return Evaluation.failure(
        Status.ERROR,
        _cut(f"{EVALUATOR_ERROR}{os.path.basename(dom.evaluator_name)}: {text}"),
        extras={"failure": "evaluator"},
    )


def _program_line(exc: BaseException, program_path: str) -> int | None:
    """The innermost line of ``program_path`` in ``exc``'s traceback or those it chains."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, SyntaxError) and e.filename == program_path:
            return e.lineno or 0
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == program_path]
        if frames:
            return frames[-1].lineno or 0
        todo += [e.__cause__, e.__context__]
    return None


def _classify(dom: TaskDomain, exc: BaseException, program_path: str, what: str) -> Evaluation:
    """A failure for ``exc`` raised by the evaluator's ``what``: the program's when a program
    frame is in it, else the evaluator's."""
    line = _program_line(exc, program_path)
    if line is None:
        return evaluator_failure(dom, f"{what} raised {_describe(exc)}")
    status = Status.INVALID if isinstance(exc, SyntaxError) else Status.ERROR
    text = "program called exit()" if isinstance(exc, SystemExit) else _describe(exc)
    return Evaluation.failure(status, _cut(f"{text} (line {line})"), extras={"failure": "program"})


def _load_evaluator(dom: TaskDomain, workdir: str | None) -> ModuleType:
    """The evaluator as a fresh module: from a file in ``workdir``, or from its text."""
    name = f"evolm_task_evaluator_{os.getpid()}_{id(dom)}"
    if workdir is not None:
        path = os.path.join(workdir, os.path.basename(dom.evaluator_name))
        with open(path, "w", encoding="utf-8") as f:
            f.write(dom.evaluator_text)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(name, None)
        return module
    module = ModuleType(name)
    module.__file__ = dom.evaluator_name
    exec(compile(dom.evaluator_text, dom.evaluator_name, "exec"), module.__dict__)
    return module


def _call(fn: Any, first: Any, seed: int, with_seed: bool) -> Any:
    return fn(first, seed=seed) if with_seed else fn(first)


def _takes_seed(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _number(value: Any) -> float | str:
    """``value`` as a finite float, or why it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.integer | np.floating) and not isinstance(value, np.bool_):
                value = float(value)
            else:
                return f"is a {type(value).__name__}, not a number"
        except ImportError:  # pragma: no cover - numpy is a dependency
            return f"is a {type(value).__name__}, not a number"
    x = float(value)
    return x if math.isfinite(x) else f"is {x}, not a finite number"


MAX_METRIC_NUMBERS = 1024
"""The most numbers list-valued metrics may hold, all together, to be stored as lists (see
:func:`_plain`): about 20 KB of JSON, well inside the store's 64 KiB of extras per evaluation,
so a long list never makes the store drop the scalar metrics with it."""


def _numbers(value: Any, depth: int = 0) -> list[Any] | None:
    """``value`` (a list, tuple or numpy array nested at most 3 deep, of finite real numbers)
    as nested lists of floats, or None when it is anything else or holds more than
    :data:`MAX_METRIC_NUMBERS` numbers."""
    if hasattr(value, "tolist") and callable(value.tolist) and depth == 0:
        try:
            value = value.tolist()
        except Exception:
            return None
    if depth > 3 or not isinstance(value, list | tuple):
        return None
    out: list[Any] = []
    count = 0
    for v in value:
        if isinstance(v, list | tuple):
            inner = _numbers(v, depth + 1)
            if inner is None:
                return None
            count += _count(inner)
            out.append(inner)
        elif not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v):
            count += 1
            out.append(float(v))
        else:
            return None
        if count > MAX_METRIC_NUMBERS:
            return None
    return out


def _count(values: list[Any]) -> int:
    return sum(_count(v) if isinstance(v, list) else 1 for v in values)


def _plain(value: Any, budget: list[int] | None = None) -> Any:
    """A metric as stored: numbers, bools, None and strings (cut to 200 characters) as they
    are; lists of finite numbers (nested up to 3 deep) as lists of floats while ``budget[0]``
    (default :data:`MAX_METRIC_NUMBERS`) numbers remain, which it is charged, so an evaluator
    can keep what a view draws (a packing's ``centers`` and ``radii``); anything else as its
    repr cut to 200 characters."""
    if isinstance(value, bool | int | str) or value is None:
        return value if not isinstance(value, str) else value[:200]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    numbers = _numbers(value)
    if numbers is not None:
        left = budget if budget is not None else [MAX_METRIC_NUMBERS]
        n = _count(numbers)
        if n <= left[0]:
            left[0] -= n
            return numbers
    return _cut(repr(value))[:200]


def check_metrics(dom: TaskDomain, metrics: Any, features: list[float]) -> Evaluation:
    """The evaluation of the evaluator's ``metrics`` (see the module docstring)."""
    if not isinstance(metrics, dict) or not all(isinstance(k, str) for k in metrics):
        return evaluator_failure(
            dom, f"it returned a {type(metrics).__name__}, not a dict of metrics with str keys"
        )
    spec = dom.spec
    shown = dict(list(metrics.items())[:_MAX_METRICS])
    budget = [MAX_METRIC_NUMBERS]  # numbers kept in lists, over all the metrics
    extras: dict[str, Any] = {"metrics": {k: _plain(v, budget) for k, v in shown.items()}}
    reason = metrics.get("error")
    if isinstance(reason, str) and reason.strip():
        # The OpenEvolve convention: the evaluator rejects the program's output, saying why.
        return Evaluation.failure(
            Status.INVALID, _cut(reason.strip()), extras={"failure": "program", **extras}
        )
    fitness_key = spec.fitness or (
        "combined_score" if "fitness" not in metrics and "combined_score" in metrics else "fitness"
    )
    if fitness_key not in metrics:
        return evaluator_failure(
            dom,
            f"it returned no metric {fitness_key!r} (the fitness) among {sorted(metrics)[:10]}; "
            'return it, or name the fitness metric with fitness = "..." in task.toml',
        )
    fitness = _number(metrics[fitness_key])
    if isinstance(fitness, str):
        return Evaluation.failure(
            Status.REJECTED, f"fitness metric {fitness_key!r} {fitness}", extras=extras
        )
    if spec.fitness_bounds is not None:
        lo, hi = spec.fitness_bounds
        if not lo <= fitness <= hi:
            return Evaluation.failure(
                Status.REJECTED,
                f"fitness metric {fitness_key!r} = {fitness:g} is outside fitness_bounds "
                f"[{lo:g}, {hi:g}]",
                extras=extras,
            )
    descriptors: list[float] = []
    for d in spec.descriptors:
        if d.name not in metrics:
            return evaluator_failure(
                dom, f"it returned no metric {d.name!r}, which task.toml declares a descriptor"
            )
        value = _number(metrics[d.name])
        if isinstance(value, str):
            return Evaluation.failure(
                Status.REJECTED, f"descriptor metric {d.name!r} {value}", extras=extras
            )
        descriptors.append(value)
    return Evaluation(
        Status.OK, fitness, tuple(descriptors if spec.descriptors else features), extras
    )


def _integrity(
    dom: TaskDomain, module: ModuleType, ev: Evaluation, metrics: Any, evidence: Any
) -> Evaluation:
    check = getattr(module, "integrity_check", None)
    if not ev.ok or check is None:
        return ev
    try:
        verdict = check(metrics, evidence)
    except BaseException as exc:
        return evaluator_failure(dom, f"integrity_check raised {_describe(exc)}")
    if verdict is True or verdict is None:
        return ev
    reason = verdict if isinstance(verdict, str) and verdict else "integrity_check returned False"
    return Evaluation.failure(
        Status.REJECTED, _cut(f"integrity check failed: {reason}"), extras=ev.extras
    )


def _in_workdir(dom: TaskDomain, code: str, body: Any) -> Any:
    """Write the program into a fresh temporary directory (inside the sandbox's scratch
    directory) and call ``body(workdir, program_path)``; the directory is removed after."""
    workdir = tempfile.mkdtemp(prefix="evolm-task-")
    try:
        program_path = os.path.join(workdir, dom.program_name)
        with open(program_path, "w", encoding="utf-8") as f:
            f.write(code)
        return body(workdir, program_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def evaluate_task(dom: TaskDomain, code: str, seed: int) -> Evaluation:
    """``evaluate`` form: the evaluator's ``evaluate(program_path[, seed])`` and its checks."""
    features = _features(code)

    def body(workdir: str, program_path: str) -> Evaluation:
        try:
            module = _load_evaluator(dom, workdir)
        except BaseException as exc:
            return evaluator_failure(dom, f"it failed to import: {_describe(exc)}")
        fn = getattr(module, "evaluate", None)
        if not callable(fn):
            return evaluator_failure(dom, "it defines no function evaluate(program_path)")
        try:
            metrics = _call(fn, program_path, seed, _takes_seed(fn))
        except MemoryError:
            raise
        except BaseException as exc:
            return _classify(dom, exc, program_path, "evaluate()")
        ev = check_metrics(dom, metrics, features)
        return _integrity(dom, module, ev, metrics, program_path)

    result: Evaluation = _in_workdir(dom, code, body)
    return result


def run_task(dom: TaskDomain, code: str, seed: int) -> Any:
    """Two-phase form, in the program's child: ``{"data": run(program_path[, seed]),
    "features": [...]}`` or a failed evaluation."""
    from evolm.sandbox import codec

    features = _features(code)  # before the program runs, so it cannot change them

    def body(workdir: str, program_path: str) -> Any:
        try:
            module = _load_evaluator(dom, workdir)
        except BaseException as exc:
            return evaluator_failure(dom, f"it failed to import: {_describe(exc)}")
        fn = getattr(module, "run", None)
        if not callable(fn):
            return evaluator_failure(dom, "it defines no function run(program_path)")
        try:
            data = _call(fn, program_path, seed, _takes_seed(fn))
        except MemoryError:
            raise
        except BaseException as exc:
            return _classify(dom, exc, program_path, "run()")
        try:
            codec.encode_value(data)
        except (TypeError, ValueError) as exc:
            return evaluator_failure(
                dom,
                f"run() returned data that is not plain (numbers, strings, lists, dicts): {exc}",
            )
        return {"data": data, "features": features}

    return _in_workdir(dom, code, body)


def score_task(dom: TaskDomain, out: Any, seed: int) -> Evaluation:
    """Two-phase form, in the scoring process: the evaluator's ``score(data[, seed])``, its
    checks and ``integrity_check(metrics, data)``."""
    if (
        not isinstance(out, dict)
        or set(out) != {"data", "features"}
        or not isinstance(out["features"], list)
        or len(out["features"]) != 2
        or not all(isinstance(x, float) and math.isfinite(x) for x in out["features"])
    ):
        return Evaluation.failure(Status.INVALID, "the program's child sent malformed data")
    try:
        module = _load_evaluator(dom, None)
    except BaseException as exc:
        return evaluator_failure(dom, f"it failed to import: {_describe(exc)}")
    fn = getattr(module, "score", None)
    if not callable(fn):
        return evaluator_failure(dom, "it defines no function score(data)")
    try:
        metrics = _call(fn, out["data"], seed, _takes_seed(fn))
    except BaseException as exc:
        return evaluator_failure(dom, f"score() raised {_describe(exc)}")
    ev = check_metrics(dom, metrics, list(out["features"]))
    return _integrity(dom, module, ev, metrics, out["data"])
