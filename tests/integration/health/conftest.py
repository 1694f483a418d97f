"""The web API fixtures (an app per test database, tokens) for the health tests."""

from tests.integration.web.conftest import admin_headers, client, links, member_headers

__all__ = ["admin_headers", "client", "links", "member_headers"]
