"""Language-model crossover (LMX, Meyerson et al. 2023): k parents as few-shot examples.

A language model shown several examples of a kind of thing and asked for one more writes
something that mixes their traits: that is a crossover operator for free. :class:`LMXCrossover`
shows ``k`` parents (1 to 5) with their scores, worst first and best last, and asks for one
more program.

* ``"chat"`` mode: the task, then ``Program 1`` .. ``Program k`` each in its own fenced block
  with its score, then a request for a new program that combines their best ideas.
* ``"completion"`` mode: a Python file with the API text and the task as comments, then
  ``# Version i of draw() (score ...)`` and each parent's code, then
  ``# New version of draw(), combining ideas from the versions above`` and the new program's head
  (the parents' imports and the best parent's ``def`` line); the model writes the body.

How the parents are chosen (``selection``):

* ``"near"`` (the default): a focal elite uniformly, then ``k - 1`` other elites without
  replacement with weight ``1 / (1 + d**3)``, where ``d`` is the distance between their cells
  and the focal cell in cell units (:meth:`~evolm.archives.base.Archive.cell_position`). Parents
  are then similar in behaviour, which keeps the offspring near a niche of the map.
* ``"uniform"``: ``k`` distinct elites uniformly.
* ``"fitness"``: ``k`` distinct elites with probability proportional to
  ``max(fitness - qd_offset, 1e-9)``.
* ``"archive"``: the run's own selection strategy (``archive.selection``), with replacement.

With fewer than ``k`` elites every elite is used and the rest are drawn again (with
replacement), so the prompt always holds ``k`` examples. During the engine's initial phase the
parents are drawn from the seed programs instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evolm.archives.base import Archive, EmptyArchiveError
from evolm.archives.selection import fitness_weight
from evolm.domains.base import DomainContext
from evolm.operators.base import Proposal
from evolm.operators.prompt import _head, _imports, _marker, _RewriteOperator, _score_note
from evolm.operators.textmatch import fenced
from evolm.types import Individual

__all__ = ["LMX_SELECTIONS", "LMXCrossover"]

LMX_SELECTIONS: tuple[str, ...] = ("near", "uniform", "fitness", "archive")
MAX_PARENTS = 5


def _score(ind: Individual) -> float:
    ev = ind.evaluation
    return float(ev.fitness) if ev.ok and ev.fitness is not None else float("-inf")


class LMXCrossover(_RewriteOperator):
    """Crossover by few-shot prompting with ``k`` parents.

    Args:
        context: the domain's prompt context.
        mode: ``"chat"`` or ``"completion"``.
        k: number of parents shown (1 to 5).
        selection: how parents are drawn from the archive (see the module docstring).
        max_tokens, temperature, top_p: sampling parameters of every request.

    Raises:
        ValueError: ``k`` outside 1..5, an unknown selection, or bad sampling parameters.
    """

    name = "lmx"

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        *,
        k: int = 3,
        selection: str = "near",
        max_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
        parent_sized: bool = True,
    ) -> None:
        super().__init__(
            context,
            mode,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            repeat_penalty=repeat_penalty,
            parent_sized=parent_sized,
        )
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_PARENTS:
            raise ValueError(f"lmx: k must be an integer from 1 to {MAX_PARENTS}, got {k!r}")
        if selection not in LMX_SELECTIONS:
            raise ValueError(
                f"lmx: unknown selection {selection!r}; choose one of {', '.join(LMX_SELECTIONS)}"
            )
        self.num_parents = k
        self.selection = selection

    # -- parents --------------------------------------------------------------------------
    def select_parents(
        self, archive: Archive, strategy: str, rng: np.random.Generator
    ) -> list[Individual]:
        """Draw ``k`` parents by :attr:`selection` (see the module docstring).

        Raises:
            EmptyArchiveError: the archive holds no elites.
        """
        if self.selection == "archive":
            return archive.sample(self.num_parents, strategy, rng)
        elites = list(archive)
        if not elites:
            raise EmptyArchiveError("the archive holds no elites to cross over")
        k = self.num_parents
        if len(elites) <= k:
            extra = rng.integers(len(elites), size=k - len(elites))
            return elites + [elites[i] for i in extra]
        if self.selection == "uniform":
            idx = rng.choice(len(elites), size=k, replace=False)
            return [elites[i] for i in idx]
        if self.selection == "fitness":
            w = np.array([fitness_weight(e.fitness, archive.qd_offset) for e in elites])
            idx = rng.choice(len(elites), size=k, replace=False, p=w / w.sum())
            return [elites[i] for i in idx]
        focal = int(rng.integers(len(elites)))
        others = [i for i in range(len(elites)) if i != focal]
        where = archive.cell_position(elites[focal])
        d = np.array([np.linalg.norm(archive.cell_position(elites[i]) - where) for i in others])
        w = near_weights(d)
        idx = rng.choice(len(others), size=k - 1, replace=False, p=w / w.sum())
        return [elites[focal]] + [elites[others[i]] for i in idx]

    # -- prompt ---------------------------------------------------------------------------
    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Build the crossover request (parents worst first, best last); its seed is drawn
        from ``rng``.

        Raises:
            ValueError: ``parents`` is not ``k`` long.
        """
        if len(parents) != self.num_parents:
            raise ValueError(f"lmx takes {self.num_parents} parents, got {len(parents)}")
        ordered = sorted(parents, key=_score)  # stable: equal scores keep their draw order
        codes = [p.program.code for p in ordered]
        ctx = self.context
        fn = ctx.function_name
        head = ""
        if self.mode == "chat":
            shown = "\n\n".join(
                f"Program {i} ({_score_note(p)}):\n{fenced(p.program.code, ctx.language)}"
                for i, p in enumerate(ordered, 1)
            )
            body = (
                f"{self._task(*codes)}\n\n"
                f"Here are {len(ordered)} programs for this task, worst first:\n\n{shown}\n\n"
                f"Write one new program for this task that combines the best ideas of the "
                f"programs above and scores better than all of them.\n{self._reply_format()}"
            )
        else:
            shown = "\n\n\n".join(
                f"# Version {i} of {fn}() ({_score_note(p)})\n{p.program.code.rstrip()}"
                for i, p in enumerate(ordered, 1)
            )
            imports: list[str] = []
            for p in ordered:
                imports += [line for line in _imports(p.program.code) if line not in imports]
            head = _head(ordered[-1].program.code, fn, keep_setup=False)
            def_line = head.rstrip("\n").split("\n")[-1]
            head = ("\n".join(imports) + "\n\n\n" if imports else "") + def_line + "\n"
            body = (
                f"{self._completion_top(*codes)}{shown}\n\n\n"
                f"{_marker(fn)}, combining ideas from the versions above\n{head}"
            )
        longest = max((p.program.code for p in parents), key=len)
        return self._proposal(parents, self._request(body, rng, longest), head)


def near_weights(distances: np.ndarray) -> np.ndarray:
    """LMX's neighbour weights ``1 / (1 + d**3)`` for cell distances ``d`` (not normalised)."""
    d = np.asarray(distances, dtype=np.float64)
    return 1.0 / (1.0 + d**3)
