"""`aios serve` vs. the llama-cpp-python OpenAI server: same model, machine and load, one run.

What a user would run instead of aios is ``python -m llama_cpp.server`` on the same GGUF. This
script starts both on free loopback ports (the Gemma 3 270M file the reference config
resolves, the same ``n_ctx``, threads and batch size; aios on the embedded reference config
plus one ``[[apps]]`` entry whose token it generates), waits until both answer, warms both up
(model load excluded), and then, for 1, 4 and 8 concurrent clients, has every client send
streaming ``/v1/completions`` requests back to back (the same prompts, ``max_tokens``,
``temperature=0`` and model on both; the bearer token for aios). Each concurrency level runs in
rounds that alternate which server goes first, so the machine's noise is shared fairly.

Measured per request: time to the first text chunk (TTFT), total latency, text chunks received
(one per generated token on both servers) and whether the stream ended with a finish reason.
Per server and level: generated tokens/s and requests/s (summed tokens over summed wall time of
the rounds), p50/p99 latency and p99 TTFT (nearest rank), and the ratios aios/llama.
Target (issue 6): at 4+ clients aios has at least llama_cpp.server's throughput and a lower
p99 latency.

Run from the repository root with the aios venv active::

    python bench/service_vs_llama_server.py [--json] [--levels 1 4 8] [--rounds 2]
        [--requests-per-round 16] [--tokens 48] [--llama-interrupt]

``--json`` prints exactly one JSON object on stdout; progress and the table go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import err, percentile

from aios.config.loader import load_config
from aios.sources import model_dir, resolve

MODEL = "gemma3-270m"
# Story openings: a base model keeps going, so every request reaches max_tokens.
PROMPTS = (
    "Once upon a time, in a small village at the edge of a great forest, there lived",
    "The old lighthouse keeper climbed the stairs one last time and looked out at",
    "When the train stopped in the middle of the desert, the passengers",
    "My grandmother kept a box of letters under her bed, and one rainy afternoon",
)
TARGET_FROM = 4  # the target applies at this many clients and more

CONCURRENCY_NOTE = """\
What each server does with concurrent requests (both hold one llama.cpp context per model,
which runs one generation at a time):
  llama_cpp.server: every request takes a pair of anyio locks (outer, then inner) around the
    model for its whole stream, so requests run one at a time in arrival order. With its
    default interrupt_requests=True, a request waiting on the lock makes the running stream
    stop early with [DONE] (no finish reason): under concurrency clients get cut-off answers.
    This run uses {interrupt}.
  aios serve: each loaded model has a gate with capacity 1 (llama.cpp) and a fair queue
    (foreground before background, apps take turns, each app's requests in order; up to
    max_queue=32 waiting, then 503 queue_full); a waiting request streams nothing until it
    gets the slot, and the running one always finishes."""


@dataclass
class Sample:
    ttft_s: float
    latency_s: float
    tokens: int
    complete: bool  # the stream carried a finish reason (llama_cpp.server may cut it short)


@dataclass
class Tally:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        s = self.samples
        tokens = sum(x.tokens for x in s)
        out: dict[str, Any] = {
            "requests": len(s),
            "errors": len(self.errors),
            "incomplete": sum(not x.complete for x in s),
            "tokens": tokens,
            "tok_s": round(tokens / self.wall_s, 3) if self.wall_s else 0.0,
            "req_s": round(len(s) / self.wall_s, 4) if self.wall_s else 0.0,
        }
        if s:
            lat = [x.latency_s for x in s]
            ttft = [x.ttft_s for x in s]
            out |= {
                "p50_s": round(percentile(lat, 50), 4),
                "p99_s": round(percentile(lat, 99), 4),
                "ttft_p50_s": round(percentile(ttft, 50), 4),
                "ttft_p99_s": round(percentile(ttft, 99), 4),
            }
        return out


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[Any]
    log: Path
    headers: dict[str, str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fail(name: str, log: Path, why: str) -> RuntimeError:
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.exists() else ""
    return RuntimeError(f"{name} did not start: {why}\n{tail}")


def start_llama(path: Path, n_ctx: int, threads: int, interrupt: bool, tmp: Path) -> Server:
    port = free_port()
    log = tmp / "llama_server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_batch",
        "512",
        "--n_threads",  # its default is half the cores; aios uses all of them
        str(threads),
        "--n_threads_batch",  # what aios's Llama(...) gets by default: all cores
        str(os.cpu_count() or 1),
        "--interrupt_requests",
        str(interrupt),
        "--verbose",  # aios keeps llama.cpp quiet too (its log goes to structlog at debug)
        "False",
    ]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    server = Server("llama_cpp.server", f"http://127.0.0.1:{port}", proc, log, {})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _fail(server.name, log, f"exited with {proc.returncode}")
        try:
            if httpx.get(server.url + "/v1/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise _fail(server.name, log, "not ready after 120 s")


def start_aios(token: str, threads: int | None, tmp: Path) -> Server:
    from aios.service.launch import app_toml, reference_toml, spawn

    reference = reference_toml()
    if threads is not None:  # the model entry's own `threads` (default: all cores)
        reference, n = re.subn(
            rf'^id = "{MODEL}"\n', f'id = "{MODEL}"\nthreads = {threads}\n', reference, flags=re.M
        )
        assert n == 1, f"model {MODEL} not found in reference.toml"
    apps = app_toml(
        "bench",
        token,
        ["*"],
        data_classes=["text", "documents"],
        requests_per_minute=100000,
        max_concurrent=64,
    )
    cfg = tmp / "oem.toml"
    cfg.write_text(f'{reference}\n[service]\napps_file = "{tmp / "apps.toml"}"\n\n{apps}')
    svc = spawn(cfg, tmp, args=("--host", "127.0.0.1"))
    headers = {"Authorization": f"Bearer {token}"}
    return Server("aios serve", svc.url, svc.proc, svc.log, headers)


async def one_request(
    client: httpx.AsyncClient, server: Server, prompt: str, tokens: int
) -> Sample:
    body = {
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
    }
    t0 = time.perf_counter()
    ttft = None
    n = 0
    finish = None
    async with client.stream(
        "POST", server.url + "/v1/completions", json=body, headers=server.headers
    ) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode("utf-8", "replace")
            raise RuntimeError(f"{server.name}: HTTP {resp.status_code}: {text[:300]}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # event names, comments (sse-starlette pings), blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"{server.name}: error event: {chunk['error']}")
            record = chunk.get("aios_record")  # aios names the model that really answered
            if record is not None and record.get("model") != MODEL:
                raise RuntimeError(f"{server.name}: answered by {record.get('model')!r}")
            choice = chunk["choices"][0]
            if choice.get("text"):
                n += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
            finish = choice.get("finish_reason") or finish
    latency = time.perf_counter() - t0
    return Sample(ttft if ttft is not None else latency, latency, n, finish is not None)


async def run_level(
    client: httpx.AsyncClient, server: Server, clients: int, per_client: int, tokens: int
) -> Tally:
    """``clients`` closed-loop clients, each sending ``per_client`` requests back to back."""
    tally = Tally()

    async def worker(i: int) -> None:
        for j in range(per_client):
            prompt = PROMPTS[(i + j) % len(PROMPTS)]
            try:
                tally.samples.append(await one_request(client, server, prompt, tokens))
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                tally.errors.append(str(exc))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    tally.wall_s = time.perf_counter() - t0
    return tally


def merge(into: Tally, part: Tally) -> None:
    into.samples += part.samples
    into.errors += part.errors
    into.wall_s += part.wall_s


async def bench(servers: list[Server], args: argparse.Namespace) -> dict[int, dict[str, Tally]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    timeout = httpx.Timeout(600, connect=10)
    results: dict[int, dict[str, Tally]] = {}
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        for s in servers:  # warm-up: loads the model, excluded from the numbers
            w = await one_request(client, s, PROMPTS[0], args.tokens)
            err(f"warm-up {s.name}: {w.latency_s:.2f} s, {w.tokens} tokens")
        for clients in args.levels:
            per_client = max(2, args.requests_per_round // clients)
            totals = {s.name: Tally() for s in servers}
            for r in range(args.rounds):
                order = servers if (r + clients) % 2 == 0 else servers[::-1]
                for s in order:
                    part = await run_level(client, s, clients, per_client, args.tokens)
                    merge(totals[s.name], part)
                    sm = part.summary()
                    err(
                        f"  {clients} clients, round {r + 1}, {s.name:<16} "
                        f"{sm['requests']:>3} req in {part.wall_s:6.1f} s  "
                        f"{sm['tok_s']:6.2f} tok/s  p99 {sm.get('p99_s', 0):6.2f} s"
                        + (f"  {len(part.errors)} errors" if part.errors else "")
                    )
            results[clients] = totals
    return results


def table(results: dict[int, dict[str, Tally]], llama: str, aios: str) -> dict[str, Any]:
    rows = []
    head = (
        f"{'clients':>7} | {'tok/s llama':>11} {'aios':>7} {'ratio':>6} | "
        f"{'req/s llama':>11} {'aios':>6} | {'p50 s llama':>11} {'aios':>6} | "
        f"{'p99 s llama':>11} {'aios':>6} {'ratio':>6} | {'p99 TTFT llama':>14} {'aios':>6} | "
        f"{'cut short l/a':>13} | target"
    )
    err("")
    err(head)
    err("-" * len(head))
    for clients, by in results.items():
        lm, am = by[llama].summary(), by[aios].summary()
        tput = am["tok_s"] / lm["tok_s"] if lm["tok_s"] else float("inf")
        p99 = am.get("p99_s", float("inf")) / lm.get("p99_s", float("inf"))
        applies = clients >= TARGET_FROM
        ok = tput >= 1.0 and p99 < 1.0
        verdict = ("ok" if ok else "MISSED") if applies else "-"
        rows.append(
            {
                "clients": clients,
                "llama_cpp_server": lm,
                "aios": am,
                "tok_s_ratio": round(tput, 4),
                "p99_ratio": round(p99, 4),
                "target_applies": applies,
                "target_met": ok if applies else None,
            }
        )
        err(
            f"{clients:>7} | {lm['tok_s']:>11.2f} {am['tok_s']:>7.2f} {tput:>6.3f} | "
            f"{lm['req_s']:>11.3f} {am['req_s']:>6.3f} | "
            f"{lm.get('p50_s', 0):>11.2f} {am.get('p50_s', 0):>6.2f} | "
            f"{lm.get('p99_s', 0):>11.2f} {am.get('p99_s', 0):>6.2f} {p99:>6.3f} | "
            f"{lm.get('ttft_p99_s', 0):>14.2f} {am.get('ttft_p99_s', 0):>6.2f} | "
            f"{lm['incomplete']:>6}/{am['incomplete']:<6} | {verdict}"
        )
        for name, m in ((llama, lm), (aios, am)):
            if m["errors"]:
                err(f"        {name}: {m['errors']} failed requests: {by[name].errors[0][:200]}")
    err(
        f"ratios are aios/llama_cpp.server; target at {TARGET_FROM}+ clients: tok/s ratio >= 1 "
        "and p99 ratio < 1. 'cut short' = streams that ended without a finish reason."
    )
    return {"levels": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="aios serve vs. python -m llama_cpp.server.")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8], help="concurrent clients")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per level")
    ap.add_argument(
        "--requests-per-round",
        type=int,
        default=16,
        help="requests per server per round, split over the clients (at least 2 each)",
    )
    ap.add_argument("--tokens", type=int, default=48, help="max_tokens per request")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="generation threads for both servers (default: the reference config's, all cores)",
    )
    ap.add_argument(
        "--llama-interrupt",
        action="store_true",
        help="run llama_cpp.server with its default interrupt_requests=True (cuts streams short)",
    )
    args = ap.parse_args(argv)

    config, cfg_path = load_config(None)
    spec = config.model(MODEL)
    base_dir = cfg_path.parent
    path = resolve(spec, base_dir, model_dir(config.storage.model_dir, base_dir))
    threads = args.threads or spec.threads or os.cpu_count() or 1
    err(
        f"model {MODEL}: {path}; n_ctx {spec.context_length}, {threads} threads, "
        f"{args.tokens} tokens per request, temperature 0, {len(PROMPTS)} prompts"
    )
    interrupt = (
        "llama_cpp.server's default interrupt_requests=True"
        if args.llama_interrupt
        else (
            "interrupt_requests=False, so every request gets its whole answer "
            "(--llama-interrupt runs its default)"
        )
    )
    err(CONCURRENCY_NOTE.format(interrupt=interrupt))
    err("")

    started: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="aios-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            llama = start_llama(path, spec.context_length, threads, args.llama_interrupt, tmp)
            started.append(llama)
            aios = start_aios("aios_bench_" + secrets.token_urlsafe(24), args.threads, tmp)
            started.append(aios)
            err(f"{llama.name} on {llama.url}, {aios.name} on {aios.url}")
            t0 = time.perf_counter()
            results = asyncio.run(bench([llama, aios], args))
            summary = table(results, llama.name, aios.name)
            err(f"benchmark took {time.perf_counter() - t0:.0f} s")
        finally:
            for s in started:
                s.stop()
    summary |= {
        "model": MODEL,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "requests_per_round": args.requests_per_round,
        "threads": threads,
        "llama_interrupt_requests": args.llama_interrupt,
        "target": f"at {TARGET_FROM}+ clients: aios tok/s >= llama_cpp.server's, lower p99",
        "target_met": all(r["target_met"] for r in summary["levels"] if r["target_applies"]),
    }
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
