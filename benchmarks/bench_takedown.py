"""Takedown benchmark: what the blocklist check adds to every nightly audit, and what `match` costs.

Over the full-scale generated files (LCS-558K chat + meta, CC-3M chat + metadata, Instruct-150K;
run ``python -m benchmarks.generate`` first), in one process and one run:
- a bare ``msgspec.json.decode`` of every file (the floor any reader pays),
- ``blocklist_findings`` with an empty ledger (must read nothing),
- ``blocklist_findings`` with one applied request (URL, image path and record id keys),
- ``match`` of a URL request (searches everything and follows the URL to the image name).
Each figure is reported as a ratio to the bare decode. Images are not hashed (no image roots).

    python -m benchmarks.bench_takedown
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from audit import config as config_mod
from audit import takedown
from audit.store import Store
from audit.store.ledgerfile import opened_ledger
from benchmarks import generate

FILES = {
    "lcs": (generate.LCS_CHAT, generate.LCS_META),
    "cc3m": (generate.CC3M_CHAT, generate.CC3M_META),
    "instruct": (generate.INSTRUCT, None),
}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(data: Path = generate.DEFAULT_OUT) -> int:
    missing = [p for pair in FILES.values() for p in pair if p and not (data / p).is_file()]
    if missing:
        print(f"generate the data first (python -m benchmarks.generate): missing {missing}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-takedown-"))
    toml = f'state = "{work}/state.sqlite"\n' + "".join(
        f'[[datasets]]\nname = "{name}"\nchat = "{data / chat}"\n'
        + (f'metadata = "{data / meta}"\n' if meta else "")
        for name, (chat, meta) in FILES.items()
    )
    (work / "audit.toml").write_text(toml, encoding="utf-8")
    config = config_mod.load(work / "audit.toml")
    store = Store(config.path(config.state))
    paths = [data / p for pair in FILES.values() for p in pair if p]

    bare = sum(_timed(lambda p=p: msgspec.json.decode(p.read_bytes()))[0] for p in paths)
    empty, _ = _timed(lambda: takedown.blocklist_findings(config, store))
    head = (data / generate.LCS_META).read_bytes()[:4000]
    meta = json.loads(head[: head.index(b"},") + 1].lstrip(b"[ \n"))
    keys = [("url", meta["url"]), ("image", meta["image"]), ("record_id", meta["id"])]
    rid = takedown.new_request(
        config, store, ground="copyright", requester_contact="bench", identifiers=keys
    ).request_id
    with opened_ledger(config, store) as ledger:
        ledger.record(rid, "blocklisted", summary="bench", blocklist=ledger.get(rid).keys)
    check, result = _timed(lambda: takedown.blocklist_findings(config, store))
    url_rid = takedown.new_request(
        config, store, ground="gdpr", requester_contact="bench", identifiers=keys[:1]
    ).request_id
    matched, located = _timed(lambda: takedown.match(config, store, url_rid))
    report = {
        "records": result.records,
        "bare_decode_s": round(bare, 2),
        "empty_ledger_ratio": round(empty / bare, 4),
        "blocklist_check_ratio": round(check / bare, 2),
        "match_ratio": round(matched / bare, 2),
        "findings": len(result.findings),
        "matched": len(located.matches),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
