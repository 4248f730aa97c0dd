"""llava-audit ``urls`` against img2dataset on one loopback image web (issue 14), pair by pair.

    .venv/bin/python -m benchmarks.bench_urlweb                       # 100K URLs, 3 pairs (~5 min)
    .venv/bin/python -m benchmarks.bench_urlweb --urls 10000 --pairs 1  # quick look
    .venv/bin/python -m benchmarks.bench_urlweb --only audit --audit-rev HEAD~3   # one side only

The web is ``benchmarks/imageweb.py`` in its own process (64 hosts on 127.0.1.1..64, 50 ms per
answer, 30% dead, small JPEGs honouring Range); the URL list is a ``caption<TAB>url`` TSV of
CC-3M-style URLs. Each pair runs both tools on the same URLs, in alternating order (pair 1 audit
first, pair 2 img2dataset first, ...), each from scratch: a fresh state store for llava-audit (so
nothing is cached) and a fresh output folder for img2dataset. Both get the same timeout and no
retries; img2dataset runs at its cheapest (dummy writer, no re-encoding, no EXIF, no hash) with
``--processes`` x ``--threads`` (2 x 128, the best measured here); llava-audit with ``--workers``
requests in flight over its default processes, ``--per-host`` requests per server at a time, its
default 64 KB byte cap (every body here is smaller, so both read whole bodies). Measured per run: wall, CPU of the whole process tree
(``getrusage(RUSAGE_CHILDREN)``), URLs/s, and the server's own CPU (psutil, apart). Printed: a
table pair by pair with wall and CPU ratios (llava-audit / img2dataset) and their medians, the
targets of issue 14 (wall <= 0.67, CPU <= 0.6); written to ``benchmarks/results/urlweb.json``.

llava-audit runs with bytecode, as a pip install has it (a cache under ``benchmarks/data``, filled by
one unmeasured warm-up run). img2dataset runs from ``benchmarks/.venv-img2dataset`` (made on first use from
``benchmarks/envs/img2dataset.txt``, see ``toolenv.py``). ``--audit-rev REV`` runs llava-audit
from ``git archive REV`` instead of the working tree, to measure a committed engine while the tree
holds unfinished work. Every run works in its own folder under ``benchmarks/data/`` (URL list,
snapshot, state stores, img2dataset output), removed at the end: runs on other ports can overlap.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
from rich.table import Table

from benchmarks.harness import ROOT, Bench, Measurement
from benchmarks.toolenv import tool_venv
from benchmarks.webplan import LIVE, WebPlan, plan_urls, write_tsv

DATA = ROOT / "benchmarks" / "data"
AUDIT, I2D = "llava-audit urls", "img2dataset"


class Web:
    """The image web in its own process; its CPU and request counts are read between runs."""

    def __init__(self, plan: WebPlan, port: int, latency: float, nice: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.imageweb", "--hosts", str(plan.hosts),
             "--seed", str(plan.seed), "--port", str(port), "--latency", str(latency)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdin is not None
        ready = self.proc.stdout.readline().split()
        if ready[:1] != ["READY"]:
            self.proc.kill()
            raise SystemExit(f"image web did not start (port {port} in use?): {ready}")
        self.port = int(ready[1])
        self.ps = psutil.Process(self.proc.pid)
        with contextlib.suppress(psutil.AccessDenied):  # not root: normal priority
            self.ps.nice(nice)  # ahead of the tools: answers stay on time when both cores are busy

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stats(self) -> dict[str, Any]:
        """Since the last call: requests per kind, connections, answers per second, lateness."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        stats: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return stats

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def served_line(served: dict[str, Any]) -> str:
    """What the server saw in one run: requests, their shape over time, connections, lateness."""
    per_second: list[int] = served["per_second"]
    total = sum(per_second)
    running, ninety = 0, 0
    for second, count in enumerate(per_second):
        running += count
        if running >= 0.9 * total:
            ninety = second
            break
    last = max((i for i, c in enumerate(per_second) if c), default=0)
    return (
        f"{total:,} requests (peak {max(per_second, default=0):,}/s; from the tool's start, 90% by "
        f"{ninety} s, the last at {last} s), {served['connections']:,} connections, answers late by "
        f"{served['late_ms_mean']:.1f} ms mean / {served['late_ms_max']:.0f} ms max"
    )


def audit_source(rev: str | None, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment that run llava-audit (working tree, or a snapshot)."""
    python = str(ROOT / ".venv" / "bin" / "python")
    env = compiled_env()
    if rev is None:
        return [str(ROOT / ".venv" / "bin" / "llava-audit")], env
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    snapshot = folder / f"src-{sha[:12]}"
    if not (snapshot / "audit").is_dir():
        snapshot.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "audit"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive.stdout, check=True)
    entry = "import sys; from audit.cli import main; sys.exit(main())"
    return [python, "-c", entry], dict(env, PYTHONPATH=str(snapshot))


def compiled_env() -> dict[str, str]:
    """llava-audit's environment with bytecode, as a pip install has it (img2dataset's venv is
    pip-made, compiled): a uv-made .venv has none, and under PYTHONDONTWRITEBYTECODE each of its
    processes would compile its modules from source on every run. The bytecode goes to a cache
    under benchmarks/data (nothing written into .venv or the tree); :func:`warm_up` fills it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(DATA / "pycache")}


def warm_up(ctx: dict[str, Any], work: Path) -> None:
    """One unmeasured llava-audit run on a few URLs: every module a measured run imports (its
    worker processes import a subset of the parent's) is compiled into the bytecode cache."""
    prefix, env = ctx["audit"]
    tsv = work / "warm.tsv"
    with ctx["tsv"].open(encoding="utf-8") as lines:
        tsv.write_text("".join(itertools.islice(lines, 20)), encoding="utf-8")
    subprocess.run(
        [*prefix, "urls", str(tsv), "--config", str(ctx["config"]), "--state", str(work / "warm.sqlite")],
        env=env, capture_output=True, check=False, timeout=600,
    )  # fmt: skip


def audit_config(folder: Path, args: argparse.Namespace) -> Path:
    """The [urls] settings: loopback allowed, the benchmark's threads, per-server slots, timeout."""
    path = folder / "audit.toml"
    path.write_text(
        "[urls]\nallow_private = true\n"
        f"workers = {args.workers}\nper_host = {args.per_host}\nprocesses = {args.audit_processes}\n"
        f"retries = 0\ntimeout_seconds = {float(args.timeout)}\n",
        encoding="utf-8",
    )
    return path


def i2d_argv(bin_dir: Path, tsv: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """img2dataset doing the least it can: fetch, check X-Robots-Tag, count, write nothing."""
    options = {
        "url_list": tsv, "input_format": "tsv", "url_col": "url", "output_format": "dummy",
        "output_folder": out, "processes_count": args.processes, "thread_count": args.threads,
        "number_sample_per_shard": args.shard or -(-args.urls // args.processes), "retries": 0, "timeout": args.timeout,
        "resize_mode": "no", "disable_all_reencoding": True, "extract_exif": False,
        "compute_hash": None, "enable_wandb": False, "distributor": "multiprocessing",
    }  # fmt: skip
    return [str(bin_dir / "img2dataset"), *(f"--{k}={v}" for k, v in options.items())]


def audit_outcome(findings: Path) -> dict[str, int]:
    codes = Counter(json.loads(line)["code"] for line in findings.open(encoding="utf-8"))
    codes.pop("url.stats", None)
    return dict(codes)


def i2d_outcome(out: Path) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for stats in out.glob("*_stats.json"):
        data = json.loads(stats.read_text(encoding="utf-8"))
        totals.update({k: data[k] for k in ("count", "successes", "failed_to_download")})
    return dict(totals)


def run_tool(
    bench: Bench, web: Web, tool: str, pair: int, work: Path, ctx: dict[str, Any]
) -> dict[str, Any]:
    """One measured run of ``tool`` from scratch; returns its row for the pair table."""
    run_dir = work / f"{'audit' if tool == AUDIT else 'i2d'}-{pair}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    if tool == AUDIT:
        prefix, env = ctx["audit"]
        argv = [*prefix, "urls", str(ctx["tsv"]), "--column", "url", "--config", str(ctx["config"]),
                "--state", str(run_dir / "state.sqlite"), "--findings", str(run_dir / "findings.jsonl")]  # fmt: skip
    else:
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled")
        argv = i2d_argv(ctx["i2d_bin"], ctx["tsv"], run_dir / "out", ctx["args"])
    web.stats()
    server_before = web.cpu()
    m: Measurement = bench.run(f"{tool} #{pair}", argv, env=env, timeout=3600)
    server_cpu = web.cpu() - server_before
    served = web.stats()
    if m.exit_code not in (0, 1):
        raise SystemExit(f"{tool} failed (exit {m.exit_code}): {m.extra.get('stderr_tail')}")
    if tool == AUDIT:
        outcome = audit_outcome(run_dir / "findings.jsonl")
    else:
        outcome = i2d_outcome(run_dir / "out")
    shutil.rmtree(run_dir, ignore_errors=True)
    urls = ctx["args"].urls
    return {
        "tool": tool, "pair": pair, "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2),
        "urls_per_s": round(urls / m.wall_s), "cpu_ms_per_url": round(1000 * m.cpu_s / urls, 3),
        "server_cpu_s": round(server_cpu, 2), "served": served, "outcome": outcome,
    }  # fmt: skip


def pair_table(rows: list[dict[str, Any]], pairs: int) -> tuple[Table, dict[str, Any]]:
    """The pair-by-pair table (wall, CPU, ratios llava-audit / img2dataset) and the medians."""
    table = Table(title="urlweb: llava-audit urls vs img2dataset, pair by pair")
    for column in ("pair", "first", "audit wall s", "audit CPU s", "i2d wall s", "i2d CPU s",
                   "wall ratio", "CPU ratio", "server CPU s (a / i)"):  # fmt: skip
        table.add_column(column, justify="right")
    wall_ratios, cpu_ratios = [], []
    for pair in range(1, pairs + 1):
        a = next(r for r in rows if r["pair"] == pair and r["tool"] == AUDIT)
        i = next(r for r in rows if r["pair"] == pair and r["tool"] == I2D)
        wall_ratios.append(a["wall_s"] / i["wall_s"])
        cpu_ratios.append(a["cpu_s"] / i["cpu_s"])
        first = "audit" if rows.index(a) < rows.index(i) else "i2d"
        table.add_row(str(pair), first, f"{a['wall_s']:.1f}", f"{a['cpu_s']:.1f}", f"{i['wall_s']:.1f}",
                      f"{i['cpu_s']:.1f}", f"{wall_ratios[-1]:.2f}", f"{cpu_ratios[-1]:.2f}",
                      f"{a['server_cpu_s']:.1f} / {i['server_cpu_s']:.1f}")  # fmt: skip
    medians = {
        "wall_ratio": statistics.median(wall_ratios), "cpu_ratio": statistics.median(cpu_ratios),
        "audit_wall_s": statistics.median(r["wall_s"] for r in rows if r["tool"] == AUDIT),
        "audit_cpu_s": statistics.median(r["cpu_s"] for r in rows if r["tool"] == AUDIT),
        "i2d_wall_s": statistics.median(r["wall_s"] for r in rows if r["tool"] == I2D),
        "i2d_cpu_s": statistics.median(r["cpu_s"] for r in rows if r["tool"] == I2D),
    }  # fmt: skip
    table.add_row("median", "", f"{medians['audit_wall_s']:.1f}", f"{medians['audit_cpu_s']:.1f}",
                  f"{medians['i2d_wall_s']:.1f}", f"{medians['i2d_cpu_s']:.1f}",
                  f"[bold]{medians['wall_ratio']:.2f}[/]", f"[bold]{medians['cpu_ratio']:.2f}[/]", "")  # fmt: skip
    return table, medians


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument(
        "--only", choices=("audit", "img2dataset"), help="run one tool only (no ratios)"
    )
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--timeout", type=int, default=10, help="seconds, both tools")
    parser.add_argument("--server-nice", type=int, default=-5)
    parser.add_argument("--processes", type=int, default=2, help="img2dataset processes")
    parser.add_argument("--threads", type=int, default=128, help="img2dataset threads per process")
    parser.add_argument(
        "--shard", type=int, default=0, help="img2dataset URLs per shard (0: one shard per process)"
    )
    parser.add_argument("--workers", type=int, default=512, help="llava-audit threads in all")
    parser.add_argument("--per-host", type=int, default=8, help="llava-audit requests per server")
    parser.add_argument("--audit-processes", type=int, default=0, help="llava-audit (0: per core)")
    parser.add_argument("--audit-rev", help="run llava-audit from this git revision")
    parser.add_argument("--name", default="urlweb", help="results/<name>.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    plan = WebPlan(hosts=args.hosts, seed=args.seed)
    DATA.mkdir(parents=True, exist_ok=True)
    # private to this run: two runs at once (other ports) must not share a URL list or run folder
    work = Path(tempfile.mkdtemp(prefix=f"urlweb-{args.name}-", dir=DATA))
    tools = {"audit": [AUDIT], "img2dataset": [I2D], None: [AUDIT, I2D]}[args.only]
    web = Web(plan, args.port, args.latency, args.server_nice)
    try:
        tsv = work / "urls.tsv"
        kinds = write_tsv(tsv, plan_urls(plan, args.urls, web.port))
        ctx: dict[str, Any] = {"args": args, "tsv": tsv, "config": audit_config(work, args)}
        if AUDIT in tools:
            ctx["audit"] = audit_source(args.audit_rev, work)
            warm_up(ctx, work)
        if I2D in tools:
            ctx["i2d_bin"] = tool_venv("img2dataset")
        params = {k: v for k, v in vars(args).items() if k != "name"} | {"planned": dict(kinds)}
        bench = Bench(args.name, params=params)
        bench.console.log(
            f"{args.urls:,} URLs, {100 * (1 - kinds[LIVE] / args.urls):.1f}% dead: {dict(kinds)}"
        )
        rows = []
        for pair in range(1, args.pairs + 1):
            order = tools if pair % 2 else tools[::-1]
            for tool in order:
                rows.append(run_tool(bench, web, tool, pair, work, ctx))
                r = rows[-1]
                bench.console.log(
                    f"{tool} #{pair}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                    f"{r['urls_per_s']:,} URLs/s; {r['outcome']}; server {r['server_cpu_s']:.1f} s "
                    f"CPU, {served_line(r['served'])}"
                )
    finally:
        web.close()
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {}
    if len(tools) == 2:
        table, summary = pair_table(rows, args.pairs)
        bench.console.print(table)
        bench.figure(
            "median wall ratio llava-audit / img2dataset", summary["wall_ratio"], target=0.67
        )
        bench.figure("median CPU ratio llava-audit / img2dataset", summary["cpu_ratio"], target=0.6)
    path = bench.finish()
    path.write_text(
        json.dumps(bench.as_dict() | {"runs": rows, "summary": summary}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
