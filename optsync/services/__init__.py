"""Use cases: each function is one thing a user does, run inside one transaction."""
