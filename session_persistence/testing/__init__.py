"""The public conformance suite: check that a store keeps the :class:`SessionStore` contract.

Subclass :class:`StoreConformance` in a pytest module and implement ``make_store``::

    from session_persistence.testing import StoreConformance

    class TestMyStore(StoreConformance):
        def make_store(self, config, path):
            return MyStore(config=config, directory=path)

Every test then runs against a fresh store in its own temporary directory, with a
:class:`FakeClock` in ``config.clock`` (expiry is tested without sleeping). The capability
classes (:class:`CrudConformance`, :class:`QueryConformance`, ...) can also be used one by one.
Requires ``pytest``, ``pytest-asyncio`` and ``hypothesis`` (the ``testing`` extra).
"""

from ._backups import BackupConformance
from ._base import FakeClock, StoreTestBase, eventually, interaction, session_object
from ._crud import CrudConformance
from ._events import EventConformance
from ._expiry import ExpiryConformance
from ._forks import ForkConformance
from ._history import HistoryConformance
from ._keyed import KeyedConformance
from ._limits import LimitsConformance
from ._monitoring import MonitoringConformance
from ._query import QueryConformance
from ._sliding import SlidingExpiryConformance
from ._stateful import StatefulConformance
from ._transactions import TransactionConformance
from ._values import ValueConformance

__all__ = [
    "BackupConformance",
    "CrudConformance",
    "EventConformance",
    "ExpiryConformance",
    "FakeClock",
    "ForkConformance",
    "HistoryConformance",
    "KeyedConformance",
    "LimitsConformance",
    "MonitoringConformance",
    "QueryConformance",
    "SlidingExpiryConformance",
    "StatefulConformance",
    "StoreConformance",
    "StoreTestBase",
    "TransactionConformance",
    "ValueConformance",
    "eventually",
    "interaction",
    "session_object",
]


class StoreConformance(
    CrudConformance,
    HistoryConformance,
    QueryConformance,
    ExpiryConformance,
    SlidingExpiryConformance,
    KeyedConformance,
    ForkConformance,
    LimitsConformance,
    TransactionConformance,
    EventConformance,
    MonitoringConformance,
    BackupConformance,
    ValueConformance,
    StatefulConformance,
):
    """Every capability of the store contract; subclass it once per store."""
