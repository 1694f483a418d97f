"""A flood of concurrent sign-ins for one address from one IP (#13 item 2).

Observed on 5b106dd: 120 concurrent ``POST /login`` verified 64 wrong passwords in one
window (limit 5), and the server grew to 1.1 GB (argon2 holds 64 MiB per verification).
An attempt is now reserved in the database before its password is verified, and each
process verifies at most a few passwords at a time.
"""

from __future__ import annotations

import threading
import time

import pytest

from optsync.web.admin import install_admin, login
from optsync.web.admin.throttle import MAX_FAILURES
from optsync.web.app import create_app
from tests.integration.admin.conftest import ADMIN, csrf_of, new_client

ATTEMPTS = 24


class CountingVerifier:
    """Wraps ``verify_password``: counts verifications and the most at once."""

    def __init__(self, real) -> None:
        self.real = real
        self.lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.most = 0

    def __call__(self, password_hash: str, password: str) -> bool:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # widen the window a racing check would slip through
            return bool(self.real(password_hash, password))
        finally:
            with self.lock:
                self.running -= 1


def _flood(apps, password: str, *, one_address: bool = True) -> list[int]:
    barrier = threading.Barrier(ATTEMPTS)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        with new_client(apps[n % len(apps)]) as c:
            token = csrf_of(c)
            barrier.wait()
            email = ADMIN[0] if one_address else f"nobody{n}@example.com"
            r = c.post("/login", data={"email": email, "password": password, "csrf_token": token})
            with lock:
                statuses.append(r.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(ATTEMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


@pytest.fixture
def verifier(monkeypatch) -> CountingVerifier:
    counting = CountingVerifier(login.verify_password)
    monkeypatch.setattr(login, "verify_password", counting)
    return counting


def test_concurrent_wrong_passwords_verify_at_most_the_limit(ctx, app, users, verifier):
    # two web processes (two apps, each its own verification cap) on one database
    other = create_app(ctx)
    install_admin(other, ctx)
    statuses = _flood([app, other], "wrong password, again")
    assert len(statuses) == ATTEMPTS
    assert verifier.calls <= MAX_FAILURES, verifier.calls
    assert verifier.calls > 0
    # a verified failure that fills the window already answers 429
    assert statuses.count(401) <= verifier.calls
    assert set(statuses) <= {401, 429, 503}, statuses
    # the lockout holds afterwards, even for the right password
    with new_client(app) as c:
        r = c.post(
            "/login", data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_of(c)}
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_each_process_verifies_only_a_few_passwords_at_once(ctx, app, users, verifier):
    # one attempt per address: the throttle allows each, the per-process cap holds them
    statuses = _flood([app], "wrong password, again", one_address=False)
    assert verifier.most <= login.MAX_CONCURRENT_VERIFICATIONS, verifier.most
    assert verifier.most > 1  # they did run concurrently
    assert set(statuses) <= {401, 503}, statuses
    assert statuses.count(401) == verifier.calls > 0
