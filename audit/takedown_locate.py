"""Locating a request: every record it touches, following each match to the record's other keys.

Besides the records, two lookups connect keys a request may name to the records' own: a dataset's
COCO annotations give each COCO image its Flickr URL (a DMCA notice names the Flickr photo), and
its CC-3M TSV (``url_tsv``) gives each ``GCC_train_<line>.jpg`` its source URL. Lookup rows lead
to records; they are never records to remove themselves. A perceptual hash is taken of the
pictures the request names, so a re-encoded or resized copy under a new name is found too.
"""

from __future__ import annotations

import re

import msgspec

from audit.checks.takedown import BlockKey, Blocklist, Candidate, Match, expand, find_matches
from audit.config import Config
from audit.errors import TakedownError
from audit.loaders.coco import load_coco_flickr
from audit.loaders.urlsources import load_url_refs
from audit.models import Progress
from audit.store import Store
from audit.store.ledger import Ledger, Request
from audit.takedown_search import (
    ImageCounts,
    LoadedFile,
    Place,
    dataset_files,
    hash_images,
)
from audit.takedown_units import loaded_units


def lookup_rows(config: Config, loaded: list[LoadedFile], blocklist: Blocklist) -> list[Candidate]:
    """Rows that connect a URL to a record's image: COCO annotations and the CC-3M TSV.

    Read only when a URL key is wanted (an annotation file can be 450 MB): each COCO image's Flickr
    URL under its file name, each TSV line's URL under ``GCC_train_<line>.jpg`` when the dataset's
    records use those names.
    """
    if "url" not in blocklist.kinds():
        return []
    rows: list[Candidate] = []
    for ds in config.datasets:
        if ds.coco_annotations:
            path = config.path(ds.coco_annotations)
            rows += [
                Candidate(dataset=ds.name, file=str(path), index=i, image=name, url=url)
                for i, (name, url) in enumerate(load_coco_flickr(path).items())
            ]
        if ds.url_tsv and _uses_gcc_names(ds.name, loaded):
            path = config.path(ds.url_tsv)
            rows += [
                Candidate(
                    dataset=ds.name,
                    file=str(path),
                    index=ref.index,
                    image=f"GCC_train_{ref.index:09d}.jpg",
                    url=ref.url,
                )
                for ref in load_url_refs(path, ds.url_column)
            ]
    return rows


def _uses_gcc_names(dataset: str, loaded: list[LoadedFile]) -> bool:
    """LLaVA's CC-3M files name images by their line in the CC-3M training TSV."""
    return any(
        c.image is not None and _GCC.fullmatch(c.image.rsplit("/", 1)[-1])
        for f in loaded
        if f.source.dataset == dataset
        for c in f.candidates[:1000]
    )


_GCC = re.compile(r"GCC_train_\d{9}\.jpg")


class SearchedFile(msgspec.Struct, frozen=True, omit_defaults=True):
    """One file a search read: a dataset's records, or a lookup's rows (``role`` ``lookup``)."""

    dataset: str
    role: str
    file: str
    records: int
    rows: int | None = None  # lookup files only: rows lead to records, they are not records


def _lookup_files(rows: list[Candidate]) -> list[SearchedFile]:
    """The lookup files read (rows, not records: the match count does not include them)."""
    counts: dict[tuple[str, str], int] = {}
    for c in rows:
        counts[(c.dataset, c.file)] = counts.get((c.dataset, c.file), 0) + 1
    return [
        SearchedFile(dataset=d, role="lookup", file=f, records=0, rows=n)
        for (d, f), n in counts.items()
    ]


class Located(msgspec.Struct, kw_only=True):
    """What a search found: the matches, the keys followed, and what could not be searched."""

    request_id: str
    matches: list[Match]
    keys: list[BlockKey]
    files: list[SearchedFile]
    images: ImageCounts
    image_files: list[str]  # where the matched records' images are: a file or zip!member
    places: list[Place] = msgspec.field(default_factory=list)  # the same, structured


def locate_request(
    config: Config,
    store: Store,
    ledger: Ledger,
    request: Request,
    progress: Progress,
    applying: bool,
) -> tuple[Located, list[LoadedFile]]:
    """Every record ``request`` touches in every configured file, following matches to the
    records' other keys; ``applying`` also reads raw records and earlier takedowns' keys.

    Every dataset image is hashed (cached by signature), a perceptual hash included, so the
    picture the request names, directly or through a record it matches, finds its re-encoded or
    resized copies too.
    """
    rid = request.request_id
    sources = dataset_files(config)
    if not sources:
        raise TakedownError("no dataset files configured: add [[datasets]] with chat or metadata")
    loaded = list(loaded_units(sources, raw=applying))  # a shard set: keys only, shard by shard
    # Every image is read once for its hashes, the perceptual one included: the picture a request
    # names (directly or through a matched record) is compared with all of them (cached).
    images = hash_images(config, store, loaded, progress, phash=True)
    candidates = [c for f in loaded for c in f.candidates]
    earlier = ledger.blocklist() if applying else []
    own = Blocklist([(k, rid) for k in request.keys], phash_distance=config.takedown.phash_distance)
    lookups = lookup_rows(config, loaded, Blocklist([*own.entries(), *earlier]))
    grown = expand(own, [*candidates, *lookups])
    if applying:  # apply also removes what earlier takedowns put on the blocklist
        for key, other in earlier:
            grown.add(key, other)
    matches = find_matches(grown, candidates)
    where = {(f.source.dataset, str(f.source.path)): f.image_locations for f in loaded}
    places = {
        loc
        for m in matches
        if m.request_id == rid and (loc := where[(m.dataset, m.file)].get(m.index)) is not None
    }
    located = Located(
        request_id=rid,
        matches=matches,
        image_files=sorted(str(p) for p in places),
        places=sorted(places, key=str),
        keys=[k for k, r in grown.entries() if r == rid],
        files=[
            *(
                SearchedFile(
                    dataset=f.source.dataset,
                    role=f.source.role,
                    file=str(f.source.path),
                    records=len(f.candidates),
                )
                for f in loaded
            ),
            *_lookup_files(lookups),
        ],
        images=images,
    )
    return located, loaded
