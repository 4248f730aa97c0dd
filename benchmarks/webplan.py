"""What the loopback image web of ``bench_urlweb`` holds (issue 14): hosts, URLs and their fates.

A pure function of the seed: ``WebPlan.kind`` tells what a URL path answers, so the URL list
(``plan_urls``, written as a TSV by ``write_tsv``) and the server (``imageweb.py``) agree without
sharing a file, and a test can check every answer against the plan. Hosts are 127.0.1.1 ..
127.0.1.<hosts> (Linux routes all of 127/8 to the loopback interface).

Dead URLs, as a crawl of CC-3M meets them (30% in all by default): two whole hosts refuse
connections (nothing listens on their address: a dead site), and on the others 404 (most), 410,
a connection reset after the request and a few requests never answered (the client's timeout ends
them). Paths take the shapes of CC-3M's big sources (WordPress uploads, Pinterest, Blogspot, stock
photos with a query string, a news site); captions are CC-3M-like word salad.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

LIVE, NOT_FOUND, GONE, RESET, STALL, REFUSED = "ok", "404", "410", "reset", "stall", "refused"
DEAD_KINDS = (NOT_FOUND, GONE, RESET, STALL, REFUSED)

_CAPTION_TEXT = (
    "actor attends the premiere of film person arrives at festival view from the top of mountain "
    "christmas tree in a living room young woman walking on the beach at sunset football player "
    "celebrates scoring goal during match vector illustration of a cartoon cat cityscape at night "
    "with lights old stone bridge over the river portrait of a smiling man wedding cake with flowers "
    "red car parked on the street aerial view of island and ocean kitchen interior with wooden table"
)
_WORDS = tuple(_CAPTION_TEXT.split())


@dataclass(frozen=True)
class WebPlan:
    """Which hosts exist and what every URL path answers; a pure function of the seed."""

    hosts: int = 64
    seed: int = 14
    dead_share: float = 0.30
    refused_hosts: int = 2
    #: shares of all URLs on answering hosts; the rest of the dead share is 404
    gone_share: float = 0.04
    reset_share: float = 0.025
    stall_share: float = 0.001

    def address(self, host: int) -> str:
        """Host numbers are 1-based: 127.0.1.1 .. 127.0.1.<hosts>."""
        return f"127.0.1.{host}"

    @cached_property
    def refused(self) -> frozenset[int]:
        return frozenset(
            random.Random(self.seed).sample(range(1, self.hosts + 1), self.refused_hosts)
        )

    @cached_property
    def _thresholds(self) -> tuple[float, float, float, float]:
        """Cumulative bounds of reset, stall, 410, 404 so that the whole web is ``dead_share`` dead."""
        refused = self.refused_hosts / self.hosts
        dead = (self.dead_share - refused) / (1 - refused)
        reset = self.reset_share
        stall = reset + self.stall_share
        gone = stall + self.gone_share
        if dead < gone:
            raise ValueError("dead_share is below the fixed reset, stall and 410 shares")
        return reset, stall, gone, dead

    def kind(self, target: str | bytes, host: int | None = None) -> str:
        """What the request target (path and query) answers on ``host`` (None: an answering host)."""
        if host is not None and host in self.refused:
            return REFUSED
        raw = target.encode() if isinstance(target, str) else target
        digest = hashlib.blake2b(raw, digest_size=8, key=self.seed.to_bytes(8, "big")).digest()
        u = int.from_bytes(digest, "big") / 2**64
        reset, stall, gone, dead = self._thresholds
        if u < reset:
            return RESET
        if u < stall:
            return STALL
        if u < gone:
            return GONE
        return NOT_FOUND if u < dead else LIVE


def _token(rng: random.Random, alphabet: str, size: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


_HEX = "0123456789abcdef"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _path(rng: random.Random, style: int) -> str:
    """A path in the shape of one of CC-3M's big sources (WordPress, Pinterest, Blogspot, ...)."""
    slug = "-".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6)))
    if style == 0:  # WordPress uploads
        year, month = rng.randint(2009, 2018), rng.randint(1, 12)
        size = rng.choice(("1024x768", "600x400", "300x225", "768x1024"))
        return f"/wp-content/uploads/{year}/{month:02d}/{slug}-{_token(rng, _HEX, 6)}-{size}.jpg"
    if style == 1:  # Pinterest
        h = _token(rng, _HEX, 32)
        return f"/736x/{h[:2]}/{h[2:4]}/{h[4:6]}/{h}.jpg"
    if style == 2:  # Blogspot / googleusercontent
        parts = "/".join(_token(rng, _B64, 11) for _ in range(3))
        return f"/-{parts}/AAAAAAAA{_token(rng, _B64, 3)}/s1600/{slug}.JPG"
    if style == 3:  # stock photo with a query string
        pid = rng.randint(10**8, 10**9 - 1)
        return f"/photos/{slug}-picture-id{pid}?k=6&m={pid}&s=612x612&w=0&h={_token(rng, _B64, 20)}"
    # news site
    y, m, d = rng.randint(2010, 2018), rng.randint(1, 12), rng.randint(1, 28)
    stamp = rng.randint(10**12, 10**13 - 1)
    return f"/i/pix/{y}/{m:02d}/{d:02d}/{_token(rng, _HEX, 8)}-0-image-a-{rng.randint(1, 99)}_{stamp}.jpg"


def plan_urls(plan: WebPlan, count: int, port: int) -> Iterator[tuple[str, str, str]]:
    """``count`` distinct (caption, url, kind), hosts drawn uniformly, deterministic by seed."""
    rng = random.Random(plan.seed * 1_000_003 + count)
    seen: set[str] = set()
    while len(seen) < count:
        host = rng.randint(1, plan.hosts)
        target = _path(rng, host % 5)
        url = f"http://{plan.address(host)}:{port}{target}"
        if url in seen:
            continue
        seen.add(url)
        caption = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 14)))
        yield caption, url, plan.kind(target, host)


def write_tsv(path: Path, rows: Iterator[tuple[str, str, str]]) -> Counter[str]:
    """The URL list as a TSV with a ``caption<TAB>url`` header (img2dataset and ``urls --column url``
    read it); returns how many URLs of each kind it holds."""
    kinds: Counter[str] = Counter()
    with path.open("w", encoding="utf-8") as out:
        out.write("caption\turl\n")
        for caption, url, kind in rows:
            out.write(f"{caption}\t{url}\n")
            kinds[kind] += 1
    return kinds
