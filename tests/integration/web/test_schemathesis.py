"""Property-based conformance with Schemathesis: every operation in ``/openapi.json``,
fed generated inputs (valid and invalid) with a valid admin token, never answers 5xx and
answers only what the schema declares (status codes, content types, headers, bodies).

Schemathesis' own pytest integration (``from_fixture``) does not run under pytest 9, so
the operations are driven here with Hypothesis directly; each failure names its
operation and a reproducing curl command.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 20


def test_every_operation_conforms_to_the_schema(app, admin_headers):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    calls: list[str] = []
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case) -> None:
            calls.append(case.operation.label)
            case.call_and_validate(headers=admin_headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect all operations' failures, then report
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert {op.label for op in operations} == set(calls)


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "trace")


def test_every_undocumented_method_is_405_with_the_documented_allow(app, admin_headers):
    """For every path in the document, a method it does not list answers 405, and
    ``Allow`` names exactly the documented methods (HEAD with GET) — what Schemathesis'
    ``unsupported_method`` and ``allow_header_conformance`` checks hold a server to."""
    from fastapi.testclient import TestClient

    from tests.integration.conftest import BASE_URL

    with TestClient(app, base_url=BASE_URL) as client:
        document = client.get("/openapi.json").json()
        wrong: list[str] = []
        for template, item in document["paths"].items():
            path = template.replace("{person_id}", "1").replace("{run_id}", "1")
            path = path.replace("{token}", "not-a-token")
            documented = {m.upper() for m in item if m in HTTP_METHODS}
            expected = documented | ({"HEAD"} if "GET" in documented else set())
            for method in HTTP_METHODS:
                if method.upper() in documented:
                    continue
                r = client.request(method.upper(), path, headers=admin_headers)
                allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
                if r.status_code != 405 or allow != expected:
                    wrong.append(f"{method.upper()} {path}: {r.status_code}, Allow {sorted(allow)}")
    assert not wrong, "\n".join(wrong)
