"""Data Docs readable offline: GX's CDN scripts and styles come from one copy per reports folder.

Offline, GX's pages as GX writes them list no suites and no validations (bootstrap-table fills the
tables from script), and online every view tells five CDNs and GX's S3 bucket about it. The
browser test blocks every request that would leave 127.0.0.1 and opens a demo run's Data Docs
through `llava-audit serve`'s server; the other tests pin the vendored files to what GX's
templates ask for, and the shared copy's publishing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import config as config_mod
from audit import webassets
from audit.output import reportsdir, sharedassets
from audit.output.server import ReportServer, resolve
from audit.probes.expectation_cache import offline_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves either
]
ICON_FONT_LOADED = (
    "[...document.fonts].some(f => f.family.includes('Font Awesome 6 Free')"
    " && f.status === 'loaded')"
)
#: GX's own run folder was 4.4 MB on the demo, 4 MB of it the static/ folder copied per run.
RUN_FOLDER_LIMIT = 1_000_000


def _gx_file(*parts: str) -> Path:
    spec = importlib.util.find_spec("great_expectations")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _template_urls() -> list[tuple[str, str | None]]:
    """Every https URL GX's templates load as a script, stylesheet or CSS image, with its SRI."""
    found: list[tuple[str, str | None]] = []
    tag = re.compile(r'<(?:script|link)\b[^>]*?(?:src|href)="(https://[^"{]+)"([^>]*)>')
    for path in _gx_file("render", "view", "templates").glob("*.j2"):
        for url, rest in tag.findall(path.read_text(encoding="utf-8")):
            sri = re.search(r'integrity="([^"]+)"', rest)
            found.append((url, sri.group(1) if sri else None))
    css = _gx_file("render", "view", "static", "styles", "data_docs_default_styles.css")
    found += [(u, None) for u in re.findall(r"url\('(https://[^']+)'\)", css.read_text())]
    return found


def test_every_cdn_file_of_gx_templates_has_a_vendored_copy() -> None:
    """A GX upgrade that loads a new CDN file (or version) fails here, not in a user's browser."""
    urls = _template_urls()
    assert len(urls) >= 15
    missing = sorted({u for u, _ in urls} - set(webassets.CDN_FILES))
    assert missing == []
    for target in webassets.CDN_FILES.values():
        assert (webassets.SOURCE / target).is_file(), target


def test_vendored_scripts_are_the_bytes_gx_pins() -> None:
    """popper and bootstrap carry `integrity` hashes in GX's templates: ours match them."""
    pinned = [(u, sri) for u, sri in _template_urls() if sri]
    assert len(pinned) == 2
    for url, sri in pinned:
        algo, _, expected = sri.partition("-")
        data = (webassets.SOURCE / webassets.CDN_FILES[url]).read_bytes()
        assert base64.b64encode(hashlib.new(algo, data).digest()).decode() == expected, url


def test_each_vendored_folder_has_its_licence_and_a_readme_line() -> None:
    readme = (webassets.SOURCE / "README.md").read_text(encoding="utf-8")
    folders = webassets.folders()
    assert len(folders) >= 12
    for name in folders:
        assert list((webassets.SOURCE / name).glob("LICENSE*")), f"{name} has no licence file"
        assert f"| `{name}` |" in readme, f"{name} is not in the README table"


def test_offline_html_points_every_asset_at_the_shared_copy() -> None:
    page = (
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/'
        'bootstrap.min.css"/>\n<script src="https://cdn.jsdelivr.net/npm/vega-lite@5"></script>\n'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>\n'
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" '
        'integrity="sha384-x" crossorigin="anonymous"></script>\n'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png'
        '?d=20261203T062412.412883Z" />\n<link rel="shortcut icon" '
        'href="../../../static/images/favicon.ico"/>\n'
        '<a href="https://greatexpectations.io">Great Expectations</a>'
    )
    local = offline_html(page, "../../_assets")
    assert 'href="../../_assets/bootstrap-4.3.1/css/bootstrap.min.css"' in local
    assert 'src="../../_assets/vega-5.33.1/vega.min.js"' in local
    assert 'src="../../_assets/vega-lite-5.23.0/vega-lite.min.js"' in local
    assert '<script src="../../_assets/popper.js-1.12.9/umd/popper.min.js"></script>' in local
    assert 'src="../../_assets/great_expectations-1.24.1/logo-long.png"' in local
    assert 'href="../../_assets/great_expectations-1.24.1/favicon.ico"' in local
    assert re.findall(r'(?:src|href)="(https?://[^"]*)"', local) == ["https://greatexpectations.io"]
    assert offline_html(local, "../../_assets") == local  # a second pass changes nothing


# ---- the shared copy ---------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ensure_copies_once_repairs_and_sweeps(tmp_path: Path) -> None:
    assets = sharedassets.ensure(tmp_path)
    assert assets == tmp_path / "_assets"
    for name in webassets.folders():
        assert _files(assets / name) == _files(webassets.SOURCE / name)
    jquery = assets / "jquery-3.7.1" / "jquery.min.js"
    inode = jquery.stat().st_ino
    sharedassets.ensure(tmp_path)  # complete: left as it is
    assert jquery.stat().st_ino == inode
    jquery.write_bytes(b"truncated")  # a damaged copy is replaced whole
    (assets / ".vega-5.33.1.0badf00d.partial").mkdir()  # a killed copy's temp folder
    sharedassets.ensure(tmp_path)
    assert jquery.read_bytes() == (webassets.SOURCE / "jquery-3.7.1" / "jquery.min.js").read_bytes()
    assert not [p for p in assets.iterdir() if p.name.startswith(".")]


def test_a_failed_copy_leaves_no_partial_folder(tmp_path: Path) -> None:
    def full_disk(path: Path, data: bytes) -> None:
        if path.name.endswith(".js"):
            raise OSError(28, "No space left on device")
        path.write_bytes(data)

    with pytest.raises(OSError):
        sharedassets.ensure(tmp_path, write=full_disk)
    left = sorted(p.name for p in (tmp_path / "_assets").iterdir())
    assert all(not n.startswith(".") for n in left)  # no temp folder
    for name in left:  # whatever is there is complete
        assert _files(tmp_path / "_assets" / name) == _files(webassets.SOURCE / name)


def test_an_assets_path_that_is_not_our_folder_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "_assets").symlink_to(tmp_path.parent)
    with pytest.raises(Exception, match="not a folder llava-audit made"):
        sharedassets.ensure(tmp_path)


def test_retention_never_counts_or_deletes_the_shared_copy(tmp_path: Path) -> None:
    sharedassets.ensure(tmp_path)
    assert reportsdir.prunable_runs(tmp_path, 1, protect=set()) == []
    reportsdir.remove_runs(tmp_path, [])
    assert (tmp_path / "_assets" / "jquery-3.7.1" / "jquery.min.js").is_file()


def test_serve_serves_the_shared_copy_but_not_a_symlink_out(tmp_path: Path) -> None:
    sharedassets.ensure(tmp_path)
    root = tmp_path.resolve()
    assert resolve(root, "/_assets/jquery-3.7.1/jquery.min.js") is not None
    (tmp_path / "_assets" / "evil.js").symlink_to("/etc/passwd")
    assert resolve(root, "/_assets/evil.js") is None


# ---- a demo run, twice, in a browser with the network blocked ----------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo's reports folder after the demo run and a second run of its audit.toml."""
    from audit.demo import run_demo
    from audit.runner import run_audit

    folder = tmp_path_factory.mktemp("demo")
    first, published = run_demo(folder)
    second = run_audit(config_mod.load(folder / "audit.toml"), config_file="audit.toml")
    return published.parent, [first.run_id, second.run_id]


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_two_runs_share_one_asset_copy(two_runs: tuple[Path, list[str]]) -> None:
    reports, run_ids = two_runs
    assert [p.relative_to(reports) for p in reports.rglob("jquery*.js")] == [
        Path("_assets/jquery-3.7.1/jquery.min.js")
    ]
    for run_id in run_ids:
        docs = reports / run_id / "data-docs"
        assert (docs / "index.html").is_file()
        assert not (docs / "static").exists()  # GX's 4 MB folder is not copied per run
        assert _size(reports / run_id) < RUN_FOLDER_LIMIT
        index = (docs / "index.html").read_text(encoding="utf-8")
        assert '<script src="../../_assets/jquery-3.7.1/jquery.min.js">' in index
        # the second run reuses every dataset's pages: its index still lists all of them
        linked = re.findall(r"'_table_row_link_path': '([^']+)'", index)
        assert len(linked) == 6 and all((docs / link).is_file() for link in linked)
        for page in docs.rglob("*.html"):
            text = page.read_text(encoding="utf-8")
            loaded = re.findall(r'<(?:script|link|img)\b[^>]*?(?:src|href)="([^"]+)"', text)
            assert loaded and not [u for u in loaded if "://" in u], page
            for url in loaded:
                assert (page.parent / url).resolve().is_file(), (page, url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def served(two_runs: tuple[Path, list[str]]) -> Iterator[str]:
    """The reports folder through `llava-audit serve`'s server (its realpath checks included)."""
    server = ReportServer(two_runs[0], 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()


@pytest.mark.browser
def test_data_docs_list_suites_and_validations_with_the_network_blocked(
    browser: Any, served: str, two_runs: tuple[Path, list[str]], tmp_path: Path
) -> None:
    reports, run_ids = two_runs
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    left: list[str] = []  # every request that would have left the machine, aborted

    def only_local(route: Any) -> None:
        if route.request.url.startswith((served + "/", "file://", "data:")):
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    for base in (served, f"file://{reports}"):  # through `serve`, and opened as a file
        for run_id in run_ids:
            page.goto(f"{base}/{run_id}/data-docs/index.html", wait_until="load")
            rows = page.locator(".ge-index-page-validation-results-table tbody tr")
            assert rows.count() == 3  # one validation per demo dataset, filled in by script
            for suite in ("lcs", "cc3m", "instruct"):
                assert (
                    page.locator("a.ge-index-page-table-expectation-suite-link")
                    .filter(has_text=suite)
                    .first.is_visible()
                )
            assert rows.locator("i.fa-times").first.is_visible()
            assert page.evaluate(ICON_FONT_LOADED)
            page.click("text=Expectation Suites")
            assert page.locator(".ge-index-page-expectation_suites-table tbody tr").count() == 3
            page.click("text=Validation Results")
            rows.first.click()  # a row opens its validation page
            page.wait_for_load_state("load")
            assert "/validations/" in page.url
            assert page.locator("i.fa-check-circle").count() > 0
    page.screenshot(path=str(tmp_path / "data-docs.png"), full_page=True)
    context.close()
    assert left == []
    assert failed == []
    assert errors == []
