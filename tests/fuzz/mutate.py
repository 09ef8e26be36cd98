"""Seeded, reproducible mutations of one recorded venue frame.

Frame ``n`` of a run is mutated by ``random.Random(f"{seed}:{venue}:{n}")`` alone, so any frame a
report names is rebuilt from the seed, the venue and its number (:func:`mutant`), without
replaying the run. Two families:

- byte-level: bit flips, a byte inserted or dropped, truncation, a slice repeated;
- JSON-aware: at a random node of the decoded frame, a type swap, a huge / negative / zero / NaN
  number (as a number or a numeric string), 2^64 and 1e30 as JSON integers, a 23-digit string,
  nesting far deeper than any schema, an empty string, a list where a scalar goes, a dropped or
  duplicated key. One to three of them per frame.

Values JSON cannot carry through ``orjson`` (integers beyond 64 bits, 1000-deep arrays, duplicate
keys) are written as placeholders and spliced into the encoded bytes.
"""

from __future__ import annotations

import random

import orjson

Json = object
_HOLE = "\x00hole{}\x00"


class _Holes:
    """Raw JSON text to splice in where a placeholder string was encoded."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    def put(self, text: bytes) -> str:
        self.raw.append(text)
        return _HOLE.format(len(self.raw) - 1)

    def fill(self, encoded: bytes) -> bytes:
        for n, text in enumerate(self.raw):
            encoded = encoded.replace(orjson.dumps(_HOLE.format(n)), text)
        return encoded


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice((64, 300, 1000, 5000))
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _odd_value(rng: random.Random, old: Json, holes: _Holes) -> Json:
    """A hostile replacement for ``old``."""
    pick = rng.randrange(22)
    if pick == 0:
        return holes.put(str(2**64 + rng.randrange(100)).encode())
    if pick == 1:
        return holes.put(b"1" + b"0" * 30)  # 1e30 as a JSON integer
    if pick == 2:
        return "".join(rng.choice("0123456789") for _ in range(23))
    if pick == 3:
        return holes.put(_deep(rng))
    if pick == 4:
        return ""
    if pick == 5:
        return [old]
    if pick == 6:
        return {"v": old}
    if pick == 7:
        return rng.choice(("NaN", "nan", "inf", "-inf", "Infinity", "-0", "1e309", "0x10"))
    if pick == 8:
        return rng.choice((1.7e308, -1.7e308, 1e300, 5e-324, -5e-324))
    if pick == 9:
        return rng.choice((0, 0.0, "0", "0.0", "-0.0"))
    if pick == 10:
        return rng.choice((-1, -1.5, "-1", "-0.00000001", -(2**63)))
    if pick == 11:
        return rng.choice((None, True, False))
    if pick == 12:
        return rng.choice((2**53, 2**63 - 1, 2**64 - 1, -(2**53), 10**15))
    if pick == 13:  # a number as text, text as a number
        if isinstance(old, str):
            try:
                return float(old)
            except ValueError:
                return rng.random()
        return str(old)
    if pick == 14 and isinstance(old, (int, float)) and not isinstance(old, bool):
        return old * 10.0 ** rng.randrange(-20, 300)
    if pick == 15 and isinstance(old, str):
        try:
            return repr(float(old) * 10.0 ** rng.randrange(-20, 300))
        except (ValueError, OverflowError):
            return old + old
    if pick == 16:
        return rng.choice((1, 2, 7, 1000, 1e12, 4_102_444_800_000, 1_483_228_799_999))
    if pick == 17:
        return rng.choice(("BOTH", "LONG", "SHORT", "cross", "isolated", "TRADE", "CALCULATED"))
    if pick == 18:
        return rng.choice(("markPriceUpdate", "ACCOUNT_UPDATE", "mark", "position", "balance"))
    if pick == 19:
        return "x" * rng.choice((1, 65, 10_000))
    if pick == 20:
        return []
    return {}


def _nodes(doc: Json) -> list[tuple[list[Json] | dict[str, Json], int | str]]:
    """Every (container, key) of ``doc``, depth first."""
    out: list[tuple[list[Json] | dict[str, Json], int | str]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append(v)
    return out


def _json_mutation(rng: random.Random, doc: Json, holes: _Holes) -> Json:
    nodes = _nodes(doc)
    if not nodes:
        return _odd_value(rng, doc, holes)
    container, key = rng.choice(nodes)
    op = rng.random()
    if op < 0.12 and isinstance(container, dict) and isinstance(key, str):
        del container[key]  # a dropped key
    elif op < 0.22 and isinstance(container, dict) and isinstance(key, str):
        # A duplicated key: the copy (a hostile value) comes after the original in the bytes.
        dup = holes.put(orjson.dumps(key))
        container[dup] = _odd_value(rng, container[key], holes)
    elif op < 0.27 and isinstance(container, list):
        container.append(container[key])  # type: ignore[index]
    else:
        container[key] = _odd_value(rng, container[key], holes)  # type: ignore[index]
    return doc


def _byte_mutation(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    if not data:
        return b"\xff"
    op = rng.randrange(5)
    i = rng.randrange(len(data))
    if op == 0:
        data[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        data.insert(i, rng.randrange(256))
    elif op == 2:
        del data[i]
    elif op == 3:
        del data[i:]
    else:
        j = min(len(data), i + rng.randrange(1, 16))
        data[i:i] = data[i:j] * rng.randrange(1, 4)
    return bytes(data)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """One mutant of ``frame`` (a recorded or generated frame, valid JSON)."""
    if rng.random() < 0.25:
        out = frame
        for _ in range(rng.randrange(1, 4)):
            out = _byte_mutation(rng, out)
        return out
    doc: Json = orjson.loads(frame)
    holes = _Holes()
    for _ in range(rng.randrange(1, 4)):
        doc = _json_mutation(rng, doc, holes)
    return holes.fill(orjson.dumps(doc))  # a duplicated key's placeholder is a key here


def frame_rng(seed: int, venue: str, n: int) -> random.Random:
    """The generator of frame ``n`` of ``venue`` in the run seeded ``seed``."""
    return random.Random(f"{seed}:{venue}:{n}")


def mutant(seed: int, venue: str, n: int, samples: list[bytes]) -> bytes:
    """Frame ``n`` of a run: a sample picked and mutated by the frame's own generator. One frame
    in eight is a sample as recorded, so the store keeps getting good data between bad."""
    rng = frame_rng(seed, venue, n)
    frame = samples[rng.randrange(len(samples))]
    return frame if rng.random() < 0.125 else mutate(rng, frame)
