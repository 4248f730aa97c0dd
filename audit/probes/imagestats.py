"""The image stage's statistics: counts per status and folder, formats, sizes, a one-line summary."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping

from audit.figures import IMAGE_BROKEN, IMAGE_MISSING
from audit.probes.imagedecode import Outcome
from audit.results import Dimensions, FolderCounts, ImagesResult, Spread


def image_stats(
    uses: Counter[str],
    status_of: dict[str, Outcome],
    outcomes: dict[tuple[str, str], Outcome],
    level: str,
    roots: list[str],
) -> ImagesResult:
    """Counts per record (an image named by 3 records counts 3 times), formats and sizes.

    The result has no findings, timing or cache counts yet: the probe adds those.
    """
    tallies: Counter[tuple[str, str]] = Counter()
    for image, n in uses.items():
        tallies[tally_key(image, status_of[image][0])] += n
    sized = [(o[2], o[3]) for o in outcomes.values() if o[2] is not None and o[3] is not None]
    return stats_from(
        tallies,
        unique_images=len(status_of),
        formats=Counter(o[1] for o in outcomes.values() if o[1]),
        dimensions=Dimensions(
            width=_spread([w for w, _ in sized]), height=_spread([h for _, h in sized])
        )
        if sized
        else None,
        level=level,
        roots=roots,
    )


def tally_key(image: str, status: str) -> tuple[str, str]:
    """What one record adds to the counts: its image's status and folder (mix665k's parts,
    ocr_vqa/images, vg/VG_100K_2, fail differently; "" for a bad path, no place on disk)."""
    if status == "bad_path":
        return (status, "")
    return (status, "/".join(image.split("/")[:-1][:2]) or "." if "/" in image else ".")


def stats_from(
    tallies: Mapping[tuple[str, str], int],
    *,
    unique_images: int,
    formats: Mapping[str, int],
    dimensions: Dimensions | None,
    level: str,
    roots: list[str],
    top: int = 10,
) -> ImagesResult:
    """The stage's counts from its records' :func:`tally_key` tallies and its distinct images'
    formats and sizes (the Spark engine sums the same keys); ties in order of name."""
    by_record: Counter[str] = Counter()
    folders: dict[str, dict[str, int]] = {}
    for (status, folder), n in tallies.items():
        by_record[status] += n
        if status == "bad_path":
            continue  # not a place on disk
        counts = folders.setdefault(folder, {"referenced": 0, "missing": 0, "broken": 0})
        counts["referenced"] += n
        if status in IMAGE_MISSING:
            counts["missing"] += n
        elif status in IMAGE_BROKEN:
            counts["broken"] += n
    problems = sum(n for s, n in by_record.items() if s in IMAGE_MISSING | IMAGE_BROKEN)
    worst = sorted(
        (item for item in folders.items() if item[1]["missing"] + item[1]["broken"]),
        key=lambda item: (-(item[1]["missing"] + item[1]["broken"]), item[0]),
    )
    return ImagesResult(
        level=level,
        roots=roots,
        referenced=by_record.total(),
        unique_images=unique_images,
        status=dict(sorted(by_record.items())),
        formats=dict(sorted(formats.items(), key=lambda kv: (-kv[1], kv[0]))),
        dimensions=dimensions,
        worst_folders={f: FolderCounts(**c) for f, c in worst[:top]}
        if problems - by_record["bad_path"]
        else {},
    )


def _spread(values: list[int]) -> Spread:
    return Spread(min=min(values), median=statistics.median(values), max=max(values))


#: The summary's advice when not one image was found (the CLI prints it on its own line too).
NONE_FOUND_HINT = (
    "not one image was found: are the roots the folders the image paths are relative "
    "to (LLaVA's --image_folder)?"
)


def summary(stats: ImagesResult) -> str:
    status = stats.status
    parts = [f"{status.get('ok', 0):,} ok"] + [
        f"{n:,} {s.replace('_', ' ')}" for s, n in status.items() if s != "ok"
    ]
    fig = stats.figures
    rate_text = (
        f"; {fig.missing:,} missing + {fig.broken:,} broken = {fig.unavailable:,} unavailable "
        f"({fig.unavailable_rate:.1%})"
        if fig.unavailable_rate is not None
        else ""
    )
    if stats.none_found:
        rate_text += "; " + NONE_FOUND_HINT
    return (
        f"{stats.referenced:,} records with an image ({stats.unique_images:,} distinct, "
        f"level {stats.level}): {', '.join(parts)}{rate_text}"
    )
