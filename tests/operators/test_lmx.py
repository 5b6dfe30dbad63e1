"""LMX crossover: prompt construction in both modes and the parent-selection distributions."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from evolm.archives import make_archive
from evolm.archives.base import EmptyArchiveError
from evolm.domains.base import DomainContext
from evolm.operators import LMXCrossover, make_operator
from evolm.operators.lmx import near_weights
from evolm.operators.prompt import completion_prefix
from evolm.types import DescriptorSpace, Evaluation, Individual, Program, Status

CTX = DomainContext(description="Return a number close to 3.", function_name="f")
SPACE1 = DescriptorSpace(("x",), ((0.0, 1.0),))
FENCED = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def ind(pid: int, fitness: float, desc: tuple[float, ...] = (0.5,)) -> Individual:
    code = f"import math\n\n\ndef f():\n    return {pid}.0\n"
    return Individual(Program(id=pid, code=code), Evaluation(Status.OK, fitness, desc))


def line_archive(bins: int = 10):
    """A 1-D grid with one elite per bin (id = bin, fitness = bin)."""
    archive = make_archive("grid", SPACE1, bins=bins)
    archive.add([ind(i, float(i), ((i + 0.5) / bins,)) for i in range(bins)])
    return archive


def test_chat_prompt_shows_k_parents_worst_first_with_scores() -> None:
    op = LMXCrossover(CTX, "chat", k=3)
    parents = [ind(5, -1.0), ind(6, -9.0), ind(7, -0.5)]
    proposal = op.propose(parents, np.random.default_rng(0))
    assert proposal.parent_ids == (5, 6, 7)
    body = proposal.request.messages[-1]["content"]
    blocks = FENCED.findall(body)
    assert [b.strip().split()[-1] for b in blocks] == ["6.0", "5.0", "7.0"]
    assert body.index("scored -9") < body.index("scored -1") < body.index("scored -0.5")
    assert "combines the best ideas" in body and "Return a number close to 3." in body


def test_completion_prompt_round_trip() -> None:
    op = LMXCrossover(CTX, "completion", k=2)
    proposal = op.propose([ind(1, -2.0), ind(2, -1.0)], np.random.default_rng(0))
    prompt = proposal.request.prompt
    assert prompt.index("# Version 1 of f() (it scored -2") < prompt.index("# Version 2 of f()")
    assert prompt.endswith("import math\n\n\ndef f():\n")
    assert completion_prefix(prompt, "f") == "import math\n\n\ndef f():\n"
    assert "\n# " in proposal.request.stop  # the model stops before writing a next version
    result = op.finish(proposal, "    return 3.0\n\n\nprint(f())")
    assert result.ok and result.code.rstrip().endswith("return 3.0")
    assert result.code.startswith("import math")


def test_requests_are_deterministic_and_seeded_from_the_rng() -> None:
    op = LMXCrossover(CTX, "chat", k=2)
    parents = [ind(1, 0.0), ind(2, 1.0)]
    a = op.propose(parents, np.random.default_rng(4)).request
    b = op.propose(parents, np.random.default_rng(4)).request
    c = op.propose(parents, np.random.default_rng(5)).request
    assert a == b and a.seed != c.seed


def test_near_selection_follows_the_inverse_cubic_distance_law() -> None:
    archive, k, draws = line_archive(10), 2, 6000
    op = LMXCrossover(CTX, "chat", k=k, selection="near")
    rng = np.random.default_rng(0)
    observed: Counter[int] = Counter()
    for _ in range(draws):
        focal, other = op.select_parents(archive, "uniform", rng)
        assert focal.program.id != other.program.id
        observed[abs(focal.program.id - other.program.id)] += 1
    # Expected distribution of the partner's distance, focal uniform over 10 bins.
    expected = np.zeros(10)
    for f in range(10):
        d = np.array([abs(f - j) for j in range(10) if j != f], dtype=float)
        w = near_weights(d)
        for dist, p in zip(d, w / w.sum(), strict=True):
            expected[int(dist)] += p / 10
    for dist in range(1, 4):
        assert observed[dist] / draws == pytest.approx(expected[dist], abs=0.015), dist
    assert expected[1] > 0.6 and observed[9] / draws < 0.01


def test_uniform_and_fitness_selection_distributions() -> None:
    archive = line_archive(10)
    rng = np.random.default_rng(1)
    uniform = LMXCrossover(CTX, k=3, selection="uniform")
    seen: Counter[int] = Counter()
    for _ in range(3000):
        ids = [p.program.id for p in uniform.select_parents(archive, "uniform", rng)]
        assert len(set(ids)) == 3
        seen.update(ids)
    assert max(seen.values()) / min(seen.values()) < 1.2
    fitness = LMXCrossover(CTX, k=1, selection="fitness")
    picks = Counter(
        fitness.select_parents(archive, "uniform", rng)[0].program.id for _ in range(6000)
    )
    # weight = fitness - qd_offset (0) with a floor: bin 9 is 9x as likely as bin 1, bin 0 ~never
    assert picks[0] < 5 and picks[9] / picks[1] == pytest.approx(9.0, rel=0.35)


def test_archive_selection_uses_the_run_strategy_and_few_elites_are_reused() -> None:
    archive = make_archive("grid", SPACE1, bins=10)
    archive.add([ind(1, 1.0, (0.05,)), ind(2, 2.0, (0.95,))])
    op = LMXCrossover(CTX, k=5, selection="near")
    parents = op.select_parents(archive, "uniform", np.random.default_rng(0))
    assert len(parents) == 5 and {p.program.id for p in parents} == {1, 2}
    via = LMXCrossover(CTX, k=4, selection="archive")
    assert len(via.select_parents(archive, "fitness", np.random.default_rng(0))) == 4
    with pytest.raises(EmptyArchiveError):
        op.select_parents(make_archive("grid", SPACE1, bins=3), "uniform", np.random.default_rng(0))


def test_cell_positions_are_in_cell_units() -> None:
    space = DescriptorSpace(("a", "b"), ((0.0, 1.0), (0.0, 1.0)))
    grid = make_archive("grid", space, bins=[4, 5])
    assert list(grid.cell_position(ind(1, 0.0, (0.3, 0.9)))) == [1.0, 4.0]
    deep = make_archive("deep_grid", space, bins=[4, 5], per_cell=2)
    assert list(deep.cell_position(ind(1, 0.0, (0.3, 0.9)))) == [1.0, 4.0]
    cvt = make_archive("cvt", space, cells=50, seed=0)
    a = cvt.cell_position(ind(1, 0.0, (0.5, 0.5)))
    b = cvt.cell_position(ind(2, 0.0, (0.52, 0.5)))
    far = cvt.cell_position(ind(3, 0.0, (0.95, 0.05)))
    assert np.linalg.norm(a - b) <= 1.5 and np.linalg.norm(a - far) > 3
    pop = make_archive("population", space, size=4)
    assert list(pop.cell_position(ind(1, 0.0, (0.3, 0.9)))) == pytest.approx([3.0, 9.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "k must be"),
        ({"k": 6}, "k must be"),
        ({"selection": "best"}, "unknown selection"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_operator("lmx", CTX, "chat", **kwargs)


def test_wrong_number_of_parents() -> None:
    with pytest.raises(ValueError, match="takes 3 parents, got 1"):
        LMXCrossover(CTX, k=3).propose([ind(1, 0.0)], np.random.default_rng(0))
