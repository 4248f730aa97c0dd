"""The image stage's statistics: counts per status and folder, formats, sizes, a one-line summary."""

from __future__ import annotations

import statistics
from collections import Counter

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
    by_record: Counter[str] = Counter()
    for image, n in uses.items():
        by_record[status_of[image][0]] += n
    referenced = uses.total()
    problems = sum(n for s, n in by_record.items() if s in IMAGE_MISSING | IMAGE_BROKEN)
    on_disk = problems - by_record["bad_path"]
    sized = [(o[2], o[3]) for o in outcomes.values() if o[2] is not None and o[3] is not None]
    return ImagesResult(
        level=level,
        roots=roots,
        referenced=referenced,
        unique_images=len(status_of),
        status=dict(sorted(by_record.items())),
        formats=dict(Counter(o[1] for o in outcomes.values() if o[1]).most_common()),
        dimensions=Dimensions(
            width=_spread([w for w, _ in sized]), height=_spread([h for _, h in sized])
        )
        if sized
        else None,
        worst_folders=_worst_folders(uses, status_of) if on_disk else {},
    )


def _worst_folders(
    uses: Counter[str], status_of: dict[str, Outcome], top: int = 10
) -> dict[str, FolderCounts]:
    """Where the problems are: mix665k's parts (ocr_vqa/images, vg/VG_100K_2) fail differently."""
    folders: dict[str, dict[str, int]] = {}
    for image, n in uses.items():
        status = status_of[image][0]
        if status == "bad_path":
            continue  # not a place on disk
        folder = "/".join(image.split("/")[:-1][:2]) or "." if "/" in image else "."
        counts = folders.get(folder)
        if counts is None:
            counts = folders[folder] = {"referenced": 0, "missing": 0, "broken": 0}
        counts["referenced"] += n
        if status in IMAGE_MISSING:
            counts["missing"] += n
        elif status in IMAGE_BROKEN:
            counts["broken"] += n
    worst = sorted(
        (item for item in folders.items() if item[1]["missing"] + item[1]["broken"]),
        key=lambda item: -(item[1]["missing"] + item[1]["broken"]),
    )
    return {folder: FolderCounts(**counts) for folder, counts in worst[:top]}


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
