"""The registries: kinds by name or by ``package.module:Class``, typed parameters, configs that
fail at load naming a misplaced key, and contract suites over every selector and every offline
LLM backend. A user operator and a user backend (tests/user_ext.py) run in a real sandboxed run.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import evolm
from evolm.archives import ARCHIVES
from evolm.config import (
    ARCHIVE_CONFIGS,
    LLM_CONFIGS,
    ConfigError,
    CustomLLMConfig,
    load_config,
)
from evolm.domains.base import DOMAINS, get_domain, register_domain, registered_domains
from evolm.llm import BACKENDS, Completion, FakeLLM, LLMBackend, Request, make_backend
from evolm.llm.build import build_backend, parse_llm_spec, spec_forms
from evolm.operators import OPERATORS, make_operator
from evolm.operators.bandit import SELECTORS, Selector, make_selector
from evolm.registry import Registry, RegistryError
from evolm.store import RunStore
from tests.toy_domain import ToyDomain
from tests.user_ext import EchoLLM, Nudge

TOY = "tests.toy_domain:ToyDomain"


# -- the mechanism ----------------------------------------------------------------------------
def test_a_registry_loads_lazily_and_accepts_import_paths() -> None:
    reg: Registry[type[LLMBackend]] = Registry(
        "backend", {"echo": "tests.user_ext:EchoLLM"}, base=LLMBackend
    )
    assert reg.names() == ["echo"] and "echo" in reg and "nope" not in reg
    assert reg.get("echo") is EchoLLM and reg["tests.user_ext:EchoLLM"] is EchoLLM
    with pytest.raises(RegistryError, match=r"unknown backend 'nope'; known backends: echo"):
        reg.get("nope")
    with pytest.raises(RegistryError, match=r"cannot load 'tests\.user_ext:Missing'"):
        reg.get("tests.user_ext:Missing")
    with pytest.raises(RegistryError, match=r"not a subclass of evolm\.llm\.base\.LLMBackend"):
        reg.get("tests.user_ext:Nudge")


def test_importing_the_registries_imports_no_heavy_module() -> None:
    code = (
        "import sys, evolm.llm.build, evolm.domains.base, evolm.config\n"
        "heavy = ('llama_cpp', 'torch', 'vllm', 'openai', 'evolm.domains.sodarace', "
        "'evolm.domains.image')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_parameter_models_forbid_unknown_keys_and_name_them() -> None:
    OPERATORS.check_params("gp", {"mutations": [1, 3]})
    with pytest.raises(ValueError, match=r"operator 'gp'.*bogus"):
        OPERATORS.check_params("gp", {"bogus": 1})
    ARCHIVES.check_params("cvt", {"cells": 8})
    with pytest.raises(ValueError, match=r"archive kind 'cvt'.*bins"):
        ARCHIVES.check_params("cvt", {"cells": 8, "bins": 3})
    with pytest.raises(ValueError, match=r"'tests.user_ext:Nudge'.*scale"):
        OPERATORS.check_params("tests.user_ext:Nudge", {"scale": "big"})


def test_config_kind_lists_are_the_registries() -> None:
    assert list(ARCHIVE_CONFIGS) == ARCHIVES.names()
    assert list(LLM_CONFIGS) == sorted(BACKENDS.names(), key=list(LLM_CONFIGS).index)
    assert set(LLM_CONFIGS) == set(BACKENDS.names())
    for name in BACKENDS.names():
        assert BACKENDS.summary(name) in spec_forms()
    help_text = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        check=True,
    ).stdout
    for name in (*OPERATORS.names(), *SELECTORS.names()):
        assert name in help_text


# -- domains -----------------------------------------------------------------------------------
def test_domains_are_listed_lazily_and_register_domain_still_works() -> None:
    assert {"image", "parity", "sodarace"} <= set(registered_domains())
    assert isinstance(get_domain(TOY, {"n_seeds": 3}), ToyDomain)

    @register_domain("toy-registered")
    class Registered(ToyDomain):
        pass

    try:
        dom = get_domain("toy-registered", {"n_seeds": 1})
        assert isinstance(dom, Registered) and dom.seeds() == ["def f():\n    return 0.5\n"]
    finally:
        DOMAINS._entries.pop("toy-registered")
    with pytest.raises(ValueError, match="bad parameters for domain"):
        get_domain(TOY, {"n_sedes": 3})


# -- config: a key that does not apply to the kind fails at load ------------------------------
@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"archive": {"kind": "cvt", "bins": 4}}, ("archive.bins", "archive kind 'cvt'")),
        ({"archive": {"kind": "best_of_n", "size": 4}}, ("archive.size", "'best_of_n'")),
        ({"llm": {"backend": "fake", "lora": "x"}}, ("llm.lora", "LLM backend 'fake'")),
        ({"llm": {"backend": "openai", "model": "m", "n_ctx": 64}}, ("llm.n_ctx", "'openai'")),
        (
            {"models": [{"backend": "fake", "cassette": "x.db"}]},
            ("models.0.cassette", "LLM backend 'fake'"),
        ),
        ({"operators": [{"kind": "gp", "params": {"rate": 1}}]}, ("operators.0", "rate")),
        ({"llm": {"backend": "replay"}}, ("llm", "needs cassette")),
        ({"llm": {"backend": "vllm"}}, ("llm", "needs model_path")),
        ({"llm": {"backend": "openai"}}, ("llm", "needs model")),
        ({"llm": {"backend": "gpt"}}, ("llm", "unknown LLM backend", "package.module:Class")),
        ({"models": [{"samples_per_prompt": 2}]}, ("models.0.samples_per_prompt",)),
        ({"bandit": {"kind": "greedy"}}, ("bandit.kind", "unknown selector 'greedy'")),
    ],
)
def test_misplaced_keys_fail_at_load_naming_the_key(
    overrides: dict[str, object], needles: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    for needle in needles:
        assert needle in str(info.value)


def test_switching_kind_drops_the_old_kinds_settings() -> None:
    llama = load_config(preset="embedded")
    assert llama.llm.backend == "llama_cpp" and getattr(llama.llm, "lora", None) == "shipped"
    fake = load_config(preset="embedded", overrides={"llm": parse_llm_spec("fake")})
    assert fake.llm.backend == "fake" and not hasattr(fake.llm, "lora")
    assert fake.llm.max_tokens == llama.llm.max_tokens and fake.llm.mode == "completion"
    cvt = load_config(preset="image", overrides={"archive": {"kind": "cvt", "cells": 16}})
    assert cvt.archive.params() == {"cells": 16}
    assert cvt.archive.selection == load_config(preset="image").archive.selection


def test_a_stored_flat_config_still_loads() -> None:
    flat = {
        "archive": {
            "kind": "cvt",
            "bins": 10,
            "cells": 32,
            "per_cell": 4,
            "size": 64,
            "tournament_size": 3,
            "selection": "uniform",
            "qd_offset": None,
        },
        "llm": {
            **{k: None for k in ("model", "model_path", "base_url", "cassette", "lora", "name")},
            **{k: None for k in ("n_ctx", "n_threads", "device", "quantization", "prices")},
            "backend": "fake",
            "weight": 1.0,
            "api_key_env": "OPENAI_API_KEY",
            "mode": "chat",
            "concurrency": 4,
            "samples_per_prompt": 1,
            "max_tokens": 300,
            "temperature": 0.8,
            "top_p": 0.95,
            "repeat_penalty": 1.0,
            "lora_scale": 1.0,
            "token_healing": True,
            "timeout": 120.0,
            "max_retries": 5,
            "latency": 0.0,
            "dtype": "auto",
            "gpu_memory_utilization": 0.9,
            "tensor_parallel_size": 1,
        },
    }
    cfg = load_config(overrides=flat)
    assert cfg.archive.params() == {"cells": 32} and cfg.llm.max_tokens == 300
    again = load_config(overrides=cfg.model_dump(mode="json"))
    assert again == cfg


# -- selectors: a contract over every registered kind ----------------------------------------
@pytest.mark.parametrize("kind", SELECTORS.names())
def test_selector_contract(kind: str) -> None:
    arms = ["a", "b", "c"]

    def play(seed: int) -> list[int]:
        sel = make_selector(arms, kind, weights=[1.0, 2.0, 1.0])
        rng = np.random.default_rng([seed, 0])
        out: list[int] = []
        for batch in range(6):
            chosen = sel.choose(5, rng)
            assert len(chosen) == 5 and all(0 <= i < len(arms) for i in chosen)
            sel.update([(i, 1.0, float(i == 1), 1.0) for i in chosen])
            out += chosen
            assert set(sel.state()) == set(arms), batch
        return out

    assert play(3) == play(3)
    assert isinstance(make_selector(arms, kind), Selector)
    with pytest.raises(ValueError, match="bad parameters"):
        make_selector(arms, kind, bogus=1)
    with pytest.raises(ValueError, match="out of range"):
        make_selector(arms, kind).update([(7, 1.0, 0.0, 0.0)])


# -- backends: a contract over every offline backend --------------------------------------------
@pytest.fixture(scope="module")
def cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real run on the fake backend: its llm_calls answer the replay backend."""
    db = tmp_path_factory.mktemp("cassette") / "fake.db"
    res = evolm.run(
        {
            "domain": {"name": TOY},
            "llm": {"backend": "fake"},
            "budget": {"llm_calls": 8},
            "engine": {"workers": 1, "batch_size": 4},
        },
        out=db,
    )
    assert res.status == "completed"
    return db


def _recorded(db: Path) -> list[Request]:
    with RunStore(db, readonly=True) as store:
        return [store.llm_call(i)[0] for i in range(1, 5)]


def _failing_fake() -> LLMBackend:
    def responder(request: Request) -> str:
        raise RuntimeError("no answer")

    return FakeLLM(responder=responder)


BACKEND_CASES: dict[str, Callable[[Path], tuple[LLMBackend, LLMBackend]]] = {
    # name -> (a fresh backend, one whose answers fail)
    "fake": lambda db: (make_backend("fake"), _failing_fake()),
    "replay": lambda db: (make_backend(f"replay:{db}"), make_backend(f"replay:{db}")),
    "tests.user_ext:EchoLLM": lambda db: (
        make_backend("tests.user_ext:EchoLLM", offset=1.0),
        make_backend("tests.user_ext:EchoLLM"),
    ),
}


def test_every_offline_backend_has_a_contract_case() -> None:
    offline = {n for n in BACKENDS.names() if n in ("fake", "replay")}
    assert offline <= set(BACKEND_CASES)


@pytest.mark.parametrize("name", list(BACKEND_CASES))
def test_backend_contract(name: str, cassette: Path) -> None:
    requests = _recorded(cassette)

    def answers() -> list[Completion]:
        backend = BACKEND_CASES[name](cassette)[0]
        out = asyncio.run(backend.generate(requests))
        asyncio.run(backend.aclose())
        return out

    first, second = answers(), answers()
    assert [c.text for c in first] == [c.text for c in second]  # same requests and seeds
    assert all(c.ok and c.text and c.model for c in first)
    assert all(c.tokens_in >= 0 and c.tokens_out >= 0 and c.cost >= 0 for c in first)


@pytest.mark.parametrize("name", list(BACKEND_CASES))
def test_backend_failures_are_values(name: str, cassette: Path, tmp_path: Path) -> None:
    request = Request(messages=({"role": "user", "content": "FAIL on purpose"},), seed=1)
    if name == "replay":  # a recorded failure is replayed as a failure
        db = tmp_path / "failed.db"
        db.write_bytes(cassette.read_bytes())
        with RunStore(db) as store:
            store.add_llm_call(0, request, Completion(text="", model="m", error="boom"))
        backend = make_backend(f"replay:{db}")
    else:
        backend = BACKEND_CASES[name](cassette)[1]
    (answer,) = asyncio.run(backend.generate([request]))
    assert not answer.ok and answer.text == "" and answer.error


# -- user extensions in a real run ------------------------------------------------------------
def test_user_operator_and_backend_run_through_the_sandbox(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    res = evolm.run(
        {
            "domain": {"name": TOY},
            "seed": 1,
            "llm": {
                "backend": "tests.user_ext:EchoLLM",
                "model": "echo-1",
                "params": {"offset": 0.5},
            },
            "operators": [
                {"kind": "prompt_mutation"},
                {"kind": "tests.user_ext:Nudge", "name": "nudge", "params": {"scale": 0.5}},
            ],
            "budget": {"evaluations": 24},
            "engine": {"workers": 1},
        },
        out=db,
    )
    assert res.status == "completed"
    with sqlite3.connect(db) as conn:
        rows = dict(
            ((op, model), n)
            for op, model, n in conn.execute(
                "SELECT p.operator, p.model, count(*) FROM programs p "
                "JOIN evaluations e ON e.program_id = p.id WHERE e.status = 'ok' GROUP BY 1, 2"
            )
        )
    assert rows.get(("nudge", None), 0) > 0
    assert rows.get(("prompt_mutation", "echo-1"), 0) > 0
    assert set(rows) == {("seed", None), ("nudge", None), ("prompt_mutation", "echo-1")}


def test_user_backend_from_the_config_gets_its_params_and_the_run_seed() -> None:
    cfg = load_config(
        overrides={
            "seed": 5,
            "llm": {"backend": "tests.user_ext:EchoLLM", "params": {"offset": 2.0}},
        }
    )
    assert isinstance(cfg.llm, CustomLLMConfig)
    backend = build_backend(cfg)
    assert isinstance(backend, EchoLLM) and backend.offset == 2.0 and backend.model == "echo"
    with pytest.raises(ConfigError, match=r"params.0|x: not a parameter"):
        load_config(overrides={"llm": {"backend": "tests.user_ext:EchoLLM", "params": {"x": 1}}})
    op = make_operator("tests.user_ext:Nudge", ToyDomain().context(), scale=0.25)
    assert isinstance(op, Nudge) and op.scale == 0.25


def test_set_assignments_reach_the_config_and_bad_ones_name_the_fix() -> None:
    from evolm.config import ConfigError, load_config, parse_assignments

    assert parse_assignments(["a.b=3", "a.c=[1, 2]", "d=two_sum", "e=true", 'f="x y"']) == {
        "a": {"b": 3, "c": [1, 2]},
        "d": "two_sum",
        "e": True,
        "f": "x y",
    }
    cfg = load_config(
        preset="puzzles",
        overrides={"domain": {"name": "puzzles"}},
        assignments=["domain.params.puzzle=two_sum", "llm.temperature=0.5", "seed=7"],
    )
    assert cfg.domain.params["puzzle"] == "two_sum" and cfg.llm.temperature == 0.5
    assert cfg.seed == 7
    for bad, fragment in [
        ("domain.params", "KEY=VALUE"),
        ("a..b=1", "KEY=VALUE"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            parse_assignments([bad])
    with pytest.raises(ConfigError, match="set twice"):
        parse_assignments(["a=1", "a=2"])
    with pytest.raises(ConfigError, match="both as a value and a table"):
        parse_assignments(["a=1", "a.b=2"])
