"""Reuse of expectation results when nothing they depend on changed since the last run.

A nightly run on unchanged data must cost a small fraction of the first (DESIGN.md performance);
importing and running Great Expectations costs seconds however small the dataset, so an unchanged
table under an unchanged suite reuses the last result and its Data Docs pages instead. The key
covers every input of the result: the table's content, the suite file, the kind, the dataset and
file names, and the versions of GX and of this tool. Entries live in a folder beside the state
store, one per dataset, replaced atomically.

The pages kept and restored are the ones :func:`offline_pages` rewrote: GX's templates load their
scripts, styles and fonts from CDNs, so they point at the reports folder's shared copy
(:mod:`audit.webassets`) and work without a network; GX's own ``static/`` folder (4 MB, of which
the pages use a favicon) is dropped rather than copied into every run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from audit import __version__, webassets
from audit.atomic import write_atomic
from audit.probes.record_table import FINGERPRINT, RECORD_COLUMNS
from audit.results import ExpectationsResult

if TYPE_CHECKING:
    import pandas

KEY_FILE = "key"
RESULT_FILE = "result.json"
DOCS = "docs"
_FORMAT = "3"  # 2: typed ExpectationsResult; 3: pages linking the shared assets, no static/
GX_STATIC = "static"
#: How GX's site index links a validation or suite page (the rows of its tables, as data).
_INDEX_LINK = re.compile(r"'_table_row_link_path': '([^'\\]+)'")
#: A CDN URL of GX's templates, quoted (an attribute, a CSS url()), longest first so a URL that
#: begins another is never matched inside it.
_CDN_URL = re.compile(
    r"(?<=[\"'])(?:"
    + "|".join(re.escape(u) for u in sorted(webassets.CDN_FILES, key=len, reverse=True))
    + r")(?=[\"'])"
)
_FAVICON = re.compile(r"(?<=[\"'])(?:\./|(?:\.\./)+)static/images/favicon\.ico(?=[\"'])")
#: Subresource-integrity attributes on a script we point at the local copy: the copy has the same
#: bytes (tests check the hashes), and a file:// page cannot fetch a `crossorigin` script at all.
_SRI = r'(<script src="{prefix}/[^"]*")\s+integrity="[^"]*"\s+crossorigin="[^"]*"'


def cache_key(
    table: pandas.DataFrame,
    suite_bytes: bytes,
    *,
    kind: str,
    dataset: str,
    file: str,
    assets: str = "",
) -> str:
    """A digest of everything the stage result depends on (``assets``: the pages' link prefix)."""
    import pandas

    digest = hashlib.blake2b(digest_size=16)
    for part in (_FORMAT, __version__, gx_version(), kind, dataset, file, assets, *table.columns):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(suite_bytes + f"\0{len(table)}\0".encode())
    # The fingerprint hashes each whole record, so the columns read from the record add nothing
    # to the key and are the slow ones to hash (hundreds of thousands of distinct strings).
    covered = RECORD_COLUMNS if FINGERPRINT in table.columns else ()
    for name in table.columns:
        if name == FINGERPRINT:
            digest.update("\0".join(table[name].tolist()).encode("utf-8"))
        elif name not in covered:
            hashed = pandas.util.hash_pandas_object(table[name], index=False)
            digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def load(cache_dir: Path, name: str, key: str) -> ExpectationsResult | None:
    """The cached result for ``name`` if its key matches, else None (never raises)."""
    entry = cache_dir / name
    try:
        if (entry / KEY_FILE).read_text(encoding="ascii") != key:
            return None
        return msgspec.json.decode((entry / RESULT_FILE).read_bytes(), type=ExpectationsResult)
    except (OSError, ValueError, msgspec.DecodeError):
        return None


def restore_docs(cache_dir: Path, name: str, docs_dir: Path) -> bool:
    """Copy the cached Data Docs pages of ``name`` into this run's Data Docs folder."""
    source = cache_dir / name / DOCS
    if not source.is_dir():
        return False
    docs_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir(), key=lambda p: not p.is_dir()):  # pages, then the index
        target = docs_dir / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        elif not target.exists() or _lists_more(item, target, docs_dir):
            shutil.copy2(item, target)
    return True


def _lists_more(cached: Path, current: Path, docs_dir: Path) -> bool:
    """Whether a cached site index should replace this run's: it links more pages, all here.

    Each entry keeps the index as it was when that dataset was saved, listing the datasets
    validated before it in that run; a run that reuses every dataset restores them in turn and
    keeps the fullest index, never one linking a page this run does not have.
    """
    try:
        new = set(_INDEX_LINK.findall(cached.read_text(encoding="utf-8")))
        old = set(_INDEX_LINK.findall(current.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False
    return len(new) > len(old) and all((docs_dir / link).is_file() for link in new)


def save(
    cache_dir: Path, name: str, key: str, result: ExpectationsResult, docs_dir: Path | None
) -> None:
    """Store the result and this dataset's Data Docs pages; a failure only costs the cache."""
    entry = cache_dir / name
    staging = cache_dir / f".{name}.tmp"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / RESULT_FILE).write_bytes(msgspec.json.encode(result))
        if docs_dir is not None and (docs_dir / "index.html").is_file():
            _copy_pages(docs_dir, staging / DOCS, name)
        (staging / KEY_FILE).write_text(key, encoding="ascii")  # last: marks the entry complete
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_pages(docs_dir: Path, target: Path, name: str) -> None:
    """The site's index plus the pages of one dataset (its suite and its validations)."""
    target.mkdir(parents=True)
    shutil.copy2(docs_dir / "index.html", target / "index.html")
    suite_page = docs_dir / "expectations" / f"{name}.html"
    if suite_page.is_file():
        (target / "expectations").mkdir()
        shutil.copy2(suite_page, target / "expectations" / suite_page.name)
    validations = docs_dir / "validations" / name
    if validations.is_dir():
        shutil.copytree(validations, target / "validations" / name)


def offline_pages(docs_dir: Path, assets_dir: Path) -> None:
    """Point every Data Docs page at the shared asset copy in ``assets_dir``; drop ``static/``.

    Run after each GX build (GX re-renders the site's pages and copies ``static/`` every time);
    pages already rewritten are left as they are.
    """
    for page in docs_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        local = offline_html(text, Path(os.path.relpath(assets_dir, page.parent)).as_posix())
        if local != text:
            write_atomic(page, local.encode("utf-8"))
    shutil.rmtree(docs_dir / GX_STATIC, ignore_errors=True)


def offline_html(text: str, prefix: str) -> str:
    """One page with each CDN URL, GX's logo and favicon replaced by ``prefix/<asset file>``."""
    text = _CDN_URL.sub(lambda m: f"{prefix}/{webassets.CDN_FILES[m.group(0)]}", text)
    text = webassets.GX_LOGO_URL.sub(f"{prefix}/{webassets.GX_LOGO}", text)
    text = _FAVICON.sub(f"{prefix}/{webassets.GX_FAVICON}", text)
    return re.sub(_SRI.format(prefix=re.escape(prefix)), r"\1", text)


def gx_version() -> str:
    """The installed Great Expectations version (read from its metadata: no GX import)."""
    try:
        return metadata.version("great_expectations")
    except metadata.PackageNotFoundError:
        return "unknown"


class DataDocs:
    """A dataset's Data Docs pages kept in the expectations cache folder, for a reused result.

    The run's stage cache (audit.store.stagecache) may hand back a stored expectations result;
    it is valid only while this folder still holds the pages of that same result (:meth:`state`,
    its key file, unchanged), which :meth:`restore` copies into this run's Data Docs folder.
    """

    def __init__(self, cache_dir: Path, name: str, docs_dir: Path) -> None:
        self.cache_dir, self.name, self.docs_dir = cache_dir, name, docs_dir

    def state(self) -> str | None:
        try:
            return (self.cache_dir / self.name / KEY_FILE).read_text(encoding="ascii")
        except OSError:
            return None

    def restore(self, result: ExpectationsResult) -> ExpectationsResult | None:
        """The result as reused in this run (its pages copied here), or None when they are gone."""
        if not result.data_docs:
            return msgspec.structs.replace(result, cached=True)
        if not restore_docs(self.cache_dir, self.name, self.docs_dir):
            return None
        index = str(self.docs_dir / "index.html")
        return msgspec.structs.replace(result, cached=True, data_docs=index)
