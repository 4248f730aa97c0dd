"""URL canonical form for takedown keys: idempotent, and the cheap pre-test never misses it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.checks.takedown_urls import canonical_url, url_probe

_PART = st.lists(
    st.sampled_from([*"aZ09-._~%2fFcC3A9é/?#&=:@+", "%41", "%2F", "%c3%a9", "%66lickr"]),
    max_size=12,
).map("".join)
_URL = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "HTTPS", "ftp"]),
    st.sampled_from(
        ["h.org", "H.ORG.", "farm1.staticflickr.com", "www.flickr.com", "flic.kr", "[::1]"]
    ),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    _PART,
)


@settings(max_examples=400, deadline=None)
@given(_URL)
def test_canonical_form_is_idempotent_and_its_probe_is_the_same(url: str) -> None:
    try:
        once = canonical_url(url)
    except ValueError:
        return
    assert canonical_url(once) == once
    assert url_probe(url) == url_probe(once)
