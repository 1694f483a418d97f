"""The abuse tests drive the real app on each database: the same fixtures as the
integration tests of the web API and admin pages."""

from tests.integration.admin.conftest import users  # noqa: F401
from tests.integration.conftest import app, ctx  # noqa: F401
