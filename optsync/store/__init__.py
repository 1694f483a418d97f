"""Persistence: SQLAlchemy models, the engine, repositories, the outbox and migrations."""
