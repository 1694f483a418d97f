"""The log formatters: fields from ``extra=`` reach the line, addresses and secrets never."""

from __future__ import annotations

import json
import logging

import pytest

from optsync.logs import JsonFormatter, LogfmtFormatter, dict_config, mask


def record(msg: str = "push failed", *args: object, level: int = logging.INFO, **extra: object):
    rec = logging.LogRecord("optsync.test", level, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def logfmt_pairs(line: str) -> dict[str, str]:
    """Parse a logfmt line (values quoted as JSON strings when needed)."""
    out, rest = {}, line
    while rest:
        key, rest = rest.split("=", 1)
        if rest.startswith('"'):
            decoder = json.JSONDecoder()
            value, end = decoder.raw_decode(rest)
            rest = rest[end:].lstrip()
        else:
            value, _, rest = rest.partition(" ")
        out[key] = value
    return out


def test_logfmt_carries_the_extra_fields():
    line = LogfmtFormatter().format(
        record(outbox_id=7, person_id=3, code="ENTITY_IS_DELETED", failed={"X": 2}, ok=True)
    )
    pairs = logfmt_pairs(line)
    assert pairs["msg"] == "push failed" and pairs["level"] == "info"
    assert pairs["logger"] == "optsync.test" and pairs["ts"].endswith("Z")
    assert pairs["outbox_id"] == "7" and pairs["person_id"] == "3"
    assert pairs["code"] == "ENTITY_IS_DELETED"
    assert json.loads(pairs["failed"]) == {"X": 2} and pairs["ok"] == "true"


def test_json_carries_the_extra_fields():
    line = JsonFormatter().format(record(outbox_id=7, person_id=3, run_id=12, code="E"))
    data = json.loads(line)
    assert data["msg"] == "push failed"
    assert (data["outbox_id"], data["person_id"], data["run_id"], data["code"]) == (7, 3, 12, "E")


@pytest.mark.parametrize("formatter", [LogfmtFormatter(), JsonFormatter()])
def test_no_address_or_secret_reaches_the_output(formatter):
    line = formatter.format(
        record(
            "unsubscribed %s",
            "ann.lee+x@example.com",
            email="bob@example.org",
            note=["carol@example.net"],
            client_secret="s3cr3t",
            password="hunter2",
            access_token="00Dabc!xyz",
        )
    )
    for secret in ("ann.lee", "bob@", "carol@", "s3cr3t", "hunter2", "00Dabc"):
        assert secret not in line, line
    assert "***@example.com" in line and "***@example.org" in line


def test_exceptions_are_one_field():
    try:
        raise RuntimeError("boom for dave@example.com")
    except RuntimeError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    data = json.loads(JsonFormatter().format(rec))
    assert "RuntimeError: boom" in data["exc"] and "dave@" not in data["exc"]
    assert "\n" not in LogfmtFormatter().format(rec)


def test_mask_keeps_the_domain_only():
    assert mask("to a@b.co and x.y@sub.example.com.") == "to ***@b.co and ***@sub.example.com."


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="logfmt"):
        dict_config("xml")
