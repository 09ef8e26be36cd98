"""Fast Prometheus text exposition of the per-account gauge families.

prometheus_client builds one ``Sample`` object per series and formats it in Python; for 10,000
accounts × 8 series that holds the interpreter for tens of milliseconds, which a scrape must not
do to the event loop that ingests ticks. This module formats whole columns instead:

* the label part of every line (``name{venue="…",account="…"} ``) is built once per account and
  family and cached per *chunk* of account indices, re-validated against the keys on every scrape
  (keys only change when an account is added);
* the values of a chunk are formatted in one call, ``repr(list_of_floats)``, which is the shortest
  round-trip representation and about half the cost of formatting floats one by one;
* the output is produced one chunk (one family × ``chunk`` accounts) at a time, so the async
  caller can yield to the event loop between chunks.

Unknown values (NaN, e.g. a liquidation distance not computed) produce no sample: absent is how
Prometheus says "unknown". Infinities are written ``+Inf``/``-Inf`` (health is +Inf with no
maintenance margin).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_INF_REPR = {"inf": "+Inf", "-inf": "-Inf"}


def escape_label_value(value: str) -> str:
    """Escape a label value as the text format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


@dataclass(frozen=True, slots=True)
class Part:
    """One column of a family: extra labels (pre-rendered, e.g. ``,direction="down"``) + column."""

    column: str
    extra_labels: str = ""


@dataclass(frozen=True, slots=True)
class Family:
    """A gauge family with one sample per account per part."""

    name: str
    help: str
    parts: tuple[Part, ...]

    def header(self) -> str:
        # No trailing newline: every sample line starts with one (see module docstring).
        return f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} gauge"


@dataclass(frozen=True, slots=True)
class AccountColumns:
    """A consistent snapshot of per-account figures: ``keys[i]`` is account index ``i``."""

    keys: Sequence[tuple[str, str]]
    columns: Mapping[str, FloatArray]


class _Chunk:
    """Cached label prefixes for the accounts of one chunk of indices."""

    __slots__ = ("keys", "labels", "prefixes")

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        self.keys = keys
        self.labels = [
            f'venue="{escape_label_value(v)}",account="{escape_label_value(a)}"' for v, a in keys
        ]
        # (family name, part index) -> ["\n<name>{<labels><extra>} ", ...]
        self.prefixes: dict[tuple[str, int], list[str]] = {}

    def prefix(self, family: Family, part_no: int) -> list[str]:
        key = (family.name, part_no)
        found = self.prefixes.get(key)
        if found is None:
            head = f"\n{family.name}{{"
            tail = f"{family.parts[part_no].extra_labels}}} "
            found = [head + label + tail for label in self.labels]
            self.prefixes[key] = found
        return found


def _format_values(values: FloatArray) -> list[str]:
    """Shortest round-trip text of each value; the caller has removed NaNs."""
    if values.size == 0:
        return []
    texts = repr(values.tolist())[1:-1].split(", ")
    if not np.isfinite(values).all():
        texts = [_INF_REPR.get(t, t) for t in texts]
    return texts


def _lines(prefixes: list[str], values: FloatArray) -> str:
    """Interleave prefixes and formatted values; drops NaN samples."""
    known = ~np.isnan(values)
    if not known.all():
        idx = np.flatnonzero(known).tolist()
        prefixes = [prefixes[i] for i in idx]
        values = values[known]
    texts = _format_values(values)
    out: list[str] = [""] * (2 * len(texts))
    out[0::2] = prefixes
    out[1::2] = texts
    return "".join(out)


class AccountExposition:
    """Renders account families from :class:`AccountColumns`, one chunk at a time.

    One instance per registry/server: it owns the label cache. Not thread-safe; the event loop
    is the only caller.
    """

    def __init__(self, families: Sequence[Family], *, chunk: int = 1000) -> None:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        self.families = tuple(families)
        self.chunk = chunk
        self._chunks: list[_Chunk | None] = []

    def _validate(self, keys: Sequence[tuple[str, str]]) -> None:
        """Forget cached chunks whose keys changed; they are rebuilt lazily, one at a time."""
        n_chunks = (len(keys) + self.chunk - 1) // self.chunk
        del self._chunks[n_chunks:]
        self._chunks.extend([None] * (n_chunks - len(self._chunks)))
        for no, cached in enumerate(self._chunks):
            lo = no * self.chunk
            # List comparison short-cuts on identical tuple objects, so an unchanged store
            # costs microseconds here.
            if cached is not None and cached.keys != list(keys[lo : lo + self.chunk]):
                self._chunks[no] = None

    def _chunk(self, keys: Sequence[tuple[str, str]], no: int) -> _Chunk:
        found = self._chunks[no]
        if found is None:
            lo = no * self.chunk
            found = _Chunk(list(keys[lo : lo + self.chunk]))
            self._chunks[no] = found
        return found

    def pieces(self, snapshot: AccountColumns) -> Iterator[bytes]:
        """Yield the exposition as bytes pieces, each a bounded amount of work.

        The snapshot must not change while iterating (take copies of live arrays first).
        """
        keys = snapshot.keys
        n = len(keys)
        self._validate(keys)
        for family in self.families:
            yield family.header().encode()
            for part_no, part in enumerate(family.parts):
                column = snapshot.columns.get(part.column)
                if column is None:
                    continue
                if len(column) != n:
                    raise ValueError(
                        f"column {part.column!r} has {len(column)} values for {n} accounts"
                    )
                for no in range((n + self.chunk - 1) // self.chunk):
                    lo = no * self.chunk
                    chunk = self._chunk(keys, no)
                    text = _lines(chunk.prefix(family, part_no), column[lo : lo + self.chunk])
                    yield text.encode()
            yield b"\n"
