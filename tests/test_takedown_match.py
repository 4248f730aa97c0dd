"""Blocklist matching (pure): every key kind, path suffixes, expansion, and the findings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.checks.takedown import (
    BlockKey,
    Blocklist,
    Candidate,
    expand,
    find_matches,
    parse_key,
    present_findings,
)

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("sha256", SHA.upper(), SHA),
        ("md5", " " + "0F" * 16, "0f" * 16),
        ("url", "HTTP://Ec1.OSTKCDN.com/images/P1.jpg#x", "https://ec1.ostkcdn.com/images/P1.jpg"),
        (
            "url",
            "https://ec1.ostkcdn.com.:443/images/P1.jpg",
            "https://ec1.ostkcdn.com/images/P1.jpg",
        ),
        (
            "url",
            "http://h.org:8080/%7ea%2fb/%c3%a9.jpg?x=%7e",
            "https://h.org:8080/~a%2Fb/%C3%A9.jpg?x=~",
        ),
        ("url", "http://h.org/café.jpg", "https://h.org/caf%C3%A9.jpg"),
        ("url", "http://h.org", "https://h.org/"),
        ("url", "ftp://H.org/a", "ftp://h.org/a"),
        ("phash", " E9C497B16E926989", "e9c497b16e926989"),
        ("image", "/data/./LCS//00453/004539375.jpg", "data/LCS/00453/004539375.jpg"),
        ("image", "00453\\004539375.jpg", "00453/004539375.jpg"),
        ("record_id", " 004539375 ", "004539375"),
    ],
)
def test_keys_are_normalised(kind: str, raw: str, value: str) -> None:
    assert parse_key(kind, raw) == BlockKey(kind, value)


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        ("sha256", "abc", "64 hexadecimal digits"),
        ("sha256", "g" * 64, "64 hexadecimal digits"),
        ("md5", SHA, "32 hexadecimal digits"),
        ("url", "ec1.ostkcdn.com/images/P1.jpg", "not an absolute URL"),
        ("url", "http://a b/c", "not an absolute URL"),
        ("image", "../etc/passwd", "not a usable image path"),
        ("image", "//", "not a usable image path"),
        ("record_id", "  ", "empty record_id"),
        ("phash", "x", "16 hexadecimal digits"),
        ("perceptual", "x", "unknown identifier kind"),
        ("url", "http://h.org:99999/a", "not an absolute URL"),
    ],
)
def test_malformed_keys_say_what_is_wrong(kind: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key(kind, raw)


def _c(index: int, **kw: str) -> Candidate:
    return Candidate(dataset=kw.pop("dataset", "d"), file="f.json", index=index, **kw)


def test_each_key_kind_finds_its_record_and_nothing_else() -> None:
    records = [
        _c(0, record_id="1", image="a/1.jpg"),
        _c(1, record_id="2", image="a/2.jpg", url="http://h/2.jpg"),
        _c(2, record_id="3", image="a/3.jpg", sha256=SHA),
        _c(3, record_id="4", image="a/4.jpg", md5="0f" * 16),
        _c(4, record_id="5", image="b/5.jpg"),
    ]
    keys = [
        parse_key("record_id", "1"),
        parse_key("url", "HTTP://H/2.jpg"),
        parse_key("sha256", SHA),
        parse_key("md5", "0F" * 16),
        parse_key("image", "5.jpg"),
    ]
    matches = find_matches(Blocklist((k, "TD-1") for k in keys), records)
    assert [(m.index, m.key.kind) for m in matches] == [
        (0, "record_id"),
        (1, "url"),
        (2, "sha256"),
        (3, "md5"),
        (4, "image"),
    ]
    # Mutation check: dropping any key loses exactly its record.
    for dropped in range(len(keys)):
        kept = Blocklist((k, "TD-1") for i, k in enumerate(keys) if i != dropped)
        assert [m.index for m in find_matches(kept, records)] == [
            i for i in range(5) if i != dropped
        ]


def test_image_paths_match_on_whole_segments_in_both_directions() -> None:
    records = [
        _c(0, image="coco/train2017/000000442786.jpg"),
        _c(1, image="000000442786.jpg"),
        _c(2, image="x000000442786.jpg"),
        _c(3, image="vg/VG_100K/000000442786.png"),
    ]
    by_long = Blocklist([(parse_key("image", "coco/train2017/000000442786.jpg"), "TD-1")])
    by_short = Blocklist([(parse_key("image", "000000442786.jpg"), "TD-1")])
    assert [m.index for m in find_matches(by_long, records)] == [0, 1]
    assert [m.index for m in find_matches(by_short, records)] == [0, 1]


def test_a_record_hit_by_two_requests_is_listed_once_per_request() -> None:
    key = parse_key("image", "a/1.jpg")
    blocklist = Blocklist([(key, "TD-2"), (parse_key("record_id", "1"), "TD-2"), (key, "TD-1")])
    matches = find_matches(blocklist, [_c(0, record_id="1", image="a/1.jpg")])
    assert [(m.request_id, m.key.kind) for m in matches] == [
        ("TD-1", "image"),
        ("TD-2", "record_id"),
    ]


def test_expand_follows_a_url_to_the_image_and_its_hash_but_not_the_id() -> None:
    metadata = _c(0, dataset="m", record_id="7", image="00000/7.jpg", url="http://h/7.jpg")
    chat = _c(0, dataset="c", record_id="7", image="00000/7.jpg", sha256=SHA)
    copy = _c(5, dataset="other", record_id="99", image="copies/renamed.jpg", sha256=SHA)
    same_id = _c(6, dataset="other", record_id="7", image="elsewhere/8.jpg")
    unrelated = _c(1, dataset="c", record_id="8", image="00000/8.jpg")
    records = [metadata, chat, copy, same_id, unrelated]
    blocklist = Blocklist([(parse_key("url", "http://h/7.jpg"), "TD-1")])
    assert len(find_matches(blocklist, records)) == 1
    grown = expand(blocklist, records)
    assert {(m.dataset, m.index) for m in find_matches(grown, records)} == {
        ("m", 0),
        ("c", 0),
        ("other", 5),
    }
    assert {str(k) for k, _ in grown.entries()} == {
        "url=https://h/7.jpg",
        "image=00000/7.jpg",
        f"sha256={SHA}",
        "image=copies/renamed.jpg",
    }


def test_findings_are_errors_both_once_applied_and_while_pending() -> None:
    """A pending request blocks training from the day it is received (GDPR Art. 18)."""
    blocklist = Blocklist(
        [(parse_key("record_id", "1"), "TD-1"), (parse_key("image", "2.jpg"), "TD-2")]
    )
    matches = find_matches(blocklist, [_c(0, record_id="1"), _c(1, image="x/2.jpg")])
    found = present_findings(matches, {"TD-1": True, "TD-2": False})
    assert [(f.code, f.severity.value, f.index) for f in found] == [
        ("takedown.present", "error", 0),
        ("takedown.pending", "error", 1),
    ]
    assert "record_id=1" in found[0].message and "TD-1" in found[0].message


def test_malformed_values_in_the_data_do_not_break_matching() -> None:
    blocklist = Blocklist([(parse_key("record_id", "1"), "TD-1")])
    odd = _c(0, record_id="1", image="../../x.jpg", url="not a url", sha256="nope")
    assert [m.key.kind for m in find_matches(blocklist, [odd])] == ["record_id"]


_SEGMENT = st.sampled_from(["a", "B", "00453", "x.jpg", "X.JPG", ".", ""])
_PATHS = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join)
_URLS = st.one_of(
    st.builds(
        lambda scheme, host, path, frag: f"{scheme}://{host}/{path}{frag}",
        st.sampled_from(["http", "https", "HTTPS"]),
        st.sampled_from(["h", "H", "h.:80", "ec1.ostkcdn.com", "h:443"]),
        st.lists(st.sampled_from(["a", "%61", "%2F", "é", "%C3%A9", "x.jpg", "", "?q=%7e"])).map(
            "/".join
        ),
        st.sampled_from(["", "#top"]),
    ),
    st.sampled_from(
        [
            "http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg",
            "https://live.staticflickr.com/3153/2970773875_164f0c0b83_b.jpg",
            "https://www.flickr.com/photos/someone/2970773875/",
            "https://www.flickr.com/photo.gne?id=2970773875",
            "https://www.flickr.com/photo.gne?id=1",
            "http://example.org/flickr/%66lickr.jpg",
        ]
    ),
)
_IDS = st.sampled_from(["1", " 1", "2", "004539375"])


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(
        st.tuples(st.none() | _IDS, st.none() | _PATHS, st.none() | _URLS), max_size=6
    ),
    claimed=st.lists(
        st.one_of(
            st.tuples(st.just("record_id"), _IDS),
            st.tuples(st.just("image"), _PATHS),
            st.tuples(st.just("url"), _URLS),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_the_cheap_pre_tests_never_miss_a_match(
    records: list[tuple[str | None, str | None, str | None]], claimed: list[tuple[str, str]]
) -> None:
    """Mutation guard for the fast path: same matches as normalising every key of every record."""
    keys = []
    for kind, raw in claimed:
        try:
            keys.append(parse_key(kind, raw))
        except ValueError:
            continue
    blocklist = Blocklist((k, "TD-1") for k in keys)
    candidates = [_c(i, **_present(r)) for i, r in enumerate(records)]
    fast = {m.index for m in find_matches(blocklist, candidates)}
    slow = {c.index for c in candidates if blocklist.lookup(c.block_keys())}
    assert fast == slow


def _present(record: tuple[str | None, str | None, str | None]) -> dict[str, str]:
    rid, image, url = record
    values = {"record_id": rid, "image": image, "url": url}
    return {k: v for k, v in values.items() if v is not None}


def test_a_url_matches_whatever_way_it_is_written() -> None:
    """A GDPR request gives http, the data has https (and a default port, other escapes)."""
    stored = [
        _c(0, url="https://i.pinimg.com:443/736x/66/01/%7Eanita-ekberg.jpg"),
        _c(1, url="https://i.pinimg.com/736x/66/01/other.jpg"),
    ]
    asked = Blocklist(
        [(parse_key("url", "http://I.PINIMG.com./736x/66/01/~anita-ekberg.jpg"), "T")]
    )
    assert [m.index for m in find_matches(asked, stored)] == [0]


def test_every_flickr_url_of_one_photo_is_one_key() -> None:
    """COCO holds a size variant of the static image; a DMCA notice names the photo page."""
    page = parse_key("url", "https://www.flickr.com/photos/someone/2970773875/in/photostream")
    for form in (
        "http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg",
        "https://live.staticflickr.com/3153/2970773875_164f0c0b83.jpg",
        "http://farm4.static.flickr.com/3153/2970773875_a1b2c3d4e5_o.png",
        "https://flickr.com/photo.gne?id=2970773875",
    ):
        assert parse_key("url", form) == page, form
    assert page.value == "https://www.flickr.com/photo.gne?id=2970773875"
    other = parse_key("url", "http://farm4.staticflickr.com/3153/2970773876_164f0c0b83_z.jpg")
    assert other != page


def test_a_key_recorded_before_urls_were_canonical_still_matches() -> None:
    old = BlockKey("url", "http://ec1.ostkcdn.com/images/P1.jpg")  # as an older ledger holds it
    blocklist = Blocklist([(old, "TD-1")])
    assert find_matches(blocklist, [_c(0, url="https://ec1.ostkcdn.com/images/P1.jpg")])


def test_a_perceptual_hash_matches_within_the_distance() -> None:
    near = f"{0xE9C497B16E926989 ^ 0b111111:016x}"  # 6 bits away
    far = f"{0xE9C497B16E926989 ^ 0b1111111:016x}"  # 7 bits away
    blocklist = Blocklist([(parse_key("phash", "e9c497b16e926989"), "TD-1")], phash_distance=6)
    records = [_c(0, phash="e9c497b16e926989"), _c(1, phash=near), _c(2, phash=far)]
    assert [m.index for m in find_matches(blocklist, records)] == [0, 1]
    strict = Blocklist(blocklist.entries(), phash_distance=0)
    assert [m.index for m in find_matches(strict, records)] == [0]


def test_expand_does_not_drift_from_near_picture_to_near_picture() -> None:
    """A copy found only by a near perceptual hash lends its exact keys, not its own phash."""
    base = 0xE9C497B16E926989
    original = _c(0, image="a.jpg", phash=f"{base:016x}")
    copy = _c(1, image="b.jpg", sha256=SHA, phash=f"{base ^ 0b111:016x}")  # 3 bits from original
    drifted = _c(2, image="c.jpg", phash=f"{base ^ 0b111 ^ 0b111111000000:016x}")  # 6 from copy
    grown = expand(Blocklist([(parse_key("image", "a.jpg"), "TD-1")]), [original, copy, drifted])
    assert [m.index for m in find_matches(grown, [original, copy, drifted])] == [0, 1]
    assert BlockKey("sha256", SHA) in grown
