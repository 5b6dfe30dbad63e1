"""The ``task`` domain: your own program and evaluator (the OpenEvolve / ShinkaEvolve form).

A task is a directory holding the program to evolve (``initial.py``; the regions to evolve lie
between ``EVOLVE-BLOCK-START`` and ``EVOLVE-BLOCK-END`` comment lines), an evaluator
(``evaluator.py``) and an optional ``task.toml`` (:mod:`evolm.domains.task.spec`). The evaluator
defines either ``evaluate(program_path[, seed]) -> dict`` of metrics (it imports or runs the
program itself, in the program's sandboxed child), or the two-phase pair ``run(program_path[,
seed]) -> data`` (in the program's child) and ``score(data[, seed]) -> dict`` (in the sandbox's
scoring process, never with the program), and optionally ``integrity_check(metrics, evidence)``.
docs/domains.md ("Your own program and evaluator") is the user's guide.

Workers cannot read the user's files: the domain built in the engine reads them and hands their
texts to the workers (:meth:`TaskDomain.worker_params`); the evaluator's code is never run in the
engine's process (its functions are found by parsing it).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from evolm.domains.base import Domain, DomainContext
from evolm.domains.task import blocks as _blocks
from evolm.domains.task.example import EXAMPLE_EVALUATOR, EXAMPLE_PROGRAM, EXAMPLE_TOML
from evolm.domains.task.spec import TaskSpec, parse_task_toml
from evolm.domains.task.worker import default_descriptors, evaluate_task, run_task, score_task
from evolm.types import DescriptorSpace, Evaluation

__all__ = ["SeparateTaskDomain", "TaskDomain", "evaluator_functions", "task_domain"]

_PARAMS = "path, or program and evaluator (and optionally task_toml)"
_LANGUAGES = {".py": "python", ".c": "c", ".cpp": "cpp", ".js": "javascript", ".rs": "rust"}


def evaluator_functions(text: str, name: str = "evaluator.py") -> dict[str, bool]:
    """The evaluator's top-level functions (of ``evaluate``, ``run``, ``score`` and
    ``integrity_check``) found by parsing ``text``, each mapped to whether it takes ``seed``.

    Raises:
        ValueError: the evaluator is not valid Python, or defines neither ``evaluate`` nor
            both ``run`` and ``score``.
    """
    try:
        tree = ast.parse(text, name)
    except SyntaxError as exc:
        raise ValueError(
            f"the evaluator {name} is not valid Python: {exc.msg} (line {exc.lineno}); fix it "
            "and run again"
        ) from None
    found: dict[str, bool] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in (
            "evaluate", "run", "score", "integrity_check",
        ):  # fmt: skip
            args = node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
            found[node.name] = "seed" in names or args.kwarg is not None
    if "evaluate" not in found and not ("run" in found and "score" in found):
        raise ValueError(
            f"the evaluator {name} defines neither evaluate(program_path) nor the pair "
            "run(program_path) and score(data); define one of them at the top level"
        )
    return found


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"the task's {what} {path} does not exist; {_fix(what)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the task's {what} {path}: {exc}") from None


def _fix(what: str) -> str:
    if what == "task directory":
        return "give a directory holding initial.py and evaluator.py"
    return f"create it or name another {what} file in task.toml"


def _load(
    path: str | None, program: str | None, evaluator: str | None, task_toml: str | None
) -> dict[str, Any]:
    """Read a task's files (engine side) into the workers' parameters."""
    if path is None and (program is None or evaluator is None):
        if program is not None or evaluator is not None or task_toml is not None:
            raise ValueError(f"the task domain needs {_PARAMS}; got only part of them")
        return {
            "program_text": EXAMPLE_PROGRAM,
            "evaluator_text": EXAMPLE_EVALUATOR,
            "task": parse_task_toml(EXAMPLE_TOML, "the example task").to_plain(),
            "program_name": "initial.py",
            "evaluator_name": "evaluator.py",
        }
    base = Path(path).expanduser().resolve() if path is not None else None
    if base is not None and not base.is_dir():
        raise ValueError(f"the task directory {base} does not exist; {_fix('task directory')}")
    toml_path = Path(task_toml).expanduser().resolve() if task_toml else None
    if toml_path is None and base is not None and (base / "task.toml").exists():
        toml_path = base / "task.toml"
    spec = TaskSpec()
    if toml_path is not None:
        spec = parse_task_toml(_read(toml_path, "settings file"), str(toml_path))
    root = base or Path.cwd()
    prog = Path(program).expanduser().resolve() if program else root / spec.program
    ev = Path(evaluator).expanduser().resolve() if evaluator else root / spec.evaluator
    return {
        "program_text": _read(prog, "program"),
        "evaluator_text": _read(ev, "evaluator"),
        "task": spec.to_plain(),
        "program_name": prog.name,
        "evaluator_name": str(ev),
    }


class TaskDomain(Domain):
    """A user's program and evaluator (see the module docstring); ``evaluate`` form.

    Args:
        path: the task directory (``initial.py``, ``evaluator.py``, optional ``task.toml``).
        program, evaluator, task_toml: the files named one by one instead (task_toml
            optional). With no arguments at all, a small built-in example task.
        program_text, evaluator_text, task, program_name, evaluator_name: what a sandbox
            worker is built from (:meth:`worker_params`); not for users.

    Attributes:
        spec: the task's settings. ``reevaluate_best``, ``reproduce_tolerance`` and
            ``reevaluate_fresh_seeds`` come from its ``[integrity]`` table.
    """

    name = "task"
    scoring: ClassVar[Literal["separate", "in_process"]] = "in_process"
    needs_scratch: ClassVar[bool] = True

    def __init__(
        self,
        path: str | None = None,
        program: str | None = None,
        evaluator: str | None = None,
        task_toml: str | None = None,
        *,
        program_text: str | None = None,
        evaluator_text: str | None = None,
        task: dict[str, Any] | None = None,
        program_name: str = "initial.py",
        evaluator_name: str = "evaluator.py",
    ) -> None:
        if program_text is None or evaluator_text is None:
            loaded = _load(path, program, evaluator, task_toml)
        else:
            loaded = {
                "program_text": program_text,
                "evaluator_text": evaluator_text,
                "task": task or TaskSpec().to_plain(),
                "program_name": program_name,
                "evaluator_name": evaluator_name,
            }
        self._params = loaded
        self.program_text: str = loaded["program_text"]
        self.evaluator_text: str = loaded["evaluator_text"]
        self.program_name: str = os.path.basename(loaded["program_name"]) or "initial.py"
        self.evaluator_name: str = loaded["evaluator_name"]
        self.spec = TaskSpec.from_plain(loaded["task"])
        self.functions = evaluator_functions(self.evaluator_text, self.evaluator_name)
        try:
            _blocks.split_blocks(self.program_text)
        except ValueError as exc:
            raise ValueError(
                f"the task's program {self.program_name} needs EVOLVE blocks: {exc}. Mark the "
                "code to evolve with a comment line holding EVOLVE-BLOCK-START before it and one "
                "holding EVOLVE-BLOCK-END after it"
            ) from None
        self.task_name = self.spec.name
        self.eval_timeout = self.spec.timeout
        self.memory_mb = self.spec.memory_mb
        self.reevaluate_best = self.spec.reevaluate
        self.reproduce_tolerance = self.spec.tolerance
        self.reevaluate_fresh_seeds = self.spec.fresh_seeds and self._takes_seed()
        if self.spec.fitness_bounds is not None:
            self.qd_offset = self.spec.fitness_bounds[0]

    def _takes_seed(self) -> bool:
        return self.functions.get("evaluate", False)

    def worker_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The files' texts and the parsed settings, which a worker can build this from."""
        return dict(self._params)

    @property
    def descriptor_space(self) -> DescriptorSpace:
        if self.spec.descriptors:
            return DescriptorSpace(
                tuple(d.name for d in self.spec.descriptors),
                tuple((d.low, d.high) for d in self.spec.descriptors),
            )
        names, bounds = default_descriptors()
        return DescriptorSpace(names, bounds)

    def seeds(self) -> list[str]:
        return [self.program_text]

    @property
    def language(self) -> str:
        """The program's language, from its file name's extension (``python`` without one)."""
        ext = os.path.splitext(self.program_name)[1]
        return _LANGUAGES.get(ext, ext.lstrip(".") or "python")

    def context(self) -> DomainContext:
        function = _function_name(self.program_text)
        edit = (
            "Change only the code between the EVOLVE-BLOCK-START and EVOLVE-BLOCK-END comment "
            "lines; keep those lines and everything outside them exactly as they are."
        )
        if self.language == "python":
            edit = (
                "Change only the code between the EVOLVE-BLOCK-START and EVOLVE-BLOCK-END "
                "comment lines; the code outside them is fixed and is kept as it is. You may "
                f"answer with only the new versions of the block's definitions (such as "
                f"{function}()) and any new helper functions and imports they need."
            )
        about = self.spec.description.strip() or f"Improve the program {self.program_name}."
        return DomainContext(
            description=f"{about} {edit}",
            function_name=function,
            language=self.language,
            file_name=self.program_name,
        )

    def prepare(self, code: str) -> str:
        """The task's program with the candidate's EVOLVE blocks spliced in; raises
        ``ValueError`` (an ``invalid`` candidate) when the markers are missing or wrong. A
        Python candidate without markers is read as new definitions for the blocks
        (:func:`~evolm.domains.task.blocks.splice_definitions`)."""
        return _blocks.splice(self.program_text, code, lenient=self.language == "python")

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        """Run the evaluator's ``evaluate`` on ``code`` (in the sandbox's program child)."""
        return evaluate_task(self, code, seed)


class SeparateTaskDomain(TaskDomain):
    """A task whose evaluator defines ``run`` and ``score``: ``run`` in the program's child,
    ``score`` (and ``integrity_check``) in the sandbox's scoring process."""

    scoring: ClassVar[Literal["separate", "in_process"]] = "separate"

    def _takes_seed(self) -> bool:
        return self.functions.get("run", False) or self.functions.get("score", False)

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        """Run and score in this process (tests; the sandbox splits them)."""
        return Domain.evaluate(self, code, seed)

    def run(self, code: str, seed: int = 0) -> Any:
        """The evaluator's ``run`` on ``code``: its data and the code's descriptor features."""
        return run_task(self, code, seed)

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """The evaluator's ``score`` of what :meth:`run` returned."""
        return score_task(self, data, seed)


def _function_name(program: str) -> str:
    """The first function defined in the program's EVOLVE blocks (else in the program)."""
    for text in (*_blocks.blocks(program), program):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node.name
    return "main"


def task_domain(**params: Any) -> TaskDomain:
    """Build the task domain (the ``task`` entry of ``DOMAINS``): :class:`SeparateTaskDomain`
    when the evaluator defines ``run`` and ``score``, else :class:`TaskDomain`."""
    dom = TaskDomain(**params)
    if "run" in dom.functions and "score" in dom.functions:
        return SeparateTaskDomain(**dom.worker_params())
    return dom
