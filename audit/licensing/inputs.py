"""The licence stage's inputs that need I/O: records as views, metadata URLs, the COCO and Visual
Genome joins, URL-probe opt-outs.

Provenance and verdicts are pure (`provenance`, `verdicts`); this module only gathers what they need
from files and the state store, so the licence stage has one place that touches the outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from audit.config import LicenseConfig
from audit.licensing.policy import Policy, coco_license_map
from audit.licensing.provenance import RecordView
from audit.licensing.verdicts import LicenceContext
from audit.loaders.coco import load_coco_licences, load_vg_coco_ids
from audit.loaders.records import LoadedFile, load_records
from audit.models import ChatRecord, MetadataRecord
from audit.store import Store

_OPT_OUT_STATUS = "opt_out"


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
    )
    return ctx, urls


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
        url = urls.get(record_id or "") or (urls.get(image) if image else None)
    return RecordView(
        position=index, record_id=record_id, image=image, url=url, instruction=instruction
    )


def metadata_urls(path: str | Path) -> dict[str, str]:
    """Source URL by record id and by image name, from a metadata file (the join for chat files)."""
    loaded = load_records(Path(path))
    urls: dict[str, str] = {}
    for _, record in loaded.items():
        url = getattr(record, "url", None)
        if not isinstance(url, str) or not url:
            continue
        if record.id is not None:
            urls[str(record.id)] = url
        if isinstance(record.image, str) and record.image:
            urls[record.image] = url
    return urls


def opt_out_urls(store: Store | None, urls: Iterable[str]) -> frozenset[str]:
    """URLs whose latest probe saw an X-Robots-Tag opt-out; empty when there is no store or probe."""
    if store is None:
        return frozenset()
    try:
        from audit.store import urls as url_store
    except ImportError:  # the URL probe is optional for the licence stage
        return frozenset()
    statuses = url_store.latest_status(store, urls)
    return frozenset(url for url, status in statuses.items() if status == _OPT_OUT_STATUS)
