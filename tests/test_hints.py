"""The setup hints: said only when most items fail the same way, with the counts in the text."""

from __future__ import annotations

from audit.hints import dns_hint, missing_images_hint


def test_dns_hint_only_when_most_urls_fail_dns() -> None:
    assert dns_hint(3, 4) == "no network? 3 of 4 URLs failed DNS lookup"
    assert dns_hint(2, 4) is None  # half is not most
    assert dns_hint(0, 0) is None


def test_missing_images_hint_names_the_roots() -> None:
    assert missing_images_hint(89_368, 100_000, ["images.zip", "data"]) == (
        "is --root right? 89,368 of 100,000 images missing under images.zip, data"
    )
    assert missing_images_hint(1, 2, ["data"]) is None
    assert missing_images_hint(0, 0, []) is None
