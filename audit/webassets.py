"""The browser assets Data Docs pages load, vendored so the pages work without a network.

Great Expectations' templates load jQuery, Bootstrap, bootstrap-table, Font Awesome and Vega from
CDNs: offline (an air-gapped cluster, a laptop on a train) its index lists nothing, and online
every page view tells those CDNs and GX's S3 bucket that a report was opened. The files live in
``audit/data/webassets/<name>-<version>/`` (their sources and licences in its README.md);
publishing copies them once per reports folder into ``reports/_assets/`` and the expectations
probe points every page at that copy. This module is the one place both read: the folder names
and which CDN URL each file replaces.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The shared copy's folder in the reports folder (no leading dot: `serve` hides dot names).
ASSETS_DIR = "_assets"
#: Where the vendored files are in the installed package.
SOURCE = Path(__file__).resolve().parent / "data" / "webassets"

_GX_LOGO = "great_expectations-1.24.1/logo-long.png"

#: Each CDN URL in GX's templates -> the vendored file that replaces it, under :data:`ASSETS_DIR`.
CDN_FILES: dict[str, str] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap-4.3.1/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap-4.3.1/js/bootstrap.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js-1.12.9/umd/popper.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table-1.19.1/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker-1.9.0/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker-1.9.0/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "bootstrap-dark-1.1.0/css/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fontawesome-free-6.6.0/css/all.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/vega-embed.min.js",
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png": _GX_LOGO,
}

#: GX's navbar logo carries a per-page query string (``?d=<time>``); any query maps to one file.
GX_LOGO_URL = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/logo-long\.png"
    r"(?:\?[^\"'\s<>]*)?"
)
GX_LOGO = _GX_LOGO
GX_FAVICON = "great_expectations-1.24.1/favicon.ico"


def folders() -> list[str]:
    """The vendored asset folders (``<name>-<version>``), each copied whole into the reports."""
    return sorted(p.name for p in SOURCE.iterdir() if p.is_dir())
