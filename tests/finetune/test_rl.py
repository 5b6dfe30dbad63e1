"""ELM Stage 3 on a tiny random Llama: a few GRPO steps raise a toy reward with a non-zero,
logged KL term; the terrain reaches the prompt and the reward; an interrupted run resumes."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

pytest.importorskip("trl")

from evolm.domains.sodarace import make_terrain
from evolm.finetune.distill import read_stage2
from evolm.finetune.rl import RL_FILE, RLConfig, RLError, read_metrics, terrain_prompts, train_rl
from evolm.finetune.sampling import ModelSpec, sample_programs

LOWER = set("abcdefghijklmnopqrstuvwxyz ")


def lowercase_share(codes: Sequence[str], terrains: Sequence[str]) -> list[float]:
    """The toy reward: the share of a program's characters that are lowercase letters or
    spaces (a random character-level model writes about a quarter)."""
    return [sum(ch in LOWER for ch in c) / max(len(c), 1) for c in codes]


def _config(**kw: object) -> RLConfig:
    settings: dict[str, object] = {
        "terrains": ("flat", "left-wall"),
        "steps": 5,
        "generations": 6,
        "max_completion_length": 12,
        "lr": 3e-2,
        "beta": 0.04,
        "save_steps": 5,
    }
    settings.update(kw)
    return RLConfig(**settings)  # type: ignore[arg-type]


def test_a_few_steps_raise_the_reward_with_a_logged_kl_term(stage2_dir, peaked_base, tmp_path):
    seen: list[str] = []

    def reward(codes: Sequence[str], terrains: Sequence[str]) -> list[float]:
        seen.extend(terrains)
        return lowercase_share(codes, terrains)

    out = tmp_path / "s3"
    # eight steps: at five the sampled share rose by only 0.03 (0.24 to 0.27), too close to
    # sampling noise to tell; at eight it is about 0.65
    run = train_rl(stage2_dir, out, config=_config(steps=8, save_steps=8), reward=reward)
    assert run["status"] == "completed" and run["steps_done"] == 8
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, 9))
    assert all("kl" in m and "reward" in m for m in metrics)
    assert metrics[0]["kl"] == 0.0  # the policy starts as the Stage-2 model, its reference
    assert all(m["kl"] > 0 for m in metrics[1:])
    recorded = json.loads((out / RL_FILE).read_text())
    assert recorded["config"]["beta"] == 0.04 and recorded["summary"]["kl_mean"] > 0
    assert set(seen) == {"flat", "left-wall"}
    # each step records the terrain it prompted and the mean reward there (one prompt per step)
    on = [m["terrain_rewards"] for m in metrics]
    assert all(len(t) == 1 for t in on)
    assert {name for t in on for name in t} == {"flat", "left-wall"}
    for step_on, line in zip(on, metrics, strict=True):
        assert next(iter(step_on.values())) == pytest.approx(line["reward"])

    # the trained model loads back (peft adapter on the base) and writes what the reward likes
    prompt = terrain_prompts(read_stage2(stage2_dir), ["flat"])[0]["prompt"]
    means = {}
    for label, adapter in (("stage2", stage2_dir / "adapter"), ("stage3", out / "adapter")):
        codes = sample_programs(
            ModelSpec(f"hf:{peaked_base}", str(adapter)), [prompt], 48, max_tokens=12, seed=1
        )[0]
        means[label] = sum(lowercase_share(codes, [])) / len(codes)
    assert means["stage3"] > means["stage2"] + 0.2
    assert (out / "adapter.gguf").is_file()


def test_terrain_conditioning_reaches_the_prompt(stage2_dir):
    record = read_stage2(stage2_dir)
    rows = terrain_prompts(record, ["flat", "left-wall", "right-wall", "bumpy", "tunnel"])
    assert len({r["prompt"] for r in rows}) == 5
    for row in rows:
        terrain = make_terrain(row["terrain"])
        line = f"# Terrain: {terrain.name}: {terrain.description}\n"
        first, rest = record["prompt"].split("\n", 1)
        # the Stage-2 prompt with the terrain's line after its first: it ends as Stage 2's does
        assert row["prompt"] == f"{first}\n{line}{rest}"


def test_the_prompts_of_a_run_are_recorded_with_their_terrain(stage2_dir, tmp_path):
    out = tmp_path / "s3"
    train_rl(stage2_dir, out, config=_config(steps=1, generations=2), reward=lowercase_share)
    rows = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert [r["terrain"] for r in rows] == ["flat", "left-wall"]
    assert "# Terrain: left-wall: level ground with a tall wall" in rows[1]["prompt"]


def test_an_interrupted_run_resumes_from_its_last_checkpoint(stage2_dir, tmp_path):
    out = tmp_path / "s3"
    cfg = _config(steps=4, save_steps=2, generations=2)
    first = train_rl(stage2_dir, out, config=cfg, reward=lowercase_share, max_steps_now=2)
    assert first["status"] == "interrupted" and first["steps_done"] == 2
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert json.loads((ckpt / "evolm-rl.json").read_text())["step"] == 2
    assert not (out / "adapter").exists()
    # a line logged after the checkpoint, as a crash between a step and its checkpoint leaves
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 3, "reward": 99.0}) + "\n")
    with pytest.raises(RLError, match="continue it with --resume"):
        train_rl(stage2_dir, out, config=cfg, reward=lowercase_share)

    done = train_rl(None, out, reward=lowercase_share, resume=True)
    assert done["status"] == "completed" and done["steps_done"] == 4
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert 99.0 not in [m["reward"] for m in metrics]
    assert metrics[2]["kl"] > 0  # the resumed policy is the trained one, not the reference
    assert (out / "adapter.gguf").is_file()
    with pytest.raises(RLError, match="completed its 4 steps"):
        train_rl(None, out, reward=lowercase_share, resume=True)


def test_bad_settings_are_refused_before_training(stage2_dir, tmp_path):
    with pytest.raises(RLError, match="KL coefficient"):
        RLConfig(beta=0.0)
    with pytest.raises(RLError, match="generations must be >= 2"):
        RLConfig(generations=1)
    with pytest.raises(RLError, match="unknown terrain 'moon'"):
        RLConfig(terrains=("flat", "moon"))
    with pytest.raises(RLError, match="nothing to resume"):
        train_rl(None, tmp_path / "empty", resume=True)
    with pytest.raises(Exception, match="evolm distill --out"):
        train_rl(tmp_path, tmp_path / "s3", reward=lowercase_share)


@pytest.mark.slow
def test_stage3_trains_the_bundled_gguf_model_and_exports_its_adapter(soda_db, tmp_path):
    """The bundled SmolLM2 is loaded from a GGUF file, which transformers marks as quantized and
    its Trainer then refuses to train; Stage 3 must train it and write a llama.cpp adapter."""
    pytest.importorskip("llama_cpp")
    from evolm.finetune.distill import distill
    from evolm.finetune.train import TrainConfig

    s2 = tmp_path / "s2"
    distill([soda_db], s2, config=TrainConfig(max_steps=1, batch_size=1, max_len=512))
    out = tmp_path / "s3"
    cfg = _config(steps=1, generations=2, max_completion_length=8, lr=1e-4)
    run = train_rl(s2, out, config=cfg, reward=lowercase_share)
    assert run["status"] == "completed" and run["gguf"] == "adapter.gguf"
    codes = sample_programs(
        ModelSpec("llama_cpp", str(out / "adapter.gguf")), ["# walker.py\n"], 1, max_tokens=4
    )
    assert len(codes[0]) == 1


def test_the_gpu_path_is_refused_with_its_reason_where_no_cuda_gpu_is(stage2_dir, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the run would start")
    with pytest.raises(RLError, match="torch sees no CUDA GPU; use cpu or auto"):
        train_rl(stage2_dir, tmp_path / "a", config=_config(device="cuda"), reward=lowercase_share)
    with pytest.raises(RLError, match="vLLM generation needs a CUDA GPU"):
        train_rl(stage2_dir, tmp_path / "b", config=_config(use_vllm=True), reward=lowercase_share)
