"""The records of session-persistence: plain, typed dataclasses.

What a processor hands in is a :class:`SessionObject` (its ids and an ordered list of
:class:`Interaction`); what a store hands back is a :class:`PersistedSession`, the same data plus
the store's bookkeeping (``session_id``, timestamps, expiry, metadata, tags and ``version``).

Ownership: every object a store returns is the caller's own copy, and every object passed in is
copied before it is kept. Mutating either never changes what the store holds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from ulid import ULID

from .errors import InvalidInputError, InvalidUpdateError

__all__ = [
    "UNSET",
    "BackupInfo",
    "BackupOptions",
    "CheckProblem",
    "CheckReport",
    "HealthStatus",
    "Interaction",
    "InteractionMessage",
    "JSONValue",
    "MergeStrategy",
    "OptimizeResult",
    "PersistedSession",
    "ProgressCallback",
    "RestoreOptions",
    "RestoreResult",
    "SessionBackup",
    "SessionFilter",
    "SessionHeader",
    "SessionObject",
    "SessionQueryOptions",
    "SessionUpdate",
    "SortField",
    "SortOrder",
    "StoreStats",
    "Unset",
]

#: A JSON-like value. Stores accept more than this (see :mod:`session_persistence.serialization`).
JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"

SortField: TypeAlias = Literal[
    "created_at", "updated_at", "expires_at", "activity_id", "session_id"
]
SortOrder: TypeAlias = Literal["asc", "desc"]
MergeStrategy: TypeAlias = Literal["skip_existing", "overwrite", "update_newer"]

_SORT_FIELDS: frozenset[str] = frozenset(
    ("created_at", "updated_at", "expires_at", "activity_id", "session_id")
)


class Unset(enum.Enum):
    """Sentinel type for "argument not given".

    Needed where ``None`` is itself a meaningful value: ``expires_at=None`` means "never
    expires", while leaving ``expires_at`` out means "use the store's default TTL" (create) or
    "leave it as it is" (update).
    """

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: The single :class:`Unset` value.
UNSET = Unset.UNSET


@dataclass(slots=True)
class InteractionMessage:
    """One message of an interaction: a request or one of its responses.

    Mirrors the Sentient framework's ``RequestMessage``/``ResponseMessage``.

    Attributes:
        event: The payload: any JSON-like value, or any type the codec knows (ULIDs,
            datetimes, sets, registered dataclasses, ...).
        sender: Who sent the message.
        recipients: Who it is addressed to.
    """

    event: Any
    sender: str | None = None
    recipients: set[str] | None = None


@dataclass(slots=True)
class Interaction:
    """A request and the responses it produced, in order."""

    request: InteractionMessage
    responses: list[InteractionMessage] = field(default_factory=list)


@dataclass(slots=True)
class SessionObject:
    """What a processor hands to a store: its ids and its interactions.

    Attributes:
        processor_id: The processor that owns the session.
        activity_id: The activity (a ``ULID``, or a string for foreign ids).
        request_id: The request (a ``ULID``, or a string).
        interactions: The conversation so far, oldest first.
    """

    processor_id: str
    activity_id: ULID | str
    request_id: ULID | str
    interactions: list[Interaction] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistedSession:
    """A session as stored: the :class:`SessionObject` fields plus the store's bookkeeping.

    Instances are frozen; use :func:`dataclasses.replace` to derive a changed copy. The lists and
    dicts inside belong to the caller who received the instance.

    Attributes:
        session_id: Store-generated id (a monotonic ULID string unless imported).
        processor_id: See :class:`SessionObject`.
        activity_id: See :class:`SessionObject`.
        request_id: See :class:`SessionObject`.
        interactions: Oldest first.
        created_at: When the session was created (UTC).
        updated_at: When it last changed (UTC).
        expires_at: When it expires (UTC), or ``None`` for never.
        last_accessed_at: When it was last read or written (UTC); not part of ``version``.
        metadata: Free-form user data.
        tags: User labels, in the order given.
        version: 1 on create, +1 on every change.
    """

    session_id: str
    processor_id: str
    activity_id: ULID | str
    request_id: ULID | str
    interactions: list[Interaction]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_accessed_at: datetime
    metadata: dict[str, Any]
    tags: list[str]
    version: int

    @property
    def interaction_count(self) -> int:
        """The number of interactions."""
        return len(self.interactions)

    def to_session_object(self) -> SessionObject:
        """Return the :class:`SessionObject` part (sharing the interaction list)."""
        return SessionObject(
            processor_id=self.processor_id,
            activity_id=self.activity_id,
            request_id=self.request_id,
            interactions=self.interactions,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionHeader:
    """Everything about a session except its interactions: what indexes and queries use.

    Backends keep headers in memory (or in indexed columns) so that listing, counting,
    filtering, sorting and statistics never parse whole sessions. Headers are immutable and
    shared; their ``metadata`` and ``tags`` must be treated as read-only.

    Attributes:
        interaction_count: ``len(interactions)`` of the stored session.
        size_bytes: The encoded size of the session, as used for ``max_session_bytes``.
    """

    session_id: str
    processor_id: str
    activity_id: ULID | str
    request_id: ULID | str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_accessed_at: datetime
    metadata: Mapping[str, Any]
    tags: Sequence[str]
    version: int
    interaction_count: int
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdate:
    """A typed update: the only fields an update may change.

    Fields left :data:`UNSET` are not changed. ``metadata`` and ``tags`` replace the stored
    values unless ``merge_metadata`` is true, in which case ``metadata`` keys are merged into
    (shallowly overwrite) the stored ones.
    """

    interactions: Sequence[Interaction] | Unset = UNSET
    metadata: Mapping[str, Any] | Unset = UNSET
    tags: Sequence[str] | Unset = UNSET
    expires_at: datetime | Unset | None = UNSET
    merge_metadata: bool = False

    _FIELDS = ("interactions", "metadata", "tags", "expires_at", "merge_metadata")

    def __post_init__(self) -> None:
        bad: list[str] = []
        if not isinstance(self.interactions, Unset) and not _is_interaction_list(self.interactions):
            bad.append("interactions")
        if not isinstance(self.metadata, Unset) and not _is_str_mapping(self.metadata):
            bad.append("metadata")
        if not isinstance(self.tags, Unset) and not _is_tag_list(self.tags):
            bad.append("tags")
        if not isinstance(self.expires_at, Unset | None) and not _is_aware(self.expires_at):
            bad.append("expires_at")
        if not isinstance(self.merge_metadata, bool):
            bad.append("merge_metadata")
        if bad:
            raise InvalidUpdateError(
                f"invalid value for {', '.join(bad)}: interactions must be a list of "
                "Interaction, metadata a dict with str keys, tags a list of str, expires_at a "
                "timezone-aware datetime or None",
                fields=bad,
            )

    @classmethod
    def coerce(cls, updates: SessionUpdate | Mapping[str, Any]) -> SessionUpdate:
        """Build a :class:`SessionUpdate` from a mapping, rejecting every other key.

        Raises:
            InvalidUpdateError: A key other than the updatable fields (e.g. ``session_id`` or
                ``version``), or a value of the wrong type.
        """
        if isinstance(updates, SessionUpdate):
            return updates
        if not isinstance(updates, Mapping):
            raise InvalidUpdateError(
                f"updates must be a dict or SessionUpdate, not {type(updates).__name__}"
            )
        unknown = sorted(str(key) for key in updates if key not in cls._FIELDS)
        if unknown:
            raise InvalidUpdateError(
                f"cannot update {', '.join(unknown)}: only interactions, metadata, tags and "
                "expires_at can be updated (plus the merge_metadata flag)",
                fields=unknown,
            )
        return cls(**updates)

    @property
    def is_empty(self) -> bool:
        """True when the update changes nothing."""
        return all(
            isinstance(value, Unset)
            for value in (self.interactions, self.metadata, self.tags, self.expires_at)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFilter:
    """Which sessions a query selects. Every given condition must hold.

    Attributes:
        processor_id: One id, or a list of ids (any of them).
        activity_id: One id, or a list (ULIDs and their strings match each other).
        request_id: One id, or a list.
        created_after: ``created_at`` strictly after this.
        created_before: ``created_at`` strictly before this.
        updated_after: ``updated_at`` strictly after this.
        updated_before: ``updated_at`` strictly before this.
        expires_after: ``expires_at`` strictly after this (never-expiring sessions match).
        expires_before: ``expires_at`` strictly before this (never-expiring ones do not).
        has_interactions: Whether the session has at least one interaction.
        interaction_count_min: At least this many interactions.
        interaction_count_max: At most this many interactions.
        metadata: Every given key present and equal (nested values compared by value).
        tags: At least one of these tags (any-of).
        tags_all: All of these tags.
        include_expired: Also select expired sessions (by default they are invisible).
    """

    processor_id: str | Sequence[str] | None = None
    activity_id: ULID | str | Sequence[ULID | str] | None = None
    request_id: ULID | str | Sequence[ULID | str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    expires_after: datetime | None = None
    expires_before: datetime | None = None
    has_interactions: bool | None = None
    interaction_count_min: int | None = None
    interaction_count_max: int | None = None
    metadata: Mapping[str, Any] | None = None
    tags: Sequence[str] | None = None
    tags_all: Sequence[str] | None = None
    include_expired: bool = False

    def __post_init__(self) -> None:
        for name in (
            "created_after",
            "created_before",
            "updated_after",
            "updated_before",
            "expires_after",
            "expires_before",
        ):
            value = getattr(self, name)
            if value is not None and not _is_aware(value):
                raise InvalidInputError(
                    f"SessionFilter.{name} must be a timezone-aware datetime, got {value!r}"
                )
        for name in ("interaction_count_min", "interaction_count_max"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"SessionFilter.{name} must be an int >= 0")
        for name in ("tags", "tags_all"):
            value = getattr(self, name)
            if value is not None and not _is_tag_list(value):
                raise InvalidInputError(f"SessionFilter.{name} must be a list of str")
        if self.metadata is not None and not _is_str_mapping(self.metadata):
            raise InvalidInputError("SessionFilter.metadata must be a dict with str keys")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionQueryOptions:
    """Sorting and pagination. Results are sorted first, then ``offset``/``limit`` apply.

    Ties are broken by ``session_id`` so pages are stable.
    """

    limit: int | None = None
    offset: int = 0
    sort_by: SortField = "created_at"
    sort_order: SortOrder = "asc"

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise InvalidInputError(f"limit must be an int >= 0 or None, got {self.limit!r}")
        if not isinstance(self.offset, int) or self.offset < 0:
            raise InvalidInputError(f"offset must be an int >= 0, got {self.offset!r}")
        if self.sort_by not in _SORT_FIELDS:
            raise InvalidInputError(
                f"sort_by must be one of {', '.join(sorted(_SORT_FIELDS))}, got {self.sort_by!r}"
            )
        if self.sort_order not in ("asc", "desc"):
            raise InvalidInputError(f"sort_order must be 'asc' or 'desc', got {self.sort_order!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStats:
    """A snapshot of a store's contents and health figures.

    Attributes:
        backend: Backend-specific figures (journal bytes, conflicts, quarantined files, ...).
    """

    total_sessions: int
    active_sessions: int
    expired_sessions: int
    sessions_by_processor: dict[str, int]
    storage_size_bytes: int
    oldest_session: datetime | None
    newest_session: datetime | None
    backend: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthStatus:
    """The result of :meth:`SessionStore.health_check`: real probes, not a sticky flag.

    Attributes:
        healthy: True when no probe reported an issue.
        issues: One sentence per problem, saying what is wrong.
        last_check: When the probes ran (UTC).
        details: Probe figures (recent error count, window, backend figures).
    """

    healthy: bool
    issues: list[str]
    last_check: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizeResult:
    """What :meth:`SessionStore.optimize` did.

    Attributes:
        operations_performed: One line per operation, e.g. ``"removed 3 expired sessions"``.
        performance_impact: Figures measured while optimizing (duration, items removed, ...).
    """

    operations_performed: list[str]
    performance_impact: dict[str, Any] = field(default_factory=dict)


#: ``progress(done, total)``: how far a long operation has got; ``total`` is ``None`` when it
#: cannot be known in advance (an import from a stream that cannot seek).
ProgressCallback: TypeAlias = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckProblem:
    """One thing :meth:`SessionStore.check` found wrong.

    Attributes:
        kind: What is wrong: ``"session"`` (a stored session cannot be read back),
            ``"file"`` (a stray or orphan file in the store), ``"journal"``, ``"index"``,
            ``"database"``, ``"backup"``, or ``"quarantine"`` (a file quarantined earlier,
            waiting for an operator).
        target: The session id, backup id or path concerned.
        problem: What is wrong and, when a repair cannot fix it, what to do.
        repairable: Whether ``check(repair=True)`` acts on it (sets it aside, deletes or
            rewrites what is stale); otherwise ``problem`` says what an operator does.
        action: What ``repair=True`` did about it; ``None`` if nothing was done.
    """

    kind: str
    target: str
    problem: str
    repairable: bool = False
    action: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What :meth:`SessionStore.check` verified and found.

    Attributes:
        sessions_checked: Stored sessions read back and validated.
        backups_checked: Backups whose checksum and records were verified.
        problems: Everything found wrong, repaired or not.
        repair: Whether the check was allowed to repair.
    """

    sessions_checked: int
    backups_checked: int
    problems: list[CheckProblem] = field(default_factory=list)
    repair: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems

    @property
    def unresolved(self) -> list[CheckProblem]:
        """The problems no repair acted on (an operator has to look at these)."""
        return [problem for problem in self.problems if problem.action is None]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupOptions:
    """What :meth:`SessionStore.create_backup` puts in a backup.

    Attributes:
        include_expired: Also back up sessions that have expired but are not cleaned up yet.
        filter: Back up only the sessions this filter selects (its ``include_expired`` is
            ignored in favour of the option above).
        compress: Compress the backup's body with zlib (the header stays readable).
        metadata: Free-form JSON values stored with the backup (a label, a reason).
    """

    include_expired: bool = False
    filter: SessionFilter | None = None
    compress: bool = False
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.include_expired, bool) or not isinstance(self.compress, bool):
            raise InvalidInputError("include_expired and compress must be True or False")
        if self.filter is not None and not isinstance(self.filter, SessionFilter):
            raise InvalidInputError("filter must be a SessionFilter or None")
        if self.metadata is not None and not _is_str_mapping(self.metadata):
            raise InvalidInputError("backup metadata must be a mapping with str keys")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupInfo:
    """A backup's header, as :meth:`SessionStore.list_backups` reads it (no sessions).

    Attributes:
        backup_id: The backup's ULID.
        created_at: When the snapshot was taken (the store's clock, UTC).
        session_count: How many sessions it holds.
        size_bytes: Size of the backup file.
        store_type: The kind of store it was taken from.
        compressed: Whether the body is zlib-compressed.
        format: The backup format version.
        metadata: What was given in :attr:`BackupOptions.metadata`.
        sealed_with: The id of the key that sealed the body (``None``: not sealed). Restoring
            a sealed backup needs that key in the store's keyring; listing it does not.
    """

    backup_id: str
    created_at: datetime
    session_count: int
    size_bytes: int
    store_type: str
    compressed: bool
    format: int
    metadata: dict[str, Any] = field(default_factory=dict)
    sealed_with: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionBackup:
    """A consistent snapshot of a store's sessions.

    Attributes:
        backup_id: The backup's ULID (sorts in creation order).
        created_at: When the snapshot was taken (UTC).
        sessions: The sessions, oldest first, as they were at that moment.
        metadata: The backup's header: ``store_type``, ``session_count``, ``size_bytes``,
            ``checksum``, ``format``, ``compressed``, ``sealed_with``, ``include_expired``,
            ``filter`` and the user's ``metadata``.
    """

    backup_id: str
    created_at: datetime
    sessions: list[PersistedSession]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreOptions:
    """How :meth:`SessionStore.restore_from_backup` and ``import_sessions`` apply sessions.

    Attributes:
        merge_strategy: For a session that already exists (expired or not):
            ``"skip_existing"`` keeps the stored one; ``"overwrite"`` replaces it;
            ``"update_newer"`` replaces it only if the incoming one was updated later.
        dry_run: Validate and report exactly what would happen; write nothing.
    """

    merge_strategy: MergeStrategy = "skip_existing"
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.merge_strategy not in ("skip_existing", "overwrite", "update_newer"):
            raise InvalidInputError(
                "merge_strategy must be 'skip_existing', 'overwrite' or 'update_newer', "
                f"got {self.merge_strategy!r}"
            )
        if not isinstance(self.dry_run, bool):
            raise InvalidInputError("dry_run must be True or False")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreResult:
    """What a restore or import did (or, for a dry run, would do).

    Attributes:
        restored_count: Sessions written that did not exist.
        skipped_count: Sessions left as stored (by the merge strategy).
        overwritten_count: Existing sessions replaced.
        errors: Problems that stopped part of a batched restore; empty when all went well.
        dry_run: Whether nothing was written.
    """

    restored_count: int = 0
    skipped_count: int = 0
    overwritten_count: int = 0
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False


def as_timedelta(value: float | timedelta, option: str) -> timedelta:
    """Return ``value`` (seconds or a timedelta) as a timedelta.

    Raises:
        InvalidInputError: ``value`` is neither, or is negative.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    else:
        raise InvalidInputError(f"{option} must be seconds or a timedelta, got {value!r}")
    if result < timedelta(0):
        raise InvalidInputError(f"{option} must not be negative, got {value!r}")
    return result


def _is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _is_str_mapping(value: object) -> bool:
    return isinstance(value, Mapping) and all(isinstance(key, str) for key in value)


def _is_tag_list(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(tag, str) for tag in value)
    )


def _is_interaction_list(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(item, Interaction) for item in value)
    )
