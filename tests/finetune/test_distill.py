"""ELM Stage 2: the per-niche cut on a constructed archive, the examples, a Stage-2 round on a
tiny random Llama and its evaluation in the sandbox."""

from __future__ import annotations

import json

import pytest

from evolm.finetune.dataset import DatasetError, read_jsonl
from evolm.finetune.distill import (
    build_distill_dataset,
    evaluate_stage2,
    read_stage2,
    rebuilt_source,
    select_elites,
    stage_prompt,
)
from evolm.finetune.sampling import END, Scorer, extract_program

from .conftest import make_db


def _prog(i: int, fitness: float, where: tuple[float, float, float], **kw: object) -> dict:
    code = f"import numpy as np\n\n\ndef draw():\n    return np.full((32, 32, 3), {i / 100})\n"
    return {
        "id": i,
        "code": kw.get("code", code),
        "parents": [],
        "status": kw.get("status", "ok"),
        "fitness": fitness,
        "add": 0,
        "descriptors": where,
    }


A, B = (0.05, 0.05, 0.05), (0.95, 0.95, 0.95)  # two cells of the image run's 10-bin grid


@pytest.fixture
def archive_db(tmp_path):
    """Niche A: fitness -4, -3, -2, -1 and a copy of -1's code that scored worse; niche B: -5;
    and an invalid program."""
    programs = [_prog(i, -float(5 - i), A) for i in range(1, 5)]
    programs.append(_prog(9, -9.0, A, code=programs[-1]["code"]))
    programs.append(_prog(5, -5.0, B))
    programs.append(_prog(6, 0.0, B, status="invalid"))
    return make_db(tmp_path / "archive.db", programs)


@pytest.mark.parametrize(
    ("cut", "kept"),
    [(0.0, {1, 2, 3, 4, 5}), (0.5, {3, 4, 5}), (0.8, {4, 5})],
)
def test_the_cut_keeps_each_niches_fittest_share(archive_db, cut, kept):
    elites, counts, _ = select_elites([archive_db], cut)
    assert {e.program_id for e in elites} == kept
    assert counts.niches == 2 and counts.qualifying == 5 and counts.duplicates == 1
    assert counts.skipped.get("below cut", 0) == 5 - len(kept)
    # niche B's single program is its elite and survives every cut
    assert 5 in {e.program_id for e in elites}


def test_ties_at_the_cut_are_kept(tmp_path):
    db = make_db(tmp_path / "ties.db", [_prog(1, -2.0, A), _prog(2, -2.0, A), _prog(3, -1.0, A)])
    elites, _, _ = select_elites([db], 0.5)  # the top 2 of 3, and -2.0 ties
    assert {e.program_id for e in elites} == {1, 2, 3}


def test_examples_condition_on_the_niche_only_when_asked(archive_db):
    plain = build_distill_dataset([archive_db], cut=0.5, val_fraction=0)
    niche = build_distill_dataset([archive_db], cut=0.5, val_fraction=0, conditioned=True)
    assert len(plain.train) == len(niche.train) == 3
    assert all("Target niche" not in ex.prompt for ex in plain.train)
    by_id = {ex.program_id: ex for ex in niche.train}
    assert "# Target niche: mean_r 0.95, mean_g 0.95, mean_b 0.95\n" in by_id[5].prompt
    assert "# Target niche: mean_r 0.05" in by_id[4].prompt
    for ex in niche.train:
        assert isinstance(ex.prompt, str)
        assert ex.prompt.startswith("# image.py: a program for the image domain.\n")
        assert ex.completion.endswith(f"\n\n{END}\n")
        assert extract_program(ex.completion).startswith("import numpy as np")


def test_the_split_keeps_niches_whole(archive_db):
    ds = build_distill_dataset([archive_db], cut=0.0, val_fraction=0.3)
    niche_of = {1: "A", 2: "A", 3: "A", 4: "A", 5: "B"}
    train = {niche_of[ex.program_id] for ex in ds.train}
    val = {niche_of[ex.program_id] for ex in ds.val}
    assert ds.val and not (train & val)


def test_bad_input_is_named(tmp_path, archive_db, gp_db, soda_db):
    with pytest.raises(DatasetError, match=r"cut must be in \[0, 1\)"):
        select_elites([archive_db], 1.0)
    with pytest.raises(DatasetError, match="does not exist"):
        select_elites([tmp_path / "nope.db"])
    with pytest.raises(DatasetError, match="distil runs of one domain"):
        select_elites([gp_db, soda_db])
    with pytest.raises(DatasetError, match="evolm distill --out"):
        read_stage2(tmp_path)


def test_a_stage2_round_records_its_data_settings_and_metrics(stage2_dir, soda_db):
    record = read_stage2(stage2_dir)
    assert record["cut"] == 0.5 and record["conditioned"] is False
    assert record["domain"] == "sodarace"
    train = read_jsonl(stage2_dir / "train.jsonl")
    val = read_jsonl(stage2_dir / "val.jsonl")
    assert len(train) == record["dataset"]["train"] and len(val) == record["dataset"]["val"]
    elites, _, _ = select_elites([soda_db], 0.5)
    assert len(train) + len(val) == len(elites)
    assert record["hyperparameters"]["max_steps"] == 2
    assert record["metrics"]["steps"] == 2
    assert (stage2_dir / "adapter" / "adapter_config.json").is_file()
    assert (stage2_dir / "adapter.gguf").is_file()
    assert all(ex.prompt == record["prompt"] for ex in train)


def test_stage2_evaluation_scores_samples_against_the_archive(stage2_dir, soda_db):
    result = evaluate_stage2(stage2_dir, k=3, llm="hf", max_tokens=24)
    source = rebuilt_source(soda_db)
    for label in ("base", "stage2"):
        stats = result[label]
        assert stats["samples"] == 3 and sum(stats["status"].values()) == 3
        assert 0 <= stats["valid"] <= 3 and stats["niches"] <= stats["valid"]
    assert result["archive"]["niches"] == len(source.archive)
    best = max(ind.fitness for ind in source.archive)
    assert result["archive"]["fitness_max"] == pytest.approx(best)
    recorded = json.loads((stage2_dir / "stage2.json").read_text())["evaluation"]
    assert recorded["stage2"] == result["stage2"]


def test_the_scorer_runs_programs_in_the_sandbox_per_terrain():
    from evolm.domains.sodarace import seed_code

    square = seed_code("square")
    variants = {"flat": {"terrain": "flat"}, "left-wall": {"terrain": "left-wall"}}
    with Scorer("sodarace", variants, workers=1) as scorer:
        flat, wall, bad = scorer.evaluate(
            [square, square, "def make_walker():\n    return 3\n"],
            ["flat", "left-wall", "flat"],
        )
        with pytest.raises(KeyError, match="unknown parameter set"):
            scorer.evaluate([square], "tunnel")
    # docs/sodarace.md: the Square seed moves 8.8 units left; the left wall stops it
    assert flat.ok and flat.fitness == pytest.approx(8.769477, abs=1e-4)
    assert wall.ok and wall.fitness == 0.0
    assert not bad.ok and "returned int" in (bad.error or "")


def test_stage_prompts_put_the_terrain_inside_the_stage2_prompt(soda_db):
    from evolm.domains.sodarace import make_terrain

    source = rebuilt_source(soda_db)
    base = stage_prompt(source).splitlines(keepends=True)
    wall = stage_prompt(source, terrain=make_terrain("left-wall")).splitlines(keepends=True)
    terrain_line = (
        "# Terrain: left-wall: level ground with a tall wall just to the left of the robot, "
        "so it must move right\n"
    )
    # the Stage-2 prompt's lines with the terrain's after the first: it still ends with the
    # line the Stage-2 model learnt to answer with a program
    assert wall == [base[0], terrain_line, *base[1:]]
