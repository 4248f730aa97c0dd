"""Image and URL probes (issue 3)."""

from __future__ import annotations

from audit.catalogue.base import CodeInfo, Severity
from audit.catalogue.codes import Code

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

ENTRIES: tuple[CodeInfo, ...] = (
    # ---- images and URLs (issue 3) ----------------------------------------------------------------
    CodeInfo(
        Code.IMAGE_MISSING,
        E,
        "Image file missing",
        "No image root has the file the record names. LLaVA's trainer opens it without a "
        "try/except, so the run crashes with FileNotFoundError when it reaches this record "
        "(e.g. the 355 OCR-VQA images the official script fails to fetch, VG files absent from "
        "a downstream zip).",
    ),
    CodeInfo(
        Code.IMAGE_EMPTY,
        E,
        "Image file is empty",
        "The image file (or zip member) has zero bytes, as about 170 files in VG_100K_2 do. "
        "PIL cannot identify it and the trainer crashes with UnidentifiedImageError.",
    ),
    CodeInfo(
        Code.IMAGE_CORRUPT,
        E,
        "Image cannot be decoded",
        "The bytes are not an image PIL can open or decode (an HTML error page saved as .jpg, "
        "a damaged header or a zip member that fails its CRC). The trainer crashes on it.",
    ),
    CodeInfo(
        Code.IMAGE_TRUNCATED,
        E,
        "Image is truncated",
        "The image header is fine but the data stops early (an interrupted download). "
        "Image.verify() does not notice; decoding the whole stream raises 'image file is "
        "truncated' in the trainer. Found at --level decode (at header level only when the "
        "header itself is cut).",
    ),
    CodeInfo(
        Code.IMAGE_UNREADABLE,
        E,
        "Image cannot be read",
        "The file exists but cannot be read (permissions, I/O error, an encrypted zip member), or "
        "is a FIFO, socket or device instead of a file (never opened: it could block or never "
        "end). The trainer would fail on it the same way.",
    ),
    CodeInfo(
        Code.IMAGE_TOO_LARGE,
        E,
        "Image exceeds the decompression-bomb limit",
        "Width times height is above the pixel limit (Pillow's default raises "
        "DecompressionBombError above 178,956,970 pixels), so the trainer crashes on it; a "
        "deliberate bomb would also exhaust memory. The audit reads only its header. A file over "
        "256 MiB is reported without being read at all.",
    ),
    CodeInfo(
        Code.IMAGE_FORMAT_MISMATCH,
        W,
        "Image format differs from the file extension",
        "The content is another format than the extension says (OCR-VQA's GIFs saved as .jpg). "
        "PIL sniffs the content, so training works, but tools that trust the extension "
        "(jpeginfo, some loaders and CDNs) mis-handle the file.",
    ),
    CodeInfo(
        Code.STATS_IMAGES,
        INFO,
        "Local image statistics",
        "Per file: records with an image, how many were missing, broken or fine, the missing "
        "rate, formats and the spread of image sizes.",
    ),
    CodeInfo(
        Code.URL_DEAD,
        W,
        "Source URL is gone",
        "The image's source URL answers 404 Not Found or 410 Gone. The image cannot be fetched "
        "again from its source (LLaVA ships images.zip because ~15% of CC-3M was already gone in "
        "2023; about 30% is by 2024). Training from a local copy still works; the gate decides "
        "on the rate, not the single record.",
    ),
    CodeInfo(
        Code.URL_FORBIDDEN,
        W,
        "Source URL refuses access",
        "The server answers 401, 403 or 451. Mostly persistent (hot-link protection, removed "
        "content); retrying with a browser User-Agent recovered only about 3% on CC12M.",
    ),
    CodeInfo(
        Code.URL_HTTP_ERROR,
        W,
        "Source URL answers with another HTTP error",
        "A 4xx other than 401/403/404/410/451 (including 429 Too Many Requests still answered after "
        "every retry, or a Retry-After longer than the configured cap), or an unexpected 1xx/3xx.",
    ),
    CodeInfo(
        Code.URL_SERVER_ERROR,
        W,
        "Source server error",
        "The server answered 5xx on every attempt (retried with exponential backoff, honouring "
        "Retry-After). Often transient: the next nightly run re-probes it after the TTL.",
    ),
    CodeInfo(
        Code.URL_TIMEOUT,
        W,
        "Source URL timed out",
        "No connection or no answer within the configured timeout. Connect timeouts are retried; a "
        "server that accepts but never answers is not, to keep a nightly run bounded.",
    ),
    CodeInfo(
        Code.URL_DNS,
        W,
        "Source host does not resolve",
        "The URL's host name has no DNS address (NXDOMAIN): the domain has expired or moved. "
        "Permanent in practice; about 6% of CC12M URLs by 2026.",
    ),
    CodeInfo(
        Code.URL_TLS,
        W,
        "TLS failure",
        "The HTTPS handshake failed (expired or mismatched certificate, obsolete protocol). The "
        "image may exist but cannot be fetched securely.",
    ),
    CodeInfo(
        Code.URL_CONNECTION,
        W,
        "Connection failed",
        "The connection was refused or reset on every attempt: the host is up but nothing serves "
        "the URL's port, or the server drops clients.",
    ),
    CodeInfo(
        Code.URL_NOT_IMAGE,
        W,
        "Source URL does not return an image",
        "The server answers 2xx but the first bytes are not an image format PIL reads (an HTML "
        "'not found' page with status 200, an empty body, SVG). Magic bytes decide, the "
        "Content-Type is only quoted: PIL sniffs content too.",
    ),
    CodeInfo(
        Code.URL_TRUNCATED,
        W,
        "Source image is truncated",
        "The whole image was read but it stops before its end marker (JPEG EOI, PNG IEND), or the "
        "transfer broke off before Content-Length. A re-download gives a damaged image.",
    ),
    CodeInfo(
        Code.URL_PLACEHOLDER,
        W,
        "Source URL serves a placeholder",
        "The URL answers with a host's stand-in instead of the photo: a successful download "
        "that is not the original. Found three ways: a redirect to a known 'photo unavailable' "
        "image (Flickr, Imgur removed) or bytes with a known SHA-256 (shipped list, plus "
        "urls.placeholder_urls and placeholder_sha256); the same image bytes answering at least "
        "urls.placeholder_min_urls (5) distinct URLs of one site; or that many distinct URLs "
        "redirecting to the same image. Records sharing one URL count once, and one photo copied "
        "onto many different sites is not a stand-in. The report lists each stand-in found with "
        "example URLs.",
    ),
    CodeInfo(
        Code.URL_OPT_OUT,
        W,
        "Source opts out of AI use",
        "The rights holder reserved text and data mining by a machine-readable means: an "
        "X-Robots-Tag noai or noimageai header (for all agents or for llava-audit, as img2dataset "
        "honours it), a TDM Reservation Protocol tdm-reservation: 1 header or a matching rule in "
        "the site's /.well-known/tdmrep.json, or a robots.txt Disallow covering the URL for one of "
        "the AI-training agents in urls.ai_user_agents. The message names each mechanism with its "
        "rule and where it was read. The image may still exist; the licence stage decides what "
        "the opt-out means for the declared use.",
    ),
    CodeInfo(
        Code.URL_REDIRECTS,
        W,
        "Too many redirects",
        "The URL redirects in a loop or through more hops than urls.max_redirects; no image was "
        "reached.",
    ),
    CodeInfo(
        Code.URL_INVALID,
        W,
        "Malformed source URL",
        "The value is not an http(s) URL with a host, so it cannot be probed or re-downloaded.",
    ),
    CodeInfo(
        Code.URL_REFUSED,
        W,
        "URL points to a private address (not probed)",
        "The host is, or resolves to, a loopback, private, link-local or other non-public address "
        "(or a redirect leads there). Dataset URLs are untrusted, so nothing was sent; allow it "
        "with urls.allow_private or urls.allow_networks for an intranet mirror.",
    ),
    CodeInfo(
        Code.URL_STATS,
        INFO,
        "Source URL statistics",
        "Per file: URLs, how many were probed now or taken from the cache, counts per status "
        "class, the missing rate beside the ~15% LLaVA documents for CC-3M, and the domains with "
        "the most missing images.",
    ),
)
