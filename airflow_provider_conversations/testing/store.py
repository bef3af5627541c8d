"""The record store every simulator keeps its conversations in: rendered records, their serialized blobs, one
sorted index per time key, and cached selections.

A simulator serves pages by joining pre-serialized blobs, so a page costs a slice and a ``b",".join`` rather
than a JSON encoding, and a million records stay affordable. What a vendor's filters, bounds and paging mean
stays in its simulator: the store only keeps the records sorted, finds the rows between two keys, and forgets
every cached selection whenever a record is added or changed (also while a walk is running: every method
holds the simulator's lock).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import cached_property
from itertools import islice
from threading import RLock
from typing import Any, NamedTuple, TypeVar

import orjson

Record = dict[str, Any]
KeyFunction = Callable[[Record], Any]
T = TypeVar("T")
#: Up to this many changed records are moved within an index; more re-sort it.
_FEW = 64


def compact_json(record: Record) -> bytes:
    """``orjson.dumps`` copied to an exact-size ``bytes``: orjson hands back a buffer with kilobytes of spare
    capacity, and the copy holds a million records in a quarter of the memory."""
    return bytes(memoryview(orjson.dumps(record)))


class Index(NamedTuple):
    """Row numbers in ascending key order (ties in row order), and their keys for bisection.

    ``rows`` is a ``range`` while the index follows the store's own order, so the common case costs no list.
    """

    rows: Sequence[int]
    keys: list[Any]


class Selection:
    """The rows of one index between two bounds that match a filter, in ascending key order."""

    def __init__(self, index: Index, positions: Sequence[int]) -> None:
        self._index = index
        #: Positions in the index (a ``range`` when nothing was filtered out).
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    @cached_property
    def rows(self) -> Sequence[int]:
        """Row numbers into :attr:`SortedStore.records` and :attr:`SortedStore.blobs`."""
        return _pick(self._index.rows, self.positions)

    @cached_property
    def keys(self) -> Sequence[Any]:
        """The index keys of :attr:`rows` (built on first use: most vendors page by position, not by key)."""
        return _pick(self._index.keys, self.positions)


class SortedStore:
    """Records kept in ``order`` (or in insertion order without one), with an index per entry of ``keys``.

    :param lock: the simulator's lock; every read that must see one consistent state takes it too.
    :param keys: index name -> the key a record is found by (a time field, often with the id as tie-breaker).
    :param order: the order of :attr:`records` (``None``: insertion order, as an offset API that lists by
        insertion would have it).
    :param blob: how a record is serialized for a page (:func:`compact_json` where memory matters).
    :param id_field: the record field :meth:`mutate` finds records by.
    :param cache_limit: cached selections kept before the cache starts over (each filter combination is one).
    """

    def __init__(
        self,
        lock: RLock,
        *,
        keys: Mapping[str, KeyFunction],
        order: KeyFunction | None = None,
        blob: Callable[[Record], bytes] = orjson.dumps,
        id_field: str = "id",
        cache_limit: int = 512,
    ) -> None:
        self._lock = lock
        self._key_functions = dict(keys)
        self._order = order
        self._blob = blob
        self._id_field = id_field
        self._cache_limit = cache_limit
        self._cache: dict[Hashable, Any] = {}
        self.records: list[Record] = []
        #: ``blobs[i]`` is ``records[i]`` serialized.
        self.blobs: list[bytes] = []
        self._indexes = {name: Index(range(0), []) for name in self._key_functions}
        #: id -> record (records change in place, so this never needs rebuilding), for detail endpoints.
        self._by_id: dict[Any, Record] = {}

    # ------------------------------------------------------------------ reading

    def get(self, record_id: Any) -> Record | None:
        """The record with this id, or ``None`` (what a detail endpoint looks up)."""
        with self._lock:
            return self._by_id.get(record_id)

    def index(self, name: str) -> Index:
        """The whole index ``name`` (replaced, never changed in place, when the records change)."""
        return self._indexes[name]

    def span(self, name: str, lo: Any = None, hi: Any = None, *,
             inclusive: tuple[bool, bool] = (True, True)) -> tuple[int, int]:
        """The positions ``[a, b)`` in index ``name`` of the keys between ``lo`` and ``hi`` (``None``: open)."""
        keys = self._indexes[name].keys
        a = 0 if lo is None else (bisect.bisect_left if inclusive[0] else bisect.bisect_right)(keys, lo)
        b = len(keys) if hi is None else (bisect.bisect_right if inclusive[1] else bisect.bisect_left)(keys, hi)
        return a, b

    def select(self, name: str, lo: Any = None, hi: Any = None, *, inclusive: tuple[bool, bool] = (True, True),
               match: Callable[[Record], bool] | None = None, cache: Hashable = None) -> Selection:
        """The rows of index ``name`` with keys between ``lo`` and ``hi`` for which ``match`` holds.

        With ``cache`` (a hashable that stands for ``match``), the selection is kept until the records change:
        a walk asks for the same one page after page.
        """
        if cache is None:
            return self._select(name, lo, hi, inclusive, match)
        return self.cached(("select", name, lo, hi, inclusive, cache),
                           lambda: self._select(name, lo, hi, inclusive, match))

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, kept under ``key`` until the records change."""
        with self._lock:
            if key in self._cache:
                hit: T = self._cache[key]
                return hit
            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
            value = self._cache[key] = compute()
            return value

    def _select(self, name: str, lo: Any, hi: Any, inclusive: tuple[bool, bool],
                match: Callable[[Record], bool] | None) -> Selection:
        with self._lock:
            index = self._indexes[name]
            a, b = self.span(name, lo, hi, inclusive=inclusive)
            if match is None:
                return Selection(index, range(a, b))
            records, rows = self.records, index.rows
            return Selection(index, [j for j in range(a, b) if match(records[rows[j]])])

    # ------------------------------------------------------------------ writing

    def add(self, records: Iterable[Record]) -> None:
        """Insert records. New ones after everything (the usual case while a walk runs) are appended; others
        re-sort the store."""
        new = list(records)
        if not new:
            return
        with self._lock:
            self._cache.clear()
            id_field = self._id_field
            self._by_id.update((r[id_field], r) for r in new if id_field in r)
            order = self._order
            if order is not None:
                new.sort(key=order)
            blobs = [self._blob(r) for r in new]
            if order is not None and self.records and order(new[0]) < order(self.records[-1]):
                self._rebuild(self.records + new, self.blobs + blobs)
                return
            first = len(self.records)
            self.records.extend(new)
            self.blobs.extend(blobs)
            for name, key in self._key_functions.items():
                self._indexes[name] = _merged(self._indexes[name], _sorted(first, [key(r) for r in new]))

    def mutate(self, ids: Iterable[str] | None, change: Callable[[Record], None], *,
               where: Callable[[Record], bool] | None = None) -> int:
        """Apply ``change`` to the records with these ids (``None``: every record) for which ``where`` holds,
        re-serialize and re-index them. Returns how many were changed."""
        with self._lock:
            records, id_field = self.records, self._id_field
            if ids is None:
                rows = [i for i, r in enumerate(records) if where is None or where(r)]
            else:
                wanted = set(ids)
                rows = [i for i, r in enumerate(records) if r[id_field] in wanted and (where is None or where(r))]
            if not rows:
                return 0
            self._cache.clear()
            order = self._order
            before = {name: [key(records[i]) for i in rows] for name, key in self._key_functions.items()}
            ranks = [order(records[i]) for i in rows] if order is not None else []
            for i in rows:
                change(records[i])
                self.blobs[i] = self._blob(records[i])
            if order is not None and ranks != [order(records[i]) for i in rows]:
                self._rebuild(records, self.blobs)
                return len(rows)
            for name, key in self._key_functions.items():
                after = [key(records[i]) for i in rows]
                if after == before[name]:
                    continue
                if len(rows) <= _FEW:
                    self._indexes[name] = _moved(self._indexes[name], rows, before[name], after)
                else:
                    self._indexes[name] = _sorted(0, [key(r) for r in records])
            return len(rows)

    def _rebuild(self, records: list[Record], blobs: list[bytes]) -> None:
        """Sort everything again (stable: equal keys keep their order) and rebuild every index."""
        order = self._order
        assert order is not None
        ranked = sorted(range(len(records)), key=lambda i: order(records[i]))
        self.records = [records[i] for i in ranked]
        self.blobs = [blobs[i] for i in ranked]
        for name, key in self._key_functions.items():
            self._indexes[name] = _sorted(0, [key(r) for r in self.records])


def _sorted(first: int, keys: list[Any]) -> Index:
    """Rows ``first, first + 1, ...`` with these keys, in ascending key order (ties in row order)."""
    if all(map(operator.le, keys, islice(keys, 1, None))):
        return Index(range(first, first + len(keys)), keys)
    ranked = sorted(range(len(keys)), key=keys.__getitem__)
    return Index([first + i for i in ranked], [keys[i] for i in ranked])


def _merged(index: Index, fresh: Index) -> Index:
    """``index`` with the rows of ``fresh`` (all numbered after its own) merged in, ties in row order."""
    rows, keys = index.rows, index.keys
    if not keys or not fresh.keys[0] < keys[-1]:  # all after the last one, the usual case: append
        if isinstance(rows, range) and isinstance(fresh.rows, range) and rows.stop == fresh.rows.start:
            return Index(range(rows.start if rows else fresh.rows.start, fresh.rows.stop), [*keys, *fresh.keys])
        return Index([*rows, *fresh.rows], [*keys, *fresh.keys])
    # Two sorted runs: a stable sort merges them in linear time, and equal keys keep the older row first.
    all_rows, all_keys = [*rows, *fresh.rows], [*keys, *fresh.keys]
    ranked = sorted(range(len(all_keys)), key=all_keys.__getitem__)
    return Index([all_rows[j] for j in ranked], [all_keys[j] for j in ranked])


def _moved(index: Index, rows: list[int], before: list[Any], after: list[Any]) -> Index:
    """``index`` with a few ``rows`` moved from their ``before`` keys to their ``after`` ones (ties in row
    order), cheaper than sorting every row again."""
    order, keys = list(index.rows), list(index.keys)
    for row, key in zip(rows, before, strict=True):
        j = bisect.bisect_left(keys, key)
        while order[j] != row:
            j += 1
        del order[j], keys[j]
    for row, key in zip(rows, after, strict=True):
        j = bisect.bisect_left(keys, key)
        while j < len(keys) and keys[j] == key and order[j] < row:
            j += 1
        order.insert(j, row)
        keys.insert(j, key)
    return Index(order, keys)


def _pick(values: Sequence[Any], positions: Sequence[int]) -> Sequence[Any]:
    """``values`` at ``positions``, without a copy where it can (an index in the store's own order maps each
    position to itself)."""
    if isinstance(values, range) and values.start == 0 and values.step == 1:
        return positions
    if isinstance(positions, range):
        return values[positions.start:positions.stop]
    return [values[j] for j in positions]
