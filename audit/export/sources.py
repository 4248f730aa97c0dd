"""The dataset's source URLs, per record, as the URL stage read them (I/O).

The same files and readers as the URL stage (:func:`audit.probes.urls.sources_for`), named the
way the run's findings name them, so the URL findings join these records exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from audit.config import Config, DatasetConfig
from audit.errors import AuditError
from audit.findings import Finding
from audit.loaders.urlsources import coco_url_refs, load_url_refs
from audit.models import UrlRef
from audit.output.model import Recovery
from audit.probes.urls import sources_for


def url_refs(
    config: Config, ds: DatasetConfig, name: Callable[[str], str]
) -> list[tuple[str, UrlRef]]:
    """``(file as the findings name it, ref)`` for every record with a source URL.

    ``name`` spells a path as the run's findings do (relative to the config's folder).
    """
    out: list[tuple[str, UrlRef]] = []
    for src in sources_for(config, ds):
        refs = (
            coco_url_refs(src.path, src.coco_annotations)
            if src.coco_annotations
            else load_url_refs(src.path, src.column)
        )
        # a shard set's references name their shard, as its findings do
        out += [(name(ref.file or src.path), ref) for ref in refs]
    return out


def dataset_recovery(
    config: Config, ds: DatasetConfig, findings: Iterable[Finding], name: Callable[[str], str]
) -> Recovery | None:
    """The report's recovery counts; None when the dataset has no chat file or URLs unreadable."""
    from audit.export.recovery import BROKEN_IMAGE, UrlRecord, placed_fates, recovery
    from audit.loaders.shards import expand, is_shard_set

    if ds.chat is None:
        return None
    found = list(findings)
    if not any(f.code in BROKEN_IMAGE for f in found):
        return Recovery()
    chat = config.path(ds.chat)
    try:
        # a sharded chat's findings name each shard and the index in it
        shards = expand(chat) if is_shard_set(chat) else []
        refs = url_refs(config, ds, name)
    except AuditError:  # the URL stage reported the unreadable file already
        return None
    chats = {name(str(chat)), *(name(str(shard)) for shard in shards)}
    records = [UrlRecord(file, r.index, r.record_id) for file, r in refs]
    return recovery(placed_fates(chats, found, records))
