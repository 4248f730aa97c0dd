"""The one definition of missing, broken and unavailable images, used by every view.

Console, HTML page, ``report.json``, the gate and the expectation table's ``image_available``
all count through :func:`availability` over these status sets, so no two views can disagree.
Foundation layer: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from audit.findings import Code


class _Counts(msgspec.Struct, frozen=True, kw_only=True):
    """A small group of statistics."""


#: A local image is *missing* when no image root has it: not found, or named by a path that
#: leads outside the roots (absolute, ``..``, a symlink out), which is never opened.
IMAGE_MISSING: frozenset[str] = frozenset({"missing", "bad_path", "unsafe_path"})
#: A local image is *broken* when it is there but the trainer cannot use it: empty, truncated,
#: corrupt or undecodable, unreadable (permissions, a FIFO) or a decompression bomb.
IMAGE_BROKEN: frozenset[str] = frozenset(
    {"empty", "truncated", "corrupt", "unreadable", "too_large"}
)
#: The finding codes of those statuses (record by record: the expectation table reads these).
IMAGE_MISSING_CODES: frozenset[str] = frozenset({Code.IMAGE_MISSING, Code.IMAGE_PATH})
IMAGE_BROKEN_CODES: frozenset[str] = frozenset(
    {
        Code.IMAGE_EMPTY,
        Code.IMAGE_TRUNCATED,
        Code.IMAGE_CORRUPT,
        Code.IMAGE_UNREADABLE,
        Code.IMAGE_TOO_LARGE,
    }
)
#: A source URL is *missing* when no image answers there any more (gone, dead, refused by the
#: server, a redirect to a "photo unavailable" placeholder, an invalid URL) ...
URL_MISSING: frozenset[str] = frozenset(
    {
        "gone",
        "forbidden",
        "http_error",
        "server_error",
        "timeout",
        "dns",
        "tls",
        "connection",
        "placeholder",
        "redirects",
        "invalid",
    }
)
#: ... and *broken* when it answers with something that is not a whole image.
URL_BROKEN: frozenset[str] = frozenset({"not_image", "truncated"})
#: URLs this run did not judge (the address guard refused them): in no count or rate.
URL_NOT_JUDGED: frozenset[str] = frozenset({"refused"})


#: The definitions in words, as the report page shows them beside the figures.
AVAILABILITY_TEXT = (
    "Missing: not found under the image roots (or named by a path leading outside them); for a "
    "source URL, no image answers there any more (gone, dead, a placeholder). Broken: present "
    "but empty, truncated, corrupt or undecodable (a URL: not an image, or cut short). "
    "Unavailable = missing + broken: the images the trainer cannot load."
)


class Availability(_Counts, frozen=True):
    """Missing, broken and unavailable images of a dataset, per record.

    The one definition every view uses (console, page, report.json, gate, the expectation
    table's ``image_available``): *unavailable* = *missing* + *broken*, the images the trainer
    cannot load; rates are over ``referenced`` (records with an image, or with a judged URL).
    Build it with :func:`availability` from a stage's per-status counts.
    """

    referenced: int = 0
    missing: int = 0
    broken: int = 0
    unavailable: int = 0
    missing_rate: float | None = None
    unavailable_rate: float | None = None


def availability(
    status: Mapping[str, int],
    missing: frozenset[str],
    broken: frozenset[str],
    not_judged: frozenset[str] = frozenset(),
) -> Availability:
    """The figures from per-record status counts (statuses in neither set are available)."""
    referenced = sum(n for s, n in status.items() if s not in not_judged)
    gone = sum(n for s, n in status.items() if s in missing)
    bad = sum(n for s, n in status.items() if s in broken)
    return Availability(
        referenced=referenced,
        missing=gone,
        broken=bad,
        unavailable=gone + bad,
        missing_rate=round(gone / referenced, 6) if referenced else None,
        unavailable_rate=round((gone + bad) / referenced, 6) if referenced else None,
    )
