"""The error hierarchy: one root, codes, stdlib mix-ins, structured attributes, pickling."""

from __future__ import annotations

import pickle

import pytest

from session_persistence import errors
from session_persistence.errors import (
    BackupError,
    ConfigurationError,
    InvalidSessionIdError,
    InvalidUpdateError,
    MigrationError,
    SealingKeyError,
    SerializationError,
    SessionConflictError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
    SessionStoreError,
    SessionTooLargeError,
    StoreClosedError,
    StoreCorruptionError,
    StoreIOError,
    StoreLockTimeoutError,
    StoreReadOnlyError,
    TransactionError,
    UnsavedChangesError,
    UnsealedRecordError,
)

EXAMPLES: list[SessionStoreError] = [
    SessionNotFoundError("abc"),
    SessionExistsError("abc"),
    SessionConflictError("abc", 1, 2),
    TransactionError("failed", transaction_id="01TX", conflicts=["a", "b"]),
    InvalidSessionIdError("../x"),
    InvalidUpdateError("no", fields=["version"]),
    SerializationError("cannot", "interactions[0].request.event"),
    SessionTooLargeError("abc", 20, 10),
    SessionLimitError(5),
    ConfigurationError("max_sessions", "must be an integer >= 1"),
    StoreClosedError(),
    StoreCorruptionError("bad file", "/tmp/x.json"),
    StoreIOError("disk full", "/tmp/y"),
    StoreLockTimeoutError("lock busy"),
    StoreReadOnlyError("opened read-only"),
    BackupError("bad backup", "01BK"),
    MigrationError("copy failed", "sqlite:./s.db"),
    UnsavedChangesError("2 not saved", ["01A", "01B"]),
    SealingKeyError("no key k1", "k1"),
    UnsealedRecordError("a record in clear"),
]


def test_every_public_error_derives_from_the_root() -> None:
    """Every exception class exported by errors.py is a SessionStoreError."""
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), SessionStoreError)


def test_examples_cover_every_class() -> None:
    """The pickling examples include one instance of every concrete error class."""
    covered = {type(error).__name__ for error in EXAMPLES}
    assert covered == set(errors.__all__) - {"SessionStoreError", "InvalidInputError"}


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_their_attributes(error: SessionStoreError) -> None:
    """An error survives pickling with its type, message, code and attributes."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.code == error.code
    assert copy.__dict__ == error.__dict__


def test_codes_and_stdlib_mixins() -> None:
    """Codes are stable and stdlib bases match meaning."""
    assert SessionNotFoundError("x").code == "SESSION_NOT_FOUND"
    assert isinstance(SessionNotFoundError("x"), LookupError)
    assert SessionConflictError("x", 1, 2).code == "SESSION_CONFLICT"
    assert TransactionError("x").code == "TRANSACTION_ERROR"
    assert ConfigurationError("opt", "bad").code == "INVALID_CONFIG"
    assert isinstance(ConfigurationError("opt", "bad"), ValueError)
    assert isinstance(SerializationError("x"), ValueError)
    assert isinstance(StoreLockTimeoutError("x"), TimeoutError)
    assert isinstance(StoreIOError("x"), OSError)


def test_messages_say_what_to_do() -> None:
    """Messages carry the facts and the remedy."""
    conflict = SessionConflictError("s1", 3, 4)
    assert (conflict.session_id, conflict.expected, conflict.actual) == ("s1", 3, 4)
    assert "expected version 3, found 4" in str(conflict)
    assert "retry" in str(conflict)
    assert "<absent>" in str(SessionConflictError("s1", None, 2))
    assert "option 'max_sessions'" in str(ConfigurationError("max_sessions", "bad"))
    assert str(SerializationError("cannot serialize", "metadata.x")) == (
        "cannot serialize at metadata.x"
    )
    long_id = "x" * 500
    assert len(str(InvalidSessionIdError(long_id))) < 200


def test_tree_is_drawn_in_the_module_docstring() -> None:
    """The module docstring shows every error class."""
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert name in errors.__doc__
