"""The licence stage's inputs that need I/O: records as views, metadata URLs, the COCO and Visual
Genome joins, URL-probe opt-outs.

Provenance and verdicts are pure (`provenance`, `verdicts`); this module only gathers what they need
from files and the state store, so the licence stage has one place that touches the outside.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.config import KINDS, LicenseConfig
from audit.errors import InputError
from audit.licensing.policy import Policy
from audit.licensing.provenance import RecordView, coco_image_id
from audit.licensing.verdicts import LicenceContext
from audit.loaders.coco import load_coco_licences, load_vg_coco_ids
from audit.loaders.imageroots import Location, UnsafePathError, locate, open_roots, read_source
from audit.loaders.records import LoadedFile, detect_kind, load_records
from audit.loaders.urlsources import load_url_refs
from audit.models import ChatRecord, MetadataRecord
from audit.store import Store


def licence_inputs(
    policy: Policy,
    settings: LicenseConfig,
    image_origin: str,
    *,
    coco_annotations: str | Path | None,
    metadata: str | Path | None,
    vg_image_data: str | Path | None,
) -> tuple[LicenceContext, dict[str, str] | None]:
    """The evaluator's context (COCO per-image licences, VG-to-COCO ids) and the metadata URL join.

    Files are read in this order, so the first unreadable one is the error: COCO, metadata, VG.
    """
    coco = load_coco_licences(coco_annotations) if coco_annotations else None
    urls = metadata_urls(metadata) if metadata else None
    ctx = LicenceContext(
        policy=policy,
        settings=settings,
        image_origin=image_origin,
        coco_licenses=coco_license_map(policy, coco.licenses) if coco else None,
        coco_license_names=coco.licenses if coco else {},
        coco_images=coco.images if coco else None,
        vg_coco_ids=load_vg_coco_ids(vg_image_data) if vg_image_data else None,
        coco_sizes=coco.sizes if coco else {},
    )
    return ctx, urls


@dataclass(frozen=True)
class RecordSource:
    """What one reader reads: a whole file, or one shard of a set (the descriptor the Spark
    engine sends to an executor, which reads the records itself)."""

    path: str
    kind: str
    dataset: str
    shard: bool = False


def record_sources(
    path: Path, kind: str | None, dataset: str | None
) -> tuple[list[RecordSource], str]:
    """The units of one input and its kind: each shard of a set (in :func:`expand` order), else
    the file itself. Only the kind is read here (a sample of records), never the records."""
    from audit.loaders.shards import expand, is_shard_set, set_name

    if kind is not None and kind not in KINDS:
        raise InputError(str(path), f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if path.suffix.lower() == ".tsv":  # the CC-3M TSV: caption<TAB>url, one record per line
        return [RecordSource(str(path), "cc3m-tsv", dataset or path.stem)], "cc3m-tsv"
    if is_shard_set(path):
        from audit.loaders.shardread import shard_kind

        name = dataset or set_name(path)
        shards = expand(path)
        kind = kind or shard_kind(shards[0], name).kind
        return [RecordSource(str(s), kind, name, shard=True) for s in shards], kind
    kind = kind or detect_kind(path)
    return [RecordSource(str(path), kind, dataset or path.stem)], kind


def read_unit(
    unit: RecordSource, urls: dict[str, str] | None, preloaded: LoadedFile | None = None
) -> tuple[Callable[[], Iterator[RecordView]], int, int]:
    """A unit's records as views (re-iterable), their count, and the unit's elements (records
    and unusable ones). ``preloaded`` is the file already loaded by the run, if it is this one."""
    if unit.kind == "cc3m-tsv":
        tsv = list(tsv_views(Path(unit.path)))
        return lambda: iter(tsv), len(tsv), len(tsv)
    if preloaded is not None and not unit.shard and preloaded.path == Path(unit.path):
        loaded = preloaded
    else:
        loaded = load_unit(unit)
    return lambda: record_views(loaded, urls), len(loaded.records), loaded.total


def load_unit(unit: RecordSource) -> LoadedFile:
    """A unit's typed records: a shard through the shard reader, a file through the JSON one."""
    path = Path(unit.path)
    if unit.shard:
        from audit.loaders.shardread import load_shard

        return load_shard(path, unit.kind, unit.dataset)
    return load_records(path, unit.kind, dataset=unit.dataset)


def record_views(loaded: LoadedFile, urls: dict[str, str] | None = None) -> Iterator[RecordView]:
    """One view per loaded record; chat records get their URL from the metadata join when given."""
    for index, record in loaded.items():
        yield _view(index, record, urls)


def _view(index: int, record: Any, urls: dict[str, str] | None) -> RecordView:
    record_id = None if getattr(record, "id", None) is None else str(record.id)
    image = getattr(record, "image", None)
    image = image if isinstance(image, str) else None
    if isinstance(record, MetadataRecord):
        return RecordView(
            position=index,
            record_id=record_id,
            image=image,
            url=record.url if isinstance(record.url, str) and record.url else None,
            blip_caption=bool(record.blip_caption),
        )
    instruction = ""
    if isinstance(record, ChatRecord) and record.conversations:
        first = record.conversations[0]
        instruction = first.value if first.from_ == "human" else ""
    url = None
    if urls:
        url = next((u for key in join_keys(record_id, image) if (u := urls.get(key))), None)
    return RecordView(
        position=index, record_id=record_id, image=image, url=url, instruction=instruction
    )


def tsv_views(path: Path) -> Iterator[RecordView]:
    """The CC-3M TSV (caption<TAB>url, no header): one record per line, its id the line number."""
    for ref in load_url_refs(path):
        record_id = ref.record_id if ref.record_id is not None else str(ref.index)
        yield RecordView(position=ref.index, record_id=record_id, image=None, url=ref.url)


def derivatives(
    views: Iterable[RecordView],
    sizes: Mapping[int, tuple[int, int]],
    roots: Sequence[str | Path],
    store: Store | None = None,
) -> dict[int, str]:
    """Record position -> why its COCO image is not the original: its size differs from COCO's.

    The size comes from the image probe's cache when it saw the same file, else from the image
    header. Images that are missing, unreadable or not COCO's are left out: the tool cannot tell.
    """
    found: dict[int, str] = {}
    opened = open_roots(roots)
    for view in views:
        coco_id = coco_image_id(view.image) if view.image else None
        expected = sizes.get(coco_id) if coco_id is not None else None
        if expected is None or view.image is None:
            continue
        try:
            loc = locate(opened, view.image)
        except UnsafePathError:
            continue
        actual = _size(loc, store) if loc is not None and not loc.problem else None
        if actual is not None and actual != expected:
            found[view.position] = (
                f"image {view.image} is {actual[0]}x{actual[1]} but COCO records "
                f"{expected[0]}x{expected[1]} for image {coco_id}: resized or re-encoded, so a "
                "derivative (no-derivatives licences forbid redistributing it)"
            )
    return found


def _size(loc: Location, store: Store | None) -> tuple[int, int] | None:
    """Width and height: the image probe's cached result for this exact file, else the header."""
    if store is not None:
        from audit.store import images as image_store

        row = image_store.lookup(store, loc.root, [loc.name]).get(loc.name)
        if row is not None and row[1] == loc.signature and row[5] and row[6]:
            return (row[5], row[6])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(read_source(loc.source))) as im:
            return im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def metadata_urls(path: str | Path) -> dict[str, str]:
    """Source URL by record id and by image name, from a metadata file (the join for chat files);
    a shard set is read a shard at a time (only the join is held, never all its records)."""
    from audit.loaders.shards import expand, is_shard_set

    if not is_shard_set(path):
        return dict(url_pairs(load_records(Path(path))))
    urls: dict[str, str] = {}
    for shard in expand(path):
        urls.update(url_pairs(load_records(shard)))
    return urls


def url_pairs(loaded: LoadedFile) -> Iterator[tuple[str, str]]:
    """(record id or image name, source URL) of each metadata record in order: the join's
    entries, a later one replacing an earlier one of the same key."""
    for _, record in loaded.items():
        url = getattr(record, "url", None)
        if not isinstance(url, str) or not url:
            continue
        if record.id is not None:
            yield str(record.id), url
        if isinstance(record.image, str) and record.image:
            yield record.image, url


def join_keys(record_id: str | None, image: str | None) -> tuple[str, ...]:
    """The keys a chat record looks its URL up by in the metadata join, first match wins."""
    return (record_id or "", image) if image else (record_id or "",)


def opt_out_urls(store: Store | None, urls: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """URL -> the opt-out kinds the latest URL run saw on it; empty when there is no store or probe.

    Kinds: ``x-robots-tag`` (noai / noimageai), ``tdm-reservation`` (the TDMRep header),
    ``tdmrep-json`` (the origin's /.well-known/tdmrep.json) and ``robots-txt`` (a Disallow for an
    AI-training agent); the policy's ``[signals.kinds]`` maps each kind to its restriction.
    """
    if store is None:
        return {}
    try:
        from audit.store import urls as url_store
    except ImportError:  # the URL probe is optional for the licence stage
        return {}
    return url_store.opt_out_kinds(store, urls)


def all_opt_outs(store: Store | None) -> dict[str, tuple[str, ...]]:
    """Every opted-out URL the store knows -> its kinds (what :func:`opt_out_urls` gives any
    file's URLs), for an engine whose workers read the records and cannot reach the store."""
    if store is None:
        return {}
    try:
        from audit.store import urls as url_store
    except ImportError:  # the URL probe is optional for the licence stage
        return {}
    return url_store.opt_out_kinds(store, url_store.opted_out_urls(store))


def coco_license_map(policy: Policy, file_licenses: dict[int, tuple[str, str]]) -> dict[int, str]:
    """COCO licence id -> SPDX/LicenseRef id, by the licence URL in the file, else by the policy's id map.

    Matching the URL first keeps the join right for COCO-format files whose ids differ from COCO's.
    Ids that match neither resolve to NOASSERTION (never allowed).
    """
    by_url = {_norm_url(u): term_id for term_id, t in policy.licenses.items() for u in t.urls}
    mapping: dict[int, str] = {}
    for coco_id, (_name, url) in file_licenses.items():
        mapping[coco_id] = (
            by_url.get(_norm_url(url)) or policy.coco.license_ids.get(str(coco_id)) or "NOASSERTION"
        )
    return mapping


def _norm_url(url: str) -> str:
    u = url.strip().lower().removeprefix("https://").removeprefix("http://").removeprefix("www.")
    return u.rstrip("/")
