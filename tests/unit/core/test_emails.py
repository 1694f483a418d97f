import pytest

from optsync.domain.emails import InvalidEmail, mask_email, normalise_email


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("bob+sales@sub.example.org", "bob+sales@sub.example.org"),
        ("zoë@exämple.de", "zoë@exämple.de"),
    ],
)
def test_normalises(raw, normal):
    assert normalise_email(raw) == normal


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ann",
        "ann@",
        "@example.com",
        "ann@@example.com",
        "ann example@x.com",
        "a" * 250 + "@example.com",
        "ann@example",
    ],
)
def test_rejects(raw):
    with pytest.raises(InvalidEmail):
        normalise_email(raw)


def test_mask_keeps_no_local_part():
    assert mask_email("ann.lee@example.com") == "a***@example.com"
