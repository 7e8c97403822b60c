"""The PostgreSQL store (the ``postgres`` extra: psycopg 3 and psycopg_pool)."""

from .store import PostgresSessionStore

__all__ = ["PostgresSessionStore"]
