"""Fine-tuning rounds inside a run (ELM section 4): when they happen, what they see and record,
and that resume and replay reproduce a run with rounds exactly. Real SQLite and sandbox, the fake
or replay LLM, and stub trainers (tests/finetune/stub_trainer.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolm.cli import app
from evolm.config import ConfigError, load_config
from evolm.finetune.loop import AdapterMissing, RoundSchedule, rounds_dir
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.store import RunStore
from evolm.types import AddStatus
from tests.finetune import stub_trainer

ROOT = Path(__file__).resolve().parents[2]
TOY = "tests.toy_domain:ToyDomain"
STUB = "tests.finetune.stub_trainer:record"
DEPTH = 2


def ft_config(**over):
    base = {
        "seed": 1,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": DEPTH, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": 50},
        "finetune": {"every": 4, "max_rounds": 2, "trainer": STUB},
    }
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(overrides=base)


def make_engine(cfg, path, llm=None):
    store = RunStore(path)
    if llm is None and cfg.llm.backend != "replay":
        llm = FakeLLM(responder=mutating_responder)
    return Runner(cfg, store, llm=llm), store


def run(cfg, path, llm=None, resume=False):
    eng, store = make_engine(cfg, path, llm)
    result = asyncio.run(eng.run(resume=resume))
    return eng, store, result


def elites(archive):
    return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())


def rounds_of(store):
    return [{**r.to_payload(), "batch": r.batch} for r in store.finetune_rounds()]


def summary(store):
    keep = ("batch", "round", "status", "trigger_batch", "accepted", "adapter_sha256")
    return [{k: r[k] for k in keep} for r in rounds_of(store)]


def expected_rounds(store, every=4, max_rounds=2):
    """(trigger batch, round batch) pairs, worked out from the stored steps alone: a round is
    due once ``every`` children were inserted since the last one, and follows the drain of the
    ``DEPTH - 1`` batches in flight."""
    out, since, trigger = [], 0, None
    for step in store.steps():
        if step.batch == 0:
            continue
        since += len(step.inserted)
        if trigger is None and len(out) < max_rounds and since >= every:
            trigger = step.batch
        if trigger is not None and step.batch == trigger + DEPTH - 1:
            out.append((trigger, step.batch))
            trigger, since = None, 0
    return out


def test_a_round_follows_the_drain_and_sees_every_accepted_mutation(tmp_path):
    _, boot, _ = run(ft_config(finetune=None, budget={"evaluations": 14}), tmp_path / "boot.db")
    boot.close()
    asked: list[float] = []

    def responder(request):
        asked.append(time.monotonic())
        return mutating_responder(request)

    cfg = ft_config(finetune={"bootstrap": [str(tmp_path / "boot.db")]})
    eng, store, res = run(cfg, tmp_path / "r.db", llm=FakeLLM(responder=responder))
    assert res.status == "completed" and "evaluation budget" in res.reason
    rounds = rounds_of(store)
    assert [(r["trigger_batch"], r["batch"]) for r in rounds] == expected_rounds(store)
    assert [r["round"] for r in rounds] == [1, 2] and {r["status"] for r in rounds} == {"ok"}
    rows = list(store.export_rows())
    previous = 0
    for r in rounds:
        d = r["batch"]
        # the trainer saw every accepted mutation told up to the round, and the bootstrap run's
        seen = json.loads(Path(r["adapter"]).read_text())["seen"]
        upto = {x["id"] for x in rows if x["batch"] <= d}
        in_run = [i for i in stub_trainer.accepted_ids(store.path) if i in upto]
        assert seen == [in_run, stub_trainer.accepted_ids(tmp_path / "boot.db")]
        assert r["databases"] == [str(store.path.resolve()), str((tmp_path / "boot.db").resolve())]
        assert Path(r["adapter"]).parent == rounds_dir(store.path.resolve()) / f"round-{r['round']}"
        assert len(r["adapter_sha256"]) == 64
        period = [x for x in rows if previous < x["batch"] <= d]
        assert r["period"] == {"from_batch": previous + 1, "to_batch": d}
        inserted = (int(AddStatus.NEW), int(AddStatus.IMPROVED))
        assert r["accepted"] == sum(x["add_status"] in inserted for x in period) >= 4
        assert r["arms"]["prompt_mutation@fake"]["chosen"] == len(period)
        assert r["examples"] == {"train": len(in_run), "val": 1}
        assert r["metrics"]["nan_is_stored_as_null"] is None
        assert r["applied"] == [] and "not applied" in r["note"]  # the fake LLM takes no adapter
        # the drain: every LLM call of the batches up to d came before the round, none during it
        t0, t1 = r["metrics"]["t0"], r["metrics"]["t1"]
        calls_before = sum(1 for x in rows if x["batch"] <= d and x["llm_call_id"] is not None)
        assert sum(t < t0 for t in asked) == calls_before
        assert not any(t0 <= t <= t1 for t in asked)
        previous = d
    assert sum(1 for x in rows if x["batch"] > previous) > 0  # the run went on after round 2
    assert len(eng.archive) > 2


def test_a_failing_trainer_is_a_failed_round_and_the_run_goes_on(tmp_path):
    cfg = ft_config(finetune={"trainer": "tests.finetune.stub_trainer:failing"})
    _, store, res = run(cfg, tmp_path / "f.db")
    assert res.status == "completed" and "evaluation budget" in res.reason
    assert sum(store.counts().values()) == 50
    rounds = rounds_of(store)
    assert [r["status"] for r in rounds] == ["failed", "failed"]  # failed rounds count too
    assert rounds[0]["error"] == "RuntimeError: round 1: out of memory while training"
    assert rounds[0]["adapter"] is None and "goes on with the model it had" in rounds[0]["note"]
    assert [(r["trigger_batch"], r["batch"]) for r in rounds] == expected_rounds(store)


def _interrupt(eng, when):
    """Make ``eng`` stop (as Ctrl-C does) after telling batch ``when``, or, with
    ``("round", n)``, while round ``n`` is training."""
    if isinstance(when, tuple):
        loop_box = {}

        async def capture():
            loop_box["loop"] = asyncio.get_running_loop()

        def hook(n):
            if n == when[1]:
                loop_box["loop"].call_soon_threadsafe(eng.request_stop, "interrupted")

        stub_trainer.HOOK = hook
        return capture

    def on_step(snap):
        if snap.batch == when:
            eng.request_stop("interrupted")

    eng.on_step = on_step
    return None


async def _run_with(eng, capture):
    if capture is not None:
        await capture()
    return await eng.run()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.db"
    eng, store, res = run(ft_config(), path)
    assert res.status == "completed"
    out = (elites(eng.archive), summary(store), expected_rounds(store))
    store.close()
    return out


@pytest.mark.parametrize("where", ["before", "drain", "drained", "training", "after"])
def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path, reference, where):
    ref_elites, ref_rounds, [(t1, d1), _] = reference
    when = {"before": t1 - 1, "drain": t1, "drained": d1, "training": ("round", 1)}.get(
        where, d1 + 1
    )
    cfg = ft_config()
    eng, store = make_engine(cfg, tmp_path / "p.db")
    capture = _interrupt(eng, when)
    try:
        res = asyncio.run(_run_with(eng, capture))
    finally:
        stub_trainer.HOOK = None
    assert res.status == "interrupted"
    recorded = len(rounds_of(store))
    assert recorded == (1 if where == "after" else 0)
    store.close()
    resumed, s2, res = run(cfg, tmp_path / "p.db", resume=True)
    assert res.status == "completed"
    assert elites(resumed.archive) == ref_elites
    assert summary(s2) == ref_rounds  # recorded rounds are not trained again
    assert len(s2.resumes()) == 1


def test_a_run_with_rounds_replays_exactly_from_its_own_cassette(tmp_path):
    a, sa, _ = run(ft_config(), tmp_path / "a.db")
    sa.close()
    cfg = ft_config(llm={"backend": "replay", "cassette": str(tmp_path / "a.db")})
    b, sb, res = run(cfg, tmp_path / "b.db")
    assert res.status == "completed"
    assert elites(b.archive) == elites(a.archive)
    with RunStore(tmp_path / "a.db", readonly=True) as ca:
        assert summary(sb) == summary(ca) and len(summary(ca)) == 2
        assert [r["code"] for r in sb.export_rows()] == [r["code"] for r in ca.export_rows()]
    assert all("not applied" in r["note"] for r in rounds_of(sb))


def test_the_adapter_goes_into_llama_cpp_models_and_comes_back_on_resume(tmp_path, monkeypatch):
    builds: list[str | None] = []

    def build(config, llm_config=None):
        c = llm_config or config.llm
        builds.append(c.lora)
        model = Path(c.lora).parent.name if c.lora else "base"
        return FakeLLM(responder=mutating_responder, model=model)

    monkeypatch.setattr("evolm.llm.build.build_backend", build)
    cfg = ft_config(llm={"backend": "llama_cpp"}, budget={"evaluations": 70})
    db = tmp_path / "l.db"
    eng, store = make_engine(cfg, db, llm=FakeLLM(responder=mutating_responder, model="base"))
    rounds_seen = {"n": 0}

    def on_step(snap):  # stop two batches after round 1
        r = rounds_of(store)
        if r and snap.batch == r[0]["batch"] + 2 and not rounds_seen["n"]:
            rounds_seen["n"] = 1
            eng.request_stop("interrupted")

    eng.on_step = on_step
    assert asyncio.run(eng.run()).status == "interrupted"
    [r1] = rounds_of(store)
    assert r1["applied"] == ["llama_cpp (bundled model)"] and "loaded into" in r1["note"]
    models = {(x["batch"] > r1["batch"], x["model"]) for x in store.export_rows() if x["model"]}
    assert models == {(False, "base"), (True, "round-1")}
    store.close()

    adapter = Path(r1["adapter"])
    good = adapter.read_bytes()
    before = db.read_bytes()
    damages = [(adapter.unlink, "is missing"), (lambda: adapter.write_text("x"), "has changed")]
    for damage, needle in damages:
        damage()
        with pytest.raises(AdapterMissing, match=needle) as err:
            run(cfg, db, llm=FakeLLM(responder=mutating_responder, model="base"), resume=True)
        assert str(adapter) in str(err.value) and "restore that file" in str(err.value)
        assert db.read_bytes() == before  # nothing changed
    adapter.write_bytes(good)

    moved = tmp_path / "moved"  # the run directory moves, its database and rounds together
    moved.mkdir()
    db.rename(moved / db.name)
    rounds_dir(db).rename(rounds_dir(moved / db.name))
    adapter = rounds_dir(moved / db.name) / "round-1" / adapter.name
    db = moved / db.name
    _, s2, res = run(cfg, db, llm=FakeLLM(responder=mutating_responder, model="base"), resume=True)
    assert res.status == "completed"
    r1, r2 = rounds_of(s2)
    by_batch = {x["batch"]: x["model"] for x in s2.export_rows() if x["model"]}
    assert {m for b, m in by_batch.items() if r1["batch"] < b <= r2["batch"]} == {"round-1"}
    assert {m for b, m in by_batch.items() if b > r2["batch"]} == {"round-2"}
    assert builds[-2:] == [str(adapter), r2["adapter"]]  # round 1 reloaded, not retrained
    assert Path(r2["adapter"]).parent == rounds_dir(db.resolve()) / "round-2"


def test_the_lora_trainer_runs_in_the_loop_on_a_tiny_base_model(tmp_path, tiny_base):
    params = {"max_steps": 2, "batch_size": 2, "max_len": 256, "threads": 1, "rank": 2}
    cfg = ft_config(
        # the rounds train this base (hf: it takes no GGUF adapter); the fake LLM answers
        llm={"backend": "hf", "model_path": str(tiny_base)},
        finetune={"trainer": "lora", "format": "stored", "max_rounds": 1, "params": params},
        budget={"evaluations": 26},
    )
    fake = FakeLLM(responder=mutating_responder, model="fake")
    _, store, res = run(cfg, tmp_path / "lora.db", llm=fake)
    assert res.status == "completed"
    [r] = rounds_of(store)
    assert r["status"] == "ok", r["error"]
    m = r["metrics"]
    assert r["examples"]["train"] == m["train_examples"] > 0 and m["steps"] == 2
    assert m["val_loss_before"] is None or m["val_loss_before"] > 0
    assert m["dataset"]["qualifying"] >= 4 and "dataset" in m
    out = Path(r["out_dir"])
    assert (out / "train.jsonl").is_file() and (out / "adapter").is_dir()
    if r["adapter"] is not None:
        assert Path(r["adapter"]) == out / "adapter.gguf" and "not applied" in r["note"]


@pytest.mark.parametrize(
    ("finetune", "needle"),
    [
        ({"every": 0}, "finetune.every: Input should be greater than or equal to 1"),
        ({}, "finetune.every: Field required"),
        ({"every": 3, "evrey": 3}, "finetune.evrey: unknown key"),
        ({"every": 3, "max_rounds": 0}, "finetune.max_rounds"),
        ({"every": 3, "accept": "all"}, "finetune.accept: Input should be 'inserted'"),
        ({"every": 3, "format": "diff"}, "finetune.format"),
        ({"every": 3, "trainer": "mine"}, "'lora' or 'package.module:callable'"),
        ({"every": 3, "params": {"rnak": 8}}, "unknown lora parameter(s) rnak; known: alpha"),
        ({"every": 3, "params": {"lr": -1.0}}, "finetune.params: bad lora parameter"),
        ({"every": 3, "params": {"val_fraction": 1.5}}, "val_fraction must be a number in [0, 1)"),
    ],
)
def test_bad_finetune_settings_are_named(finetune, needle):
    with pytest.raises(ConfigError) as err:
        load_config(overrides={"domain": {"name": TOY}, "finetune": finetune})
    assert needle in str(err.value)


def test_a_user_trainer_takes_any_params_and_missing_files_fail_before_the_run(tmp_path):
    cfg = ft_config(finetune={"params": {"anything": 1}})
    assert cfg.finetune is not None and cfg.finetune.params == {"anything": 1}
    with pytest.raises(ConfigError, match=r"finetune.bootstrap: run database .*nope.db"):
        make_engine(ft_config(finetune={"bootstrap": [str(tmp_path / "nope.db")]}), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"finetune\.trainer: cannot load 'tests\.nothing:train'"):
        make_engine(ft_config(finetune={"trainer": "tests.nothing:train"}), tmp_path / "b")


def test_the_schedule_counts_from_the_last_round_and_stops_at_max_rounds():
    s = RoundSchedule(every=3, max_rounds=2)
    s.told(1, 2, {"a": {"chosen": 4, "inserted": 2}})
    assert not s.due
    s.told(2, 1, {"a": {"chosen": 4, "inserted": 1}})
    assert s.due and s.trigger == 2
    s.told(3, 5, {})  # told during the drain: counted in this round
    assert s.trigger == 2 and s.accepted == 8 and s.period_arms["a"]["inserted"] == 3
    s.finish(3)
    assert (s.rounds, s.accepted, s.period_start, s.period_arms) == (1, 0, 4, {})
    s.told(4, 3, {})
    s.finish(4)
    s.told(5, 9, {})
    assert not s.due and s.rounds == 2


# -- the command line: a real kill -9 during a round, and `evolm status` -----------------------
def _write_config(path: Path, evals: int, max_rounds: int = 2) -> Path:
    path.write_text(
        f"""
seed = 3
[domain]
name = "{TOY}"
[archive]
kind = "grid"
bins = [5, 5]
[llm]
backend = "fake"
latency = 0.02
[engine]
batch_size = 4
pipeline_depth = {DEPTH}
workers = 2
init_batches = 1
[budget]
evaluations = {evals}
[finetune]
every = 4
max_rounds = {max_rounds}
trainer = "{STUB}"
params = {{ sleep_round = 2, sleep = 1.0 }}
"""
    )
    return path


def evolm(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _elites_of(db: Path):
    from evolm.config import RunConfig
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import build_archive, rebuild_archive

    with RunStore(db, readonly=True) as store:
        cfg = RunConfig.model_validate(store.run_info()["config"])
        archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
        rebuild_archive(archive, store)
        return elites(archive)


def test_kill_9_during_a_round_then_resume_trains_it_again_and_matches(tmp_path):
    cfg = _write_config(tmp_path / "c.toml", evals=54)
    ref = tmp_path / "ref.db"  # the same run, uninterrupted and in this process
    with RunStore(ref) as store:
        assert asyncio.run(Runner(load_config(file=cfg), store).run()).status == "completed"
    db = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from evolm.cli import app; app()", "run", TOY,
         "--config", str(cfg), "--out", str(db), "-q"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    started = rounds_dir(db) / "round-2" / "started"
    t0 = time.monotonic()
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 60, "round 2 never started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-training: no event for round 2
    proc.wait()
    with RunStore(db, readonly=True) as s:
        assert [r.round for r in s.finetune_rounds()] == [1]
    evolm("resume", db, "-q")
    with RunStore(db, readonly=True) as s, RunStore(ref, readonly=True) as r:
        assert s.run_info()["status"] == "completed"
        assert summary(s) == summary(r) and len(summary(r)) == 2
    assert _elites_of(db) == _elites_of(ref)

    st = CliRunner().invoke(app, ["status", str(db)]).stdout
    assert "per round (ELM Fig. 11" in st and "fine-tuning rounds" in st
    table = st[st.index("per round (ELM Fig. 11") : st.index("fine-tuning rounds")]
    for period in ("before round 1", "after round 1", "after round 2"):
        assert period in table
    training = st[st.index("fine-tuning rounds") :]
    assert "2.5 -> 1.25" in training and "not applied" in training
    assert "operators (ELM Fig. 11c" in st  # the rest of the output is still there


def test_the_front_end_hears_each_round_start_and_end(tmp_path):
    """``on_round`` tells the CLI why the bar stands still, then what the round gave."""
    heard = []
    store = RunStore(tmp_path / "r.db")
    eng = Runner(
        ft_config(),
        store,
        llm=FakeLLM(responder=mutating_responder),
        on_round=lambda phase, info: heard.append((phase, dict(info))),
    )
    asyncio.run(eng.run())
    rounds = rounds_of(store)
    assert [p for p, _ in heard] == ["start", "end"] * len(rounds) and len(rounds) == 2
    starts = [i for p, i in heard if p == "start"]
    assert [s["round"] for s in starts] == [1, 2]
    assert all(s["accepted"] >= 4 for s in starts)  # every = 4
    ends = [i for p, i in heard if p == "end"]
    assert [(e["round"], e["status"]) for e in ends] == [(r["round"], "ok") for r in rounds]


def test_evolm_run_says_when_a_round_trains_and_what_it_gave(tmp_path):
    cfg = _write_config(tmp_path / "ft.toml", 50, max_rounds=1)
    out = tmp_path / "ft.db"
    res = CliRunner().invoke(app, ["run", TOY, "--config", str(cfg), "--out", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, text
    assert "fine-tuning round 1: training a LoRA adapter on the accepted mutations" in text
    assert "fine-tuning round 1: " in text.split("training a LoRA adapter", 1)[1]
    assert "adapter not loaded" in text  # the fake LLM takes no adapter, and the note says so
    assert "fine-tuning round 2" not in text
