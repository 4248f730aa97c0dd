"""Record types shared by loaders, checks and probes (no I/O here).

The conversation types are msgspec Structs so the loader's fast path decodes straight into them;
``Turn`` forbids unknown keys so a turn with extra keys falls to the per-record path and is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import msgspec

#: The image folders of LLaVA's instruction mix (mix665k): where a record's image path starts with
#: one of them, the record is from the mix. Both the loader's kind detection and the checks use it.
MIX_PREFIXES = (
    "coco/train2017/",
    "gqa/images/",
    "ocr_vqa/images/",
    "textvqa/train_images/",
    "vg/VG_100K/",
    "vg/VG_100K_2/",
)


class Turn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One conversation turn as LLaVA's trainer reads it."""

    from_: str = msgspec.field(name="from")
    value: str


class ChatRecord(msgspec.Struct, gc=False):
    """A conversation record (instruct, CC-3M chat, LCS-558K, mix665k, generic)."""

    conversations: list[Turn]
    id: str | int | None = None
    image: str | msgspec.UnsetType | None = msgspec.UNSET
    model: str | msgspec.UnsetType | None = msgspec.UNSET


class MetadataRecord(msgspec.Struct, gc=False):
    """A metadata record (CC-3M metadata.json, LCS-558K _meta.json) under the standard key names.

    The loader discovers the file's own key names (e.g. ``image_url``) and maps them here; a field
    the file does not have stays ``None``.
    """

    id: str | int | None = None
    image: str | None = None
    url: str | None = None
    caption: str | None = None
    blip_caption: str | None = None


class ImageRef(msgspec.Struct, frozen=True):
    """A record's reference to a local image, relative to an image root; ``file`` is the shard
    the record is in when its file is a shard set (``index`` is then its position there)."""

    index: int
    record_id: str | None
    image: str
    file: str | None = None


class UrlRef(msgspec.Struct, frozen=True):
    """A record's source URL (metadata files, the CC-3M TSV, or a configured column); ``file``
    is the shard the record is in when its file is a shard set (``index`` is then its position
    there)."""

    index: int
    record_id: str | None
    url: str
    image: str | None = None
    file: str | None = None


class Progress(Protocol):
    """Where long work reports progress; library code never draws bars itself."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


@runtime_checkable
class HostProgress(Protocol):
    """Optional beside :class:`Progress`: a sink that also shows each host's share done (the URL
    stage calls it when the sink has it, so a plain Progress costs nothing per URL)."""

    def hosts(self, totals: Mapping[str, int]) -> None:
        """The URLs to probe per host, once after ``start``."""

    def host_advance(self, host: str) -> None:
        """One URL of ``host`` is done."""


class NoProgress:
    """The default sink: library calls work the same with or without a console."""

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass
