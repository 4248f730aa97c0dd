"""Hints for when a result says more about the setup than about the data.

When most source URLs fail their DNS lookup the machine most likely has no network, and when most
local images are missing the image roots are most likely the wrong folders. Pure functions of a
stage's counts (foundation layer: no I/O, no imports), so the CLI prints them and the report can
show the same sentence from the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

MOSTLY = 0.5  # more than this share of the items must fail the same way for a hint


def _most(part: int, whole: int) -> bool:
    return whole > 0 and part / whole > MOSTLY


def dns_hint(dns_failed: int, urls: int) -> str | None:
    """``no network?`` when more than half of ``urls`` (the URLs judged) failed DNS lookup."""
    if not _most(dns_failed, urls):
        return None
    return f"no network? {dns_failed:,} of {urls:,} URLs failed DNS lookup"


def missing_images_hint(missing: int, referenced: int, roots: Sequence[str]) -> str | None:
    """``is --root right?`` when more than half of the ``referenced`` images are missing."""
    if not _most(missing, referenced):
        return None
    where = ", ".join(roots) or "no root"
    return f"is --root right? {missing:,} of {referenced:,} images missing under {where}"
