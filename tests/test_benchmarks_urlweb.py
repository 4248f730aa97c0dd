"""Smoke test of the image web behind benchmarks/bench_urlweb.py (issue 14), on a few URLs.

No timing (the benchmark measures) and no img2dataset: only that the web answers every URL as its
plan says (so the benchmark's 30% dead are really dead, in the planned ways) and that `urls`
classifies each answer, so the benchmark never times a tool failing for another reason.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.webplan import GONE, LIVE, NOT_FOUND, REFUSED, RESET, STALL, WebPlan, plan_urls

ROOT = Path(__file__).resolve().parents[1]
PLAN = WebPlan(hosts=16, seed=3)
EXPECTED_CODE = {
    LIVE: None,
    NOT_FOUND: "url.dead",
    GONE: "url.dead",
    RESET: "url.connection",
    REFUSED: "url.connection",
    STALL: "url.timeout",
}


@pytest.fixture(scope="module")
def web() -> Iterator[int]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.imageweb",
            "--hosts",
            "16",
            "--seed",
            "3",
            "--port",
            "0",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    ready = server.stdout.readline().split()
    assert ready[:1] == ["READY"]
    yield int(ready[1])
    server.stdin.close()
    server.wait(timeout=30)


def _sample(port: int) -> list[tuple[str, str, str]]:
    """The first 150 planned URLs and the first stalled one (1 in 1,000 URLs stalls)."""
    rows = list(plan_urls(PLAN, 3000, port))
    return [*rows[:150], next(row for row in rows if row[2] == STALL)]


def _fetch(url: str) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Range": "bytes=0-65535"})
    try:
        with urllib.request.urlopen(request, timeout=1.5) as response:
            return str(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return str(exc.code), b""
    except urllib.error.URLError as exc:
        return type(exc.reason).__name__, b""
    except (ConnectionResetError, TimeoutError) as exc:
        return type(exc).__name__, b""


def test_web_answers_every_url_as_planned(web: int) -> None:
    rows = _sample(web)
    kinds = {kind for _, _, kind in rows}
    assert kinds == set(EXPECTED_CODE), kinds  # every fate is in the sample
    assert sum(kind != LIVE for _, _, kind in rows) / len(rows) == pytest.approx(0.3, abs=0.12)
    with ThreadPool(32) as pool:
        answers = pool.map(_fetch, [url for _, url, _ in rows])
    expected = {
        LIVE: "206",
        NOT_FOUND: "404",
        GONE: "410",
        RESET: "ConnectionResetError",
        REFUSED: "ConnectionRefusedError",
        STALL: "TimeoutError",
    }
    bodies = set()
    for (_, url, kind), (got, body) in zip(rows, answers, strict=True):
        assert got == expected[kind], (url, kind, got)
        if kind == LIVE:
            Image.open(io.BytesIO(body)).verify()  # a whole, valid JPEG
            bodies.add(body)
    assert len(bodies) == sum(kind == LIVE for _, _, kind in rows)  # no shared stand-in image


def test_urls_classifies_every_planned_fate(web: int, tmp_path: Path) -> None:
    rows = _sample(web)
    tsv = tmp_path / "urls.tsv"
    tsv.write_text("caption\turl\n" + "".join(f"{c}\t{u}\n" for c, u, _ in rows), encoding="utf-8")
    config = tmp_path / "audit.toml"
    config.write_text("[urls]\nallow_private = true\nretries = 0\ntimeout_seconds = 1.5\n")
    findings = tmp_path / "findings.jsonl"
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "llava-audit"),
            "urls",
            str(tsv),
            "--column",
            "url",
            "--config",
            str(config),
            "--state",
            str(tmp_path / "state.sqlite"),
            "--findings",
            str(findings),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    codes = {}
    for line in findings.read_text(encoding="utf-8").splitlines():
        finding = json.loads(line)
        if finding["code"] != "url.stats":
            codes[finding["index"]] = finding["code"]
    got = {index: codes.get(index) for index in range(len(rows))}
    assert got == {index: EXPECTED_CODE[kind] for index, (_, _, kind) in enumerate(rows)}
