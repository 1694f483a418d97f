"""Bulk 2.0 query results streamed from CSV (no I/O: a scripted transport).

Result bodies arrive a few bytes at a time, so rows, quoted newlines, a byte order mark
and multi-byte characters are all cut across network chunks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from optsync.salesforce.bulk import BulkApi
from optsync.salesforce.errors import SalesforceCallError

HEADER = '"Id","Email","FirstName","LastName"\n'
SETS = [
    # a BOM; a doubled quote and a comma; an embedded newline and a blank line in a value
    "\ufeff"
    + HEADER
    + '"003A","a@example.com","","O""Brien, Jr."\n'
    + '"003B","b@example.com","Ann\nMarie","Line1\n\nLine3"\n',
    # a set with no rows (every set repeats the header)
    HEADER,
    # unquoted empty cells, non-ASCII, a CRLF inside a value, no final newline
    HEADER + '003C,zoë@example.com,,Ünal\n"003D","d@example.com","x\r\ny",',
]
EXPECTED = [
    {"Id": "003A", "Email": "a@example.com", "FirstName": None, "LastName": 'O"Brien, Jr.'},
    {
        "Id": "003B",
        "Email": "b@example.com",
        "FirstName": "Ann\nMarie",
        "LastName": "Line1\n\nLine3",
    },
    {"Id": "003C", "Email": "zoë@example.com", "FirstName": None, "LastName": "Ünal"},
    {"Id": "003D", "Email": "d@example.com", "FirstName": "x\r\ny", "LastName": None},
]


class Dribble:
    """A raw body that hands out at most ``step`` bytes per read, then maybe fails."""

    def __init__(self, data: bytes, step: int = 3, fail_after: int | None = None) -> None:
        self.data, self.step, self.fail_after, self.pos = data, step, fail_after, 0

    def read(self, _size: int = -1, **_: Any) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise requests.exceptions.ChunkedEncodingError("connection broken")
        chunk = self.data[self.pos : self.pos + self.step]
        self.pos += len(chunk)
        return chunk

    def close(self) -> None:
        pass


def _json(body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    response._content_consumed = True  # type: ignore[attr-defined]
    return response


def _csv(text: str, locator: str, fail_after: int | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.headers = CaseInsensitiveDict({"Sforce-Locator": locator})
    response.raw = Dribble(text.encode(), fail_after=fail_after)
    return response


class ScriptedOrg:
    """Stands in for the gateway and the simple-salesforce client: one query job whose
    result sets are ``sets``, fetched with locators "1", "2", … ("null" after the last)."""

    base_url = "https://org.test/services/data/v62.0/"
    timeout = 5

    def __init__(
        self, sets: list[str], *, state: str = "JobComplete", fail_after: int | None = None
    ) -> None:
        self.sets, self.state, self.fail_after = sets, state, fail_after
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []

    def call(self, endpoint: str, fn: Any) -> Any:
        return fn(self)

    def _call_salesforce(self, method: str, url: str, name: str = "", **kwargs: Any) -> Any:
        path = url.removeprefix(self.base_url)
        self.calls.append((method, path, kwargs.get("params")))
        if method == "POST":
            return _json({"id": "750000000000001AAA", "state": "UploadComplete"})
        if path.endswith("/results"):
            assert kwargs["headers"] == {"Accept": "text/csv"} and kwargs["stream"] is True
            index = int(kwargs["params"].get("locator", 0))
            last = index + 1 == len(self.sets)
            return _csv(self.sets[index], "null" if last else str(index + 1), self.fail_after)
        return _json({"state": self.state, "errorMessage": "INVALID_FIELD:No such column"})


def _bulk(org: ScriptedOrg) -> BulkApi:
    return BulkApi(org, sleep=lambda _s: None)  # type: ignore[arg-type]


def test_records_stream_with_quoting_newlines_and_nulls() -> None:
    org = ScriptedOrg(SETS)
    assert (
        list(_bulk(org).query_records("SELECT Id, Email, FirstName, LastName FROM Contact"))
        == EXPECTED
    )
    posts = [c for c in org.calls if c[0] == "POST"]
    assert posts == [("POST", "jobs/query", None)]
    results = [c[2] for c in org.calls if c[1].endswith("/results")]
    assert results == [
        {"maxRecords": 100_000},
        {"maxRecords": 100_000, "locator": "1"},
        {"maxRecords": 100_000, "locator": "2"},
    ]


def test_ids_come_from_the_same_sets() -> None:
    assert list(_bulk(ScriptedOrg(SETS)).query_ids("SELECT Id FROM Contact")) == [
        "003A",
        "003B",
        "003C",
        "003D",
    ]


def test_a_row_that_does_not_match_the_header_is_an_error() -> None:
    org = ScriptedOrg([HEADER + '"003A","a@example.com"\n'])
    with pytest.raises(SalesforceCallError, match="has 2 values but the header has 4"):
        list(_bulk(org).query_records("SELECT Id, Email, FirstName, LastName FROM Contact"))


def test_a_body_cut_off_mid_stream_is_a_call_error() -> None:
    org = ScriptedOrg(SETS, fail_after=40)
    with pytest.raises(SalesforceCallError):
        list(_bulk(org).query_records("SELECT Id, Email, FirstName, LastName FROM Contact"))


def test_a_failed_job_is_an_error_before_any_row() -> None:
    org = ScriptedOrg(SETS, state="Failed")
    with pytest.raises(SalesforceCallError, match="No such column"):
        list(_bulk(org).query_records("SELECT Id, Nope FROM Contact"))
    assert not [c for c in org.calls if c[1].endswith("/results")]
