"""The ``evolm`` command line: run, resume, status, export, report, compare, prompt-test,
models.

This module builds the typer ``app`` and registers the commands, in the order ``evolm --help``
lists them; they live by concept in :mod:`evolm.cli.running` (run, resume),
:mod:`evolm.cli.reading` (status, export, show), :mod:`evolm.cli.report` (report),
:mod:`evolm.cli.compare` (compare) and
:mod:`evolm.cli.tools` (prompt-test, models, doctor, judge-audit, finetune), and share
:mod:`evolm.cli.common` (the stderr ``console``, :func:`_fail`, :func:`_guarded`, the budget
and sandbox options).
"""

from __future__ import annotations

import os
import sys

import typer

from evolm.cli.common import AllowWeak as AllowWeak
from evolm.cli.common import BudgetCalls as BudgetCalls
from evolm.cli.common import BudgetCost as BudgetCost
from evolm.cli.common import BudgetEvals as BudgetEvals
from evolm.cli.common import BudgetTime as BudgetTime
from evolm.cli.common import BudgetTokens as BudgetTokens
from evolm.cli.common import SandboxTier as SandboxTier
from evolm.cli.common import Target as Target
from evolm.cli.common import _budget_overrides as _budget_overrides
from evolm.cli.common import _exit_message as _exit_message
from evolm.cli.common import _fail as _fail
from evolm.cli.common import _guarded as _guarded
from evolm.cli.common import _kinds as _kinds
from evolm.cli.common import _load_domain as _load_domain
from evolm.cli.common import _sandbox_overrides as _sandbox_overrides
from evolm.cli.common import console, parse_llm_spec
from evolm.cli.compare import compare
from evolm.cli.reading import export, show, status
from evolm.cli.report import report
from evolm.cli.running import resume, run
from evolm.cli.stages import distill, rl
from evolm.cli.tools import doctor, finetune, judge_audit, models, prompt_test

__all__ = [
    "app",
    "compare",
    "console",
    "doctor",
    "export",
    "finetune",
    "judge_audit",
    "models",
    "parse_llm_spec",
    "prompt_test",
    "report",
    "resume",
    "run",
    "show",
    "status",
]

app = typer.Typer(
    help="Evolution through Large Models: LLM-driven quality-diversity search over programs.",
    no_args_is_help=True,
    add_completion=False,
)

app.command()(run)
app.command()(resume)
app.command()(status)
app.command()(export)
app.command()(report)
app.command()(compare)
app.command("prompt-test")(prompt_test)
app.command()(models)
app.command()(doctor)
app.command("judge-audit")(judge_audit)
app.command()(show)
app.command()(finetune)
for _stage in (distill, rl):  # ELM Stages 2 and 3
    app.command()(_stage)


@app.callback()
def _setup() -> None:
    # Like `python -m`, make modules in the working directory importable, so a user's own
    # domain can be named as `my_module:MyDomain`.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
