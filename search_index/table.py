"""The structured half of the search index: a columnar in-memory table of providers.

Broad structured filters (role, state licensure, telehealth, fee, insurance,
distance, freshness) are evaluated here as vectorised numpy operations over
one array per attribute, never by walking whoosh posting lists. Multi-valued
attributes (modalities, concerns, languages, insurance, licensed states, age
groups) are bitsets: one bit per vocabulary value, so "any of" is one AND.

The table is derived data: it is loaded from the database (or from a snapshot
saved next to the whoosh index) and kept current from the change log. Its
``position`` is the last change-log id it reflects.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

#: Multi-valued attributes, stored as bitsets over their vocabulary.
MULTI_FIELDS = ("modalities", "concerns", "age_groups", "languages", "insurance",
                "licensed_states", "specialties")
#: Single-valued coded attributes (vocabulary index; -1 when absent).
CODED_FIELDS = ("role", "provider_type", "gender", "state")
#: Plain columns and their numpy types / missing values.
PLAIN_FIELDS = {
    "telehealth": (np.bool_, False), "in_person": (np.bool_, False),
    "sliding_scale": (np.bool_, False), "accepting_new_patients": (np.bool_, False),
    "accepts_coordinated_care": (np.bool_, False), "active": (np.bool_, False),
    "latitude": (np.float64, np.nan), "longitude": (np.float64, np.nan),
    "fee_min": (np.int32, -1), "fee_max": (np.int32, -1), "wait_days": (np.int32, -1),
    "verified_at": (np.float64, np.nan), "reported": (np.bool_, False),
    "clinic_id": (np.int64, -1),
    "version": (np.float64, np.nan),
}
TABLE_FIELDS = ("id",) + MULTI_FIELDS + CODED_FIELDS + tuple(PLAIN_FIELDS)

_MISSING = object()


def _bit_dtype(size: int):
    for dtype, bits in ((np.uint8, 8), (np.uint16, 16), (np.uint32, 32), (np.uint64, 64)):
        if size <= bits:
            return dtype
    raise ValueError("a bitset vocabulary has at most 64 values")


#: Below this many rows ``bit_counts`` counts bit planes directly.
SMALL_COUNT = 20_000
#: A word of a bitset with at most this many vocabulary bits is counted bit by bit.
FEW_BITS = 3
#: ``bit_counts`` looks at every this many rows to tell whether a word is mostly zero.
SPARSE_PROBE = 64


def bit_counts(column: np.ndarray, width: int | None = None) -> np.ndarray:
    """How many entries of a bitset column have each bit set: ``width`` counts (the
    vocabulary's size; all ``8 * itemsize`` bits when None), bits past it are not looked at.

    Each 16-bit word (or byte) of the bitsets holding vocabulary bits is counted with one
    ``bincount``; the entries with bit b set are then the bins whose number has bit b
    set: the counts of the words that occur times their bits (one small product, not a
    sum per bit over the whole histogram). A word holding only a few vocabulary bits is
    counted bit by bit; a word that is zero in most rows (a sample of every
    ``SPARSE_PROBE``-th row tells) is counted over its non-zero rows only. Few rows are
    counted bit plane by bit plane instead (the histograms cost more).
    """
    bits = 8 * column.dtype.itemsize
    width = bits if width is None else width
    if len(column) < SMALL_COUNT:
        planes = np.unpackbits(column.view(np.uint8).reshape(-1, bits // 8), axis=1,
                               bitorder="little")
        return planes.sum(axis=0, dtype=np.int64)[:width]
    word = min(bits, 16)
    parts = bits // word
    words = np.ascontiguousarray(column).view(f"u{word // 8}").reshape(-1, parts)
    counts = np.zeros(parts * word, dtype=np.int64)
    shifts = np.arange(word, dtype=np.int64)
    for part in range(-(-width // word)):  # little-endian: word 0 holds the lowest bits
        used = min(word, width - word * part)
        if used <= FEW_BITS:
            for bit in range(used):
                counts[word * part + bit] = np.count_nonzero(
                    words[:, part] & words.dtype.type(1 << bit))
            continue
        column_words = words[:, part]
        if np.count_nonzero(column_words[::SPARSE_PROBE]) * 4 < len(column_words[::SPARSE_PROBE]):
            # Mostly zero words (the rarer values of a vocabulary): zero words hold no
            # bit, so only the others are counted.
            column_words = column_words[column_words != 0]
        histogram = np.bincount(column_words)
        # Only the words that occur (a few thousand combinations at most) are summed.
        present = np.flatnonzero(histogram)
        has_bit = (present[:, None] >> shifts) & 1
        counts[word * part:word * (part + 1)] = histogram[present] @ has_bit
    return counts[:width]


def gather(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``column[rows]``, by ``np.take`` (a quarter faster than fancy indexing for the
    sorted row numbers of a search's hundreds of thousands of matches; the same values)."""
    return np.take(column, rows)


class ProviderTable:
    """Providers as numpy columns, addressed by row; ``row_of_id`` maps ids to rows."""

    def __init__(self, vocabularies: Mapping[str, Sequence[str]], capacity: int = 1024):
        missing = set(MULTI_FIELDS + CODED_FIELDS) - set(vocabularies)
        if missing:
            raise ValueError(f"vocabularies missing for {sorted(missing)}")
        self.vocabularies = {name: tuple(vocabularies[name])
                             for name in MULTI_FIELDS + CODED_FIELDS}
        self.codes = {name: {value: index for index, value in enumerate(values)}
                      for name, values in self.vocabularies.items()}
        self.size = 0
        self.position = 0
        #: Counts writes to rows, so that what was computed from the table can tell it changed.
        self.changes = 0
        self.columns: dict[str, np.ndarray] = {}
        self._allocate(max(16, capacity))
        self.row_of_id = np.full(16, -1, dtype=np.int64)

    # -- storage ---------------------------------------------------------------------------

    def _dtype(self, name: str):
        if name == "id":
            return np.int64
        if name in MULTI_FIELDS:
            return _bit_dtype(len(self.vocabularies[name]))
        if name in CODED_FIELDS:
            return np.int16
        return PLAIN_FIELDS[name][0]

    def _fill(self, name: str):
        if name in CODED_FIELDS or name == "id":
            return -1
        if name in MULTI_FIELDS:
            return 0
        return PLAIN_FIELDS[name][1]

    def _allocate(self, capacity: int) -> None:
        for name in TABLE_FIELDS:
            column = np.full(capacity, self._fill(name), dtype=self._dtype(name))
            old = self.columns.get(name)
            if old is not None:
                column[:self.size] = old[:self.size]
            self.columns[name] = column

    def __len__(self) -> int:
        return self.size

    def column(self, name: str) -> np.ndarray:
        """The live part of one column (a view)."""
        return self.columns[name][:self.size]

    def bits(self, field: str, values: Iterable[str]) -> int:
        """The bitmask of ``values`` in a multi-valued field (unknown values are ignored)."""
        codes = self.codes[field]
        mask = 0
        for value in values:
            if value in codes:
                mask |= 1 << codes[value]
        return mask

    def rows_for_ids(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the given ids (-1 where an id is not in the table)."""
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.row_of_id))
        rows = np.full(len(ids), -1, dtype=np.int64)
        rows[inside] = self.row_of_id[ids[inside]]
        return rows

    @classmethod
    def from_values(cls, vocabularies: Mapping[str, Sequence[str]],
                    values: Mapping[str, Sequence]) -> ProviderTable:
        """A table of rows given column by column (``TABLE_FIELDS`` -> one value per row,
        as ``upsert`` takes them, multi-valued ones as tuples; ids unique): the table
        ``upsert`` makes of the same rows, coded a column at a time (each distinct set
        of a multi-valued attribute once)."""
        size = len(values["id"])
        table = cls(vocabularies, capacity=size + 1024)
        for name in TABLE_FIELDS:
            column = values[name]
            if name in MULTI_FIELDS:
                bits = {value: table.bits(name, value or ()) for value in set(column)}
                coded = [bits[value] for value in column]
            elif name in CODED_FIELDS:
                codes = table.codes[name]
                coded = [codes.get(value, -1) for value in column]
            elif name == "id":
                coded = column
            else:
                missing = PLAIN_FIELDS[name][1]
                coded = [missing if value is None else value for value in column]
            table.columns[name][:size] = np.array(coded, dtype=table._dtype(name))
        table.size = size
        ids = table.column("id")
        if len(np.unique(ids)) != size:
            raise ValueError("a table's rows have unique ids")
        table.row_of_id = np.full(max(16, int(ids.max(initial=0)) + 1), -1, dtype=np.int64)
        table.row_of_id[ids] = np.arange(size, dtype=np.int64)
        table.changes += 1
        return table

    # -- writing ---------------------------------------------------------------------------

    def upsert(self, records: Iterable[Mapping]) -> int:
        """Insert or replace providers given as mappings of ``TABLE_FIELDS``; return the count.

        Record values are plain: lists of vocabulary values for multi-valued fields, a
        vocabulary value (or None) for coded fields, ``verified_at`` in epoch seconds,
        ``version`` a number that changes whenever the provider does (its update time).
        """
        count = 0
        for record in records:
            provider_id = int(record["id"])
            if provider_id >= len(self.row_of_id):
                grown = np.full(max(provider_id + 1, 2 * len(self.row_of_id)), -1, dtype=np.int64)
                grown[:len(self.row_of_id)] = self.row_of_id
                self.row_of_id = grown
            row = int(self.row_of_id[provider_id])
            if row < 0:
                if self.size == len(self.columns["id"]):
                    self._allocate(2 * self.size)
                row = self.size
                self.size += 1
                self.row_of_id[provider_id] = row
            self._write_row(row, record)
            count += 1
        self.changes += 1
        return count

    def _write_row(self, row: int, record: Mapping) -> None:
        columns = self.columns
        columns["id"][row] = int(record["id"])
        for name in MULTI_FIELDS:
            columns[name][row] = self.bits(name, record.get(name) or ())
        for name in CODED_FIELDS:
            columns[name][row] = self.codes[name].get(record.get(name), -1)
        for name, (_, missing) in PLAIN_FIELDS.items():
            value = record.get(name)
            columns[name][row] = missing if value is None else value

    def remove(self, ids: Iterable[int]) -> None:
        """Hide providers (they stay as inactive rows, so rows never move)."""
        for provider_id in ids:
            if 0 <= provider_id < len(self.row_of_id) and self.row_of_id[provider_id] >= 0:
                self.columns["active"][self.row_of_id[provider_id]] = False
        self.changes += 1

    # -- facets ----------------------------------------------------------------------------

    def value_counts(self, field: str, rows: np.ndarray) -> dict[str, int]:
        """How many of ``rows`` have each value of ``field`` (non-zero counts only)."""
        values = self.vocabularies[field]
        column = gather(self.columns[field], rows)
        if field in CODED_FIELDS:  # codes shifted by one: bin 0 is "absent" (-1)
            counts = np.bincount(column + 1, minlength=len(values) + 1)[1:]
        else:
            counts = bit_counts(column, len(values))
        return {value: int(counts[index]) for index, value in enumerate(values)
                if counts[index]}

    # -- snapshots -------------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write the table atomically to ``path`` (an ``.npz`` file)."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        arrays = {f"col_{name}": self.column(name) for name in TABLE_FIELDS}
        arrays["position"] = np.array([self.position], dtype=np.int64)
        for name, values in self.vocabularies.items():
            arrays[f"vocab_{name}"] = np.array(values, dtype=str)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: str, vocabularies: Mapping[str, Sequence[str]]) -> ProviderTable | None:
        """Read a snapshot; None when missing, unreadable or built with other vocabularies."""
        try:
            with np.load(path, allow_pickle=False) as data:
                for name in MULTI_FIELDS + CODED_FIELDS:
                    if tuple(data[f"vocab_{name}"].tolist()) != tuple(vocabularies[name]):
                        return None
                size = len(data["col_id"])
                table = cls(vocabularies, capacity=size + 1024)
                for name in TABLE_FIELDS:
                    table.columns[name][:size] = data[f"col_{name}"]
                table.size = size
                table.position = int(data["position"][0])
        except (OSError, KeyError, ValueError):
            return None
        ids = table.column("id")
        table.row_of_id = np.full(int(ids.max(initial=0)) + 1, -1, dtype=np.int64)
        table.row_of_id[ids] = np.arange(size, dtype=np.int64)
        return table
