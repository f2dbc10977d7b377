#!/usr/bin/env python3
"""Structure-aware fuzz harness for `compress` and `edge-run` (see docs/reliability.md).

Every iteration takes one seed input (a Hugging Face folder, a GGUF file, a recipe, an .edge
file or a text), mutates it with knowledge of its format (length and count fields set to
extremes, JSON values replaced, checksums recomputed so the mutation reaches the semantic
checks), runs one command on it and classifies the result:

  crash                  killed by a signal, exit 132/133/134/139, or "Fatal error" / "Program crashed"
  hang                   still running after --timeout seconds
  memory                 peak RSS above 2 GiB, or an allocation failure
  partial-output         non-zero exit, and something was left in the output folder
  bad-message            non-zero exit, and stderr is not one clean line of at most 300 bytes
  refused                non-zero exit with one clean line: the expected answer to bad input
  accepted               exit 0
  accepted-then-refused  compress wrote a file that `edge-run generate` / `perplexity` then refuses

Usage:
  scripts/fuzz.py --bin .build/release --iterations 3000 --seed 1 [--jobs 2] [--targets t1,t2]
                  [--work DIR] [--report FILE.json] [--keep-crashes DIR] [--timeout 30]
  scripts/fuzz.py --bin .build/release --seed 1 --only-iteration 1234 [--targets ...]
  scripts/fuzz.py --bin .build/release --replay DIR

Iteration i draws from random.Random(f"{seed}:{i}") and runs target targets[i % len(targets)], so
`--only-iteration i` with the same --seed and --targets reproduces it exactly (the seed .edge
files are made by the given compress, so the binaries must be the same too).

Exit status: 1 when any run was a crash, hang, memory, partial-output or bad-message (with
--replay: when any saved case still is one), else 0. Standard library only.
"""

import argparse
import json
import math
import multiprocessing
import os
import random
import re
import resource
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ["safetensors", "sharded", "gguf", "config", "tokenizer", "recipe", "edge", "text"]
CLASSES = ["crash", "hang", "memory", "partial-output", "bad-message", "accepted-then-refused", "refused", "accepted"]
BAD_CLASSES = {"crash", "hang", "memory", "partial-output", "bad-message"}
KEEP_PER_CLASS_TARGET = 20
MAX_BACKTRACES = 40             # per worker: crashes re-run with the backtracer on
MEMORY_LIMIT = 4 << 30          # RLIMIT_AS of every child
RSS_LIMIT_KB = 2 << 20          # ru_maxrss above this (KiB) is "memory"
MAX_MESSAGE = 300
CRASH_CODES = {132, 133, 134, 139}
ALLOC_PATTERNS = re.compile(r"could not allocate|MemoryError|cannot allocate|out of memory|bad_alloc|allocation fail|failed to allocate",
                            re.I)

# ---------------------------------------------------------------------------------------------
# Interesting values

U64_EXTREMES = [0, 1, 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
INTS = [0, 1, -1, 2, 3, 7, 8, 63, 64, 65, 255, 256, 4096, 2**15, 2**16, 2**24, 2**24 + 1, 2**31 - 1, 2**31,
        2**32 - 1, 2**32, 2**40, 2**53, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
        -2**31, -2**32, -2**40, -2**53, -2**63, 10**30]
INVALID_UTF8 = "\udcff\udcfe"                     # surrogateescape: bytes ff fe
STRINGS = ["", " ", "x", "\n", "a\nb", "line1\r\nline2", "\t", "\x00", "nul\x00byte", "\x1b[31mred\x1b[0m",
           "\x7f", "é", "日本語", "\U0001F600", "\u202e", "\ufeff", "bad" + INVALID_UTF8 + "utf8", "\udcc3",
           "A" * 4096, "B" * 70000, "../../../../etc/passwd", "/dev/zero", "%s%s%n", "{}", "[", "\"", "\\",
           "NaN", "-1", "2147483648", "blk.0.attn_q.weight", "C:\\x", "*"]


class Raw:
    """Literal JSON text (NaN, 1e999, duplicate-key objects, deep nesting, invalid syntax)."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r})"


class Pairs:
    """A JSON object written with the given (possibly duplicate) keys in order."""
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def __repr__(self):
        return f"Pairs({[k for k, _ in self.items][:6]})"


def dumps(v, sort_keys=False, indent=None, _level=0):
    """JSON text of v; floats NaN/Inf are written as NaN/Infinity; Raw and Pairs verbatim."""
    if isinstance(v, Raw):
        return v.text
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    nl = "" if indent is None else "\n" + " " * (indent * (_level + 1))
    end = "" if indent is None else "\n" + " " * (indent * _level)
    sep = ":" if indent is None else ": "
    if isinstance(v, (dict, Pairs)):
        items = list(v.items()) if isinstance(v, dict) else list(v.items)
        if sort_keys and isinstance(v, dict):
            items.sort(key=lambda kv: kv[0])
        if not items:
            return "{}"
        return "{" + ",".join(nl + json.dumps(k, ensure_ascii=False) + sep + dumps(x, sort_keys, indent, _level + 1)
                              for k, x in items) + end + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        return "[" + ",".join(nl + dumps(x, sort_keys, indent, _level + 1) for x in v) + end + "]"
    raise TypeError(type(v))


def enc(text):
    """UTF-8 bytes of text; surrogate-escaped characters become the raw bytes they stand for."""
    return text.encode("utf-8", "surrogateescape")


def short(v, n=60):
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def deep_nest(depth):
    return Raw("[" * depth + "]" * depth)


def int_like(rng, cur=None):
    if isinstance(cur, int) and not isinstance(cur, bool) and rng.random() < 0.3:
        return rng.choice([cur + 1, cur - 1, cur * 2, cur // 2, -cur, cur * 1000, 0])
    return rng.choice(INTS)


FLOATS = [0.0, -0.0, -1.0, 1.0, 0.5, 1.5, 1e-45, 5e-324, 1e308, 1.7976931348623157e308, float(2**53), float(2**63),
          1e30, -1e30]
FLOAT_RAWS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "0.1e1", "1E2", "-0"]


def float_like(rng, cur=None):
    r = rng.random()
    if r < 0.35:
        return Raw(rng.choice(FLOAT_RAWS))
    if r < 0.5 and isinstance(cur, (int, float)) and not isinstance(cur, bool):
        return rng.choice([cur * 10.0, -float(cur), float(cur) + 0.5, float(cur) * 1e-6])
    return rng.choice(FLOATS)


def any_value(rng, depth=0):
    r = rng.random()
    if r < 0.3:
        return int_like(rng)
    if r < 0.45:
        return float_like(rng)
    if r < 0.65:
        return rng.choice(STRINGS)
    if r < 0.72:
        return rng.choice([None, True, False])
    if r < 0.8:
        return rng.choice([[], {}, [1, 2], {"a": 1}, [None], [""], ["x", 0]])
    if r < 0.85:
        return deep_nest(rng.choice([2, 64, 129, 200, 5000]))
    if r < 0.9 and depth < 2:
        return [any_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2:
        return {rng.choice(["a", "", "\n", "pass", "name"]): any_value(rng, depth + 1)}
    return 0


def interesting(rng, cur):
    """A replacement for JSON value cur, usually of the same type."""
    if rng.random() < 0.15:
        return any_value(rng)
    if isinstance(cur, bool):
        return rng.choice([not cur, 0, 1, "true", None])
    if isinstance(cur, int):
        r = rng.random()
        if r < 0.7:
            return int_like(rng, cur)
        if r < 0.85:
            return float_like(rng, cur)
        return rng.choice([str(cur), [cur], None, Raw(f"{cur}.0"), Raw(f"{cur}e0"), Raw(f"-{cur}" if cur else "-0")])
    if isinstance(cur, float):
        return float_like(rng, cur) if rng.random() < 0.8 else int_like(rng)
    if isinstance(cur, str):
        r = rng.random()
        if r < 0.6:
            return rng.choice(STRINGS)
        if r < 0.8 and cur:
            return rng.choice([cur.upper(), cur + " ", " " + cur, cur + "\n", cur * 50, cur[:-1], cur + INVALID_UTF8,
                               cur + "\x00", cur.replace("_", "-")])
        return rng.choice([None, 0, [cur], {"": cur}])
    if isinstance(cur, list):
        r = rng.random()
        if r < 0.2:
            return []
        if r < 0.35 and cur:
            return cur * rng.choice([2, 100, 1000])
        if r < 0.5:
            return cur + [any_value(rng)]
        if r < 0.6:
            return list(reversed(cur))
        if r < 0.7:
            return deep_nest(rng.choice([129, 200, 10000]))
        return rng.choice([None, {}, "list", 0])
    if isinstance(cur, dict):
        r = rng.random()
        if r < 0.3:
            return {}
        if r < 0.6:
            c = dict(cur)
            c[rng.choice(["unknown", "", "\n", "x" * 300, "__proto__"])] = any_value(rng)
            return c
        if r < 0.7 and cur:
            k = rng.choice(list(cur))
            return Pairs(list(cur.items()) + [(k, cur[k] if rng.random() < 0.5 else any_value(rng))])
        return rng.choice([None, [], "object", 1])
    return any_value(rng)


# JSON tree navigation (paths are tuples of keys / indices)

def json_paths(v, path=(), out=None, limit=200000):
    if out is None:
        out = []
    out.append(path)
    if len(out) > limit:
        return out
    if isinstance(v, dict):
        for k, x in v.items():
            json_paths(x, path + (k,), out, limit)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            json_paths(x, path + (i,), out, limit)
    return out


def get_at(root, path):
    for p in path:
        root = root[p]
    return root


def set_at(root, path, value):
    if not path:
        return value
    parent = get_at(root, path[:-1])
    parent[path[-1]] = value
    return root


def del_at(root, path):
    parent = get_at(root, path[:-1])
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return root


def mutate_json_at(rng, root, path, desc, label=""):
    """One structural mutation of the node at path; returns the new root."""
    name = label or "/".join(str(p) for p in path) or "<root>"
    cur = get_at(root, path)
    parent = get_at(root, path[:-1]) if path else None
    r = rng.random()
    if parent is not None and r < 0.12:
        desc.append(f"delete {name}")
        return del_at(root, path)
    if isinstance(parent, dict) and r < 0.18:
        items = list(parent.items())
        k = path[-1]
        dup = cur if rng.random() < 0.5 else interesting(rng, cur)
        desc.append(f"duplicate key {short(k)} (second value {short(dup)})")
        return set_at(root, path[:-1], Pairs(items + [(k, dup)]))
    if isinstance(parent, dict) and r < 0.22:
        k = path[-1]
        new = rng.choice([k.upper(), k + " ", "", k + "\n", k + INVALID_UTF8, "x" * 5000])
        items = [(new if kk == k else kk, vv) for kk, vv in parent.items()]
        desc.append(f"rename key {short(k)} -> {short(new)}")
        return set_at(root, path[:-1], dict(items))
    v = interesting(rng, cur)
    desc.append(f"{name} := {short(v)}")
    return set_at(root, path, v)


def mutate_json_raw(rng, data, desc):
    """Byte-level damage to a JSON document."""
    r = rng.random()
    if r < 0.2 and data:
        cut = rng.randrange(len(data))
        desc.append(f"truncate JSON at {cut}/{len(data)}")
        return data[:cut]
    if r < 0.3:
        desc.append("prefix BOM")
        return b"\xef\xbb\xbf" + data
    if r < 0.4:
        t = rng.choice([b"x", b"}", b"\x00", b" {}", b"\n\n", b"\xff"])
        desc.append(f"append {t!r}")
        return data + t
    if r < 0.5:
        desc.append("empty document")
        return b""
    if r < 0.6:
        v = rng.choice([b"[]", b"null", b"0", b"\"x\"", b"{}", b"[" * 100000 + b"]" * 100000, b"{\"a\":" * 3000 + b"1" + b"}" * 3000])
        desc.append(f"document := {v[:20]!r}")
        return v
    b = bytearray(data)
    n = rng.choice([1, 1, 2, 8])
    for _ in range(n):
        if not b:
            break
        i = rng.randrange(len(b))
        b[i] = rng.choice([0x00, 0xff, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x2c, 0x0a, b[i] ^ (1 << rng.randrange(8))])
    desc.append(f"flip {n} JSON bytes")
    return bytes(b)


def choose_path(rng, root, prefer=None, skip=None):
    """A random node path; with probability 0.8 one whose last key is in prefer (when any is)."""
    paths = json_paths(root)
    if skip:
        paths = [p for p in paths if not any(s(p) for s in skip)] or paths
    if prefer:
        pref = [p for p in paths if p and isinstance(p[-1], str) and p[-1] in prefer]
        if pref and rng.random() < 0.8:
            return rng.choice(pref)
    return rng.choice(paths)


# ---------------------------------------------------------------------------------------------
# Binary helpers

def wrap_int(v, bits, signed):
    m = 1 << bits
    v %= m
    if signed and v >= m // 2:
        v -= m
    return v


def pack_u64(v):
    return struct.pack("<Q", wrap_int(v, 64, False))


def pack_u32(v):
    return struct.pack("<I", wrap_int(v, 32, False))


def align(n, a):
    return (n + a - 1) // a * a


def f16_bits(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]


FLOAT32_SPECIALS = [struct.pack("<I", v) for v in (0x7FC00000, 0xFFC00000, 0x7F800000, 0xFF800000, 0x7F7FFFFF,
                                                   0x00000001, 0x80000000, 0x7FA00000)]
FLOAT16_SPECIALS = [struct.pack("<H", v) for v in (0x7E00, 0xFE00, 0x7C00, 0xFC00, 0x7BFF, 0x0001, 0x8000)]


def f32_to_f16_bytes(raw):
    n = len(raw) // 4
    vals = struct.unpack(f"<{n}f", raw[: 4 * n])
    out = bytearray()
    for x in vals:
        try:
            out += struct.pack("<e", x)
        except OverflowError:
            out += struct.pack("<H", 0x7C00 if x > 0 else 0xFC00)
    return bytes(out)


def f32_to_bf16_bytes(raw):
    n = len(raw) // 4
    return b"".join(raw[4 * i + 2: 4 * i + 4] for i in range(n))


def f32_to_f64_bytes(raw):
    n = len(raw) // 4
    return struct.pack(f"<{n}d", *struct.unpack(f"<{n}f", raw[: 4 * n]))


def poke_specials(rng, buf, start, length, width, desc, what):
    """Write NaN/Inf/extreme float patterns of `width` bytes (4 or 2) at a few aligned spots."""
    if length < width:
        return
    pats = FLOAT32_SPECIALS if width == 4 else FLOAT16_SPECIALS
    k = rng.choice([1, 1, 3, 1000000])
    slots = length // width
    if k >= slots:
        p = rng.choice(pats)
        buf[start: start + slots * width] = p * slots
        desc.append(f"{what}: every value := {p.hex()}")
        return
    for _ in range(k):
        i = rng.randrange(slots)
        p = rng.choice(pats)
        buf[start + i * width: start + (i + 1) * width] = p
    desc.append(f"{what}: {k} values := NaN/Inf/extreme")


def flip_bytes(rng, buf, start, end, desc, what):
    if end <= start:
        return
    n = rng.choice([1, 1, 4, 32])
    for _ in range(n):
        i = rng.randrange(start, end)
        buf[i] = rng.choice([0x00, 0xff, 0x80, 0x7f, buf[i] ^ (1 << rng.randrange(8)), rng.randrange(256)])
    desc.append(f"{what}: flip {n} bytes in [{start}, {end})")


# ---------------------------------------------------------------------------------------------
# Safetensors

ST_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4,
             "I64": 8, "U64": 8, "BOOL": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "C64": 8}


def st_parse(b):
    """(metadata or None, [[name, dtype, shape, bytes]...] in offset order)."""
    n = struct.unpack_from("<Q", b)[0]
    h = json.loads(b[8: 8 + n])
    data = b[8 + n:]
    meta = h.pop("__metadata__", None)
    ts = sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return meta, [[k, v["dtype"], list(v["shape"]), data[v["data_offsets"][0]: v["data_offsets"][1]]] for k, v in ts]


def st_header(meta, tensors):
    h = {}
    if meta is not None:
        h["__metadata__"] = meta
    off = 0
    for name, dtype, shape, raw in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    return h


def st_serialize(header, data, fix_len=True, pad=True):
    hb = enc(dumps(header))
    if pad:
        hb += b" " * ((8 - len(hb) % 8) % 8)
    return pack_u64(len(hb)) + hb + data, len(hb)


def st_resize(raw, nbytes, rng):
    if nbytes <= len(raw):
        return raw[:nbytes]
    extra = nbytes - len(raw)
    if extra > 64 << 20:
        return None
    if rng.random() < 0.7:
        return raw + bytes(extra)
    head = bytes(rng.getrandbits(8) for _ in range(min(extra, 4096)))
    return raw + head + bytes(extra - len(head))


def mutate_safetensors_bytes(rng, b, desc):
    """A mutated safetensors file (bytes) from a valid one."""
    meta, tensors = st_parse(b)
    r = rng.random()
    if r < 0.12:
        # The u64 header length field.
        n = struct.unpack_from("<Q", b)[0]
        v = rng.choice([0, 1, 2, n - 1, n + 1, len(b), len(b) - 8, len(b) - 7, 2**32, 2**63, 2**64 - 1,
                        100_000_000, 100_000_001, n + 8])
        desc.append(f"header length {n} := {v}")
        return pack_u64(v) + b[8:]
    if r < 0.2:
        cut = rng.choice([0, 4, 7, 8, 9, rng.randrange(len(b)), len(b) - 1, rng.randrange(8, 8 + struct.unpack_from('<Q', b)[0] + 1)])
        desc.append(f"truncate at {cut}/{len(b)}")
        return b[:cut]
    if r < 0.3:
        # Data bytes: flips or NaN/Inf patterns inside one tensor (header untouched).
        n = struct.unpack_from("<Q", b)[0]
        buf = bytearray(b)
        off = 8 + n
        pick = rng.randrange(len(tensors))
        for i, t in enumerate(tensors):
            if i == pick:
                if t[1] in ("F32", "F16", "BF16") and rng.random() < 0.7:
                    poke_specials(rng, buf, off, len(t[3]), 4 if t[1] == "F32" else 2, desc, f"tensor {t[0]}")
                else:
                    flip_bytes(rng, buf, off, off + len(t[3]), desc, f"tensor {t[0]}")
                break
            off += len(t[3])
        return bytes(buf)
    if r < 0.55:
        # Header JSON edits on consistent data (the buffer is left as is).
        header = st_header(meta, tensors)
        data = b"".join(t[3] for t in tensors)
        names = [t[0] for t in tensors]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            k = rng.random()
            name = rng.choice(names)
            if k < 0.25:
                cur = header[name]["dtype"]
                v = rng.choice(list(ST_DTYPES) + ["f32", "F31", "", "FLOAT", "Q4_0", "F32 ", "F16\n", 4, None])
                header[name]["dtype"] = v
                desc.append(f"{name}.dtype {cur} := {short(v)}")
            elif k < 0.55:
                shape = header[name]["shape"]
                op = rng.random()
                # An earlier mutation of the same case may have left a shape that is not a list of integers.
                dims = shape if isinstance(shape, list) else []
                if op < 0.5 and dims:
                    j = rng.randrange(len(dims))
                    d = dims[j] if isinstance(dims[j], int) and not isinstance(dims[j], bool) else 64
                    v = rng.choice([0, -1, 1, 2**31, 2**32, 2**62, 2**63, 2**53, 2**53 + 1, d + 1, d * 2,
                                    1.5, float(d), "64", None, Raw(f"{d}.0"), Raw("1e400")])
                    dims[j] = v
                    desc.append(f"{name}.shape[{j}] := {short(v)}")
                else:
                    v = rng.choice([[], [0], [2**31, 2**31], [2**32, 2**32, 2**32], [1] * 100000, dims + [1], dims[::-1],
                                    [2**62, 4], None, "shape", {"a": 1}])
                    header[name]["shape"] = v
                    desc.append(f"{name}.shape := {short(v)}")
            elif k < 0.8:
                d = header[name]["data_offsets"]
                op = rng.randrange(8)
                if op < 4 and not (isinstance(d, list) and len(d) == 2
                                   and all(isinstance(x, int) and not isinstance(x, bool) for x in d)):
                    d = header[name]["data_offsets"] = [0, 0]  # an earlier mutation left no pair of offsets to work from
                if op == 0:
                    d.reverse()
                    desc.append(f"{name}.data_offsets swapped")
                elif op == 1:
                    v = [d[0] - rng.choice([1, 4, 64]), d[1] - rng.choice([0, 1, 4, 64])]
                    header[name]["data_offsets"] = v
                    desc.append(f"{name}.data_offsets := {v} (overlap)")
                elif op == 2:
                    v = [len(data) + rng.choice([0, 8, 4096]), len(data) + rng.choice([0, 8, 4096]) + d[1] - d[0]]
                    header[name]["data_offsets"] = v
                    desc.append(f"{name}.data_offsets := {v} (past the buffer)")
                elif op == 3:
                    j = rng.randrange(2)
                    d[j] = rng.choice([-1, -2**63, 2**63, 2**64 - 1, 2**62, 2**53, 2**53 + 1, 1.5, "0", None])
                    desc.append(f"{name}.data_offsets[{j}] := {short(d[j])}")
                elif op == 4:
                    v = rng.choice([[], [0], [0, 0, 0], None, "0,4", [[0], [4]]])
                    header[name]["data_offsets"] = v
                    desc.append(f"{name}.data_offsets := {short(v)}")
                elif op == 5:
                    v = [2**63 - 2, 2**63 - 2 + (d[1] - d[0])]
                    header[name]["data_offsets"] = v
                    desc.append(f"{name}.data_offsets := {v} (near Int.max)")
                else:
                    v = [d[0], d[1] + rng.choice([-1, 1, 4, -4])]
                    header[name]["data_offsets"] = v
                    desc.append(f"{name}.data_offsets := {v}")
            elif k < 0.88:
                del header[name]
                desc.append(f"delete header entry {name}")
                names.remove(name)
                if not names:
                    break
            elif k < 0.94:
                header = Pairs(list(header.items()) + [(name, dict(header[name]))])
                desc.append(f"duplicate header entry {name}")
                break
            else:
                v = rng.choice([{"format": "pt"}, {"format": 1}, [], "junk", {"x" * 5000: "y"}, {"a": None},
                                {"a": {"b": "c"}}, {"k" + INVALID_UTF8: "v"}, None])
                header["__metadata__"] = v
                desc.append(f"__metadata__ := {short(v)}")
        out, hl = st_serialize(header, data)
        if rng.random() < 0.1:
            # Non-UTF-8 bytes in the header.
            buf = bytearray(out)
            i = rng.randrange(8, 8 + hl)
            buf[i] = rng.choice([0xff, 0xc3, 0x80, 0x00])
            desc.append(f"header byte {i} := {buf[i]:#x}")
            out = bytes(buf)
        return out
    # Semantic: a consistent file with changed tensors.
    tensors = [list(t) for t in tensors]
    for _ in range(rng.choice([1, 1, 2])):
        i = rng.randrange(len(tensors))
        name, dtype, shape, raw = tensors[i]
        k = rng.random()
        if k < 0.2 and dtype == "F32":
            nd = rng.choice(["F16", "BF16", "F64", "I8", "U8", "I32", "I64", "BOOL", "F8_E4M3", "U16", "C64"])
            if nd == "F16":
                raw = f32_to_f16_bytes(raw)
            elif nd == "BF16":
                raw = f32_to_bf16_bytes(raw)
            elif nd == "F64":
                raw = f32_to_f64_bytes(raw)
            else:
                count = len(raw) // 4
                raw = (raw * 2)[: count * ST_DTYPES[nd]]
            tensors[i] = [name, nd, shape, raw]
            desc.append(f"{name}: dtype F32 -> {nd} (data converted)")
        elif k < 0.45:
            count = 1
            for d in shape:
                count *= d
            el = ST_DTYPES.get(dtype, 4)
            choices = [[count], [1, count], shape[::-1], shape + [1], [0], [0] + shape[1:], shape[:1] + [0],
                       [s + 1 for s in shape], [max(1, s // 2) for s in shape], [s * 2 for s in shape], [], [1],
                       [1] * 8 + [count], [2] * 9]
            ns = rng.choice(choices)
            nc = 1
            for d in ns:
                nc *= d
            nr = st_resize(raw, nc * el, rng)
            if nr is None:
                continue
            tensors[i] = [name, dtype, ns, nr]
            desc.append(f"{name}: shape {shape} -> {ns} (data resized)")
        elif k < 0.6:
            tensors.pop(i)
            desc.append(f"drop tensor {name}")
            if not tensors:
                break
        elif k < 0.75:
            new = rng.choice([
                name.replace(".0.", ".7."), name.replace(".1.", ".2."), name + ".extra", "", "x" * 4096, name.upper(),
                name.replace("weight", "bias"), "model.layers.99999999999.mlp.up_proj.weight",
                "model.layers.-1.mlp.up_proj.weight", "model.layers.2147483648.input_layernorm.weight",
                "lm_head.weight", "model.embed_tokens.weight", "transformer.wte.weight", name + INVALID_UTF8,
                "model.norm.weight", "model.layers.0.self_attn.rotary_emb.inv_freq"])
            if any(t[0] == new for t in tensors):
                tensors.pop(i)
                desc.append(f"drop tensor {name} (a tensor named {new} exists)")
            else:
                tensors[i][0] = new
                desc.append(f"rename tensor {name} -> {short(new)}")
        elif k < 0.85:
            new = rng.choice(["model.layers.2.input_layernorm.weight", "lm_head.weight", "extra.weight",
                              "model.layers.0.self_attn.q_proj.bias", "transformer.h.2.ln_1.weight", "lm_head.bias",
                              "model.embed_tokens.weight", "transformer.wte.weight"])
            if all(t[0] != new for t in tensors):
                tensors.append([new, dtype, shape, raw])
                desc.append(f"add tensor {new} (copy of {name})")
        else:
            buf = bytearray(raw)
            if dtype in ("F32", "F16", "BF16"):
                poke_specials(rng, buf, 0, len(buf), 4 if dtype == "F32" else 2, desc, f"tensor {name}")
            tensors[i][3] = bytes(buf)
    if rng.random() < 0.15:
        meta = rng.choice([None, {"format": "tf"}, {"format": "mlx"}, {"x": "\n" * 10}])
        desc.append(f"__metadata__ := {short(meta)}")
    out, _ = st_serialize(st_header(meta, tensors), b"".join(t[3] for t in tensors))
    return out


# ---------------------------------------------------------------------------------------------
# GGUF

GGML_TYPES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
              10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
              16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
              22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
              29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17)}
GV_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}
GV_BITS = {0: (8, False), 1: (8, True), 2: (16, False), 3: (16, True), 4: (32, False), 5: (32, True), 7: (8, False),
           10: (64, False), 11: (64, True)}


class GGUF:
    """A parsed GGUF file with the byte offset of every field (for in-place patches)."""

    def __init__(self, b):
        self.b = b
        p = 0

        def u32():
            nonlocal p
            v = struct.unpack_from("<I", b, p)[0]
            p += 4
            return v

        def u64():
            nonlocal p
            v = struct.unpack_from("<Q", b, p)[0]
            p += 8
            return v

        def string():
            nonlocal p
            at = p
            n = u64()
            s = b[p: p + n]
            p += n
            return s, at

        def value(t):
            nonlocal p
            if t in GV_FMT:
                v = struct.unpack_from(GV_FMT[t], b, p)[0]
                p += struct.calcsize(GV_FMT[t])
                return v
            if t == 8:
                return string()[0]
            if t == 9:
                et_at = p
                et = u32()
                n_at = p
                n = u64()
                return {"et": et, "items": [value(et) for _ in range(n)], "et_at": et_at, "n_at": n_at}
            raise ValueError(t)

        p = 4
        self.version = u32()
        self.nt_at = p
        nt = u64()
        self.nkv_at = p
        nkv = u64()
        self.kvs = []
        for _ in range(nkv):
            key, key_at = string()
            type_at = p
            t = u32()
            val_at = p
            v = value(t)
            self.kvs.append({"key": key, "type": t, "value": v, "key_at": key_at, "type_at": type_at, "val_at": val_at,
                             "end": p})
        self.tensors = []
        for _ in range(nt):
            name, name_at = string()
            nd_at = p
            nd = u32()
            dims_at = p
            dims = [u64() for _ in range(nd)]
            type_at = p
            t = u32()
            off_at = p
            off = u64()
            self.tensors.append({"name": name, "dims": dims, "type": t, "offset": off, "name_at": name_at,
                                 "nd_at": nd_at, "dims_at": dims_at, "type_at": type_at, "off_at": off_at})
        self.table_end = p
        al = self.kv("general.alignment")
        self.alignment = al if isinstance(al, int) and al > 0 else 32
        self.data_start = align(p, self.alignment)
        for t in self.tensors:
            t["data"] = b[self.data_start + t["offset"]: self.data_start + t["offset"] + ggml_nbytes(t["type"], t["dims"])]

    def kv(self, key):
        for e in self.kvs:
            if e["key"] == (enc(key) if isinstance(key, str) else key):
                return e["value"]
        return None


def ggml_nbytes(t, dims):
    bs, ts = GGML_TYPES.get(t, (1, 4))
    n = 1
    for d in dims:
        n *= d
    return n // bs * ts


def gguf_value_bytes(t, v):
    if t in GV_FMT:
        if t in GV_BITS:
            bits, signed = GV_BITS[t]
            return struct.pack(GV_FMT[t], wrap_int(int(v), bits, signed))
        return struct.pack(GV_FMT[t], v)
    if t == 8:
        return pack_u64(len(v)) + v
    if t == 9:
        return pack_u32(v["et"]) + pack_u64(len(v["items"])) + b"".join(gguf_value_bytes(v["et"], x) for x in v["items"])
    raise ValueError(t)


def gguf_build(version, kvs, tensors, alignment=32, count_tensors=None, count_kvs=None):
    """A GGUF file; tensors' data are laid out afresh at aligned offsets (unless 'offset_fixed')."""
    out = bytearray(b"GGUF" + pack_u32(version) + pack_u64(len(tensors) if count_tensors is None else count_tensors)
                    + pack_u64(len(kvs) if count_kvs is None else count_kvs))
    for e in kvs:
        out += pack_u64(len(e["key"])) + e["key"] + pack_u32(e["type"]) + gguf_value_bytes(e["type"], e["value"])
    off = 0
    offsets = []
    for t in tensors:
        o = t["offset"] if t.get("offset_fixed") else off
        offsets.append(o)
        off = align(max(off, o + len(t["data"])), alignment)
    for t, o in zip(tensors, offsets):
        out += pack_u64(len(t["name"])) + t["name"] + pack_u32(len(t["dims"]))
        out += b"".join(pack_u64(d) for d in t["dims"]) + pack_u32(t["type"]) + pack_u64(o)
    out += bytes(align(len(out), alignment) - len(out))
    start = len(out)
    end = start + (max((o + len(t["data"]) for t, o in zip(tensors, offsets)), default=0))
    if end - start > 256 << 20:
        raise ValueError("too large")
    data = bytearray(end - start)
    for t, o in zip(tensors, offsets):
        data[o: o + len(t["data"])] = t["data"]
    return bytes(out + data)


def q8_0_bytes(raw):
    """Q8_0 blocks of float32 values (ggml's reference quantizer)."""
    n = len(raw) // 4
    vals = struct.unpack(f"<{n}f", raw[: 4 * n])
    out = bytearray()
    for i in range(0, n - n % 32, 32):
        blk = vals[i: i + 32]
        amax = max(abs(x) for x in blk)
        d = amax / 127 if amax else 0.0
        inv = 1 / d if d else 0.0
        out += struct.pack("<e", d) + struct.pack("<32b", *[max(-128, min(127, round(x * inv))) for x in blk])
    return bytes(out)


GGUF_KEYS_INT = ["{a}.context_length", "{a}.embedding_length", "{a}.block_count", "{a}.feed_forward_length",
                 "{a}.attention.head_count", "{a}.attention.head_count_kv", "{a}.attention.key_length",
                 "{a}.attention.value_length", "{a}.rope.dimension_count", "{a}.vocab_size",
                 "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                 "tokenizer.ggml.padding_token_id", "general.alignment", "general.file_type",
                 "general.quantization_version"]
GGUF_KEYS_FLOAT = ["{a}.attention.layer_norm_rms_epsilon", "{a}.attention.layer_norm_epsilon", "{a}.rope.freq_base"]
GGUF_KEYS_STR = ["general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre", "general.name",
                 "{a}.rope.scaling.type"]
GGUF_KEYS_BOOL = ["tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"]


def gguf_random_typed(rng, cur_type, cur):
    """A (type, value) pair for a metadata value, often of a different type."""
    r = rng.random()
    if r < 0.45:
        t = rng.choice([4, 5, 10, 11, 0, 1, 2, 3])
        v = rng.choice([0, 1, -1, 2**31, 2**31 - 1, 2**32, 2**32 - 1, 2**40, -2**40, 2**63, 2**64 - 1, 511, 512, 513,
                        (cur + 1) if isinstance(cur, int) else 7])
        return t, v
    if r < 0.6:
        t = rng.choice([6, 12])
        v = rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-30, 1e30, 0.5, 2.0])
        if t == 6 and abs(v) > 3e38 and not math.isinf(v):
            v = float("inf")
        return t, v
    if r < 0.72:
        return 8, enc(rng.choice(STRINGS[:22] + ["llama", "gpt2", "mistral", "gpt-2", "llama-bpe", "smollm", "none", "linear"]))
    if r < 0.8:
        return 7, rng.choice([0, 1, 2, 255])
    if r < 0.92:
        et = rng.choice([4, 5, 10, 8, 6])
        if et == 8:
            items = [b"x", b""]
        elif et == 6:
            items = [1.0, float("nan")]
        else:
            base = cur if isinstance(cur, int) and not isinstance(cur, bool) else 4
            items = rng.choice([[base, base], [base, base + 1], [], [base] * 3, [2**31, 2**31]])
        return 9, {"et": et, "items": items}
    return 9, {"et": 9, "items": [{"et": 4, "items": [1]}]}


def mutate_gguf_bytes(rng, b, desc):
    g = GGUF(b)
    arch = (g.kv("general.architecture") or b"llama").decode("utf-8", "replace")
    r = rng.random()
    buf = bytearray(b)
    if r < 0.25:
        # In-place patches of length, count, type and offset fields.
        k = rng.randrange(10)
        if k == 0:
            v = rng.choice([0, 1, 2, 4, 0x03000000, 2**32 - 1])
            buf[4:8] = pack_u32(v)
            desc.append(f"version := {v}")
        elif k == 1:
            at, cur, what = rng.choice([(g.nt_at, len(g.tensors), "n_tensors"), (g.nkv_at, len(g.kvs), "n_kv")])
            v = rng.choice(U64_EXTREMES + [cur + 1, cur - 1, cur * 2, 0])
            buf[at: at + 8] = pack_u64(v)
            desc.append(f"{what} {cur} := {v}")
        elif k == 2:
            e = rng.choice(g.kvs)
            v = rng.choice(U64_EXTREMES + [len(e["key"]) + 1, len(e["key"]) - 1])
            buf[e["key_at"]: e["key_at"] + 8] = pack_u64(v)
            desc.append(f"key length of {e['key']!r} := {v}")
        elif k == 3:
            e = rng.choice(g.kvs)
            v = rng.choice(list(range(14)) + [2**31, 2**32 - 1])
            buf[e["type_at"]: e["type_at"] + 4] = pack_u32(v)
            desc.append(f"value type of {e['key']!r} {e['type']} := {v}")
        elif k == 4:
            arrs = [e for e in g.kvs if e["type"] == 9]
            strs = [e for e in g.kvs if e["type"] == 8]
            if arrs and rng.random() < 0.6:
                e = rng.choice(arrs)
                if rng.random() < 0.5:
                    v = rng.choice(U64_EXTREMES + [len(e["value"]["items"]) + 1, len(e["value"]["items"]) - 1])
                    at = e["value"]["n_at"]
                    buf[at: at + 8] = pack_u64(v)
                    desc.append(f"array count of {e['key']!r} := {v}")
                else:
                    v = rng.choice(list(range(14)) + [2**32 - 1])
                    at = e["value"]["et_at"]
                    buf[at: at + 4] = pack_u32(v)
                    desc.append(f"array element type of {e['key']!r} := {v}")
            elif strs:
                e = rng.choice(strs)
                v = rng.choice(U64_EXTREMES)
                buf[e["val_at"]: e["val_at"] + 8] = pack_u64(v)
                desc.append(f"string length of {e['key']!r} := {v}")
        elif k == 5 and g.tensors:
            t = rng.choice(g.tensors)
            v = rng.choice(U64_EXTREMES + [len(t["name"]) + 1])
            buf[t["name_at"]: t["name_at"] + 8] = pack_u64(v)
            desc.append(f"name length of tensor {t['name']!r} := {v}")
        elif k == 6 and g.tensors:
            t = rng.choice(g.tensors)
            v = rng.choice([0, 1, 3, 4, 5, 8, 2**31, 2**32 - 1])
            buf[t["nd_at"]: t["nd_at"] + 4] = pack_u32(v)
            desc.append(f"n_dims of {t['name']!r} {len(t['dims'])} := {v}")
        elif k == 7 and g.tensors:
            t = rng.choice(g.tensors)
            if t["dims"]:
                j = rng.randrange(len(t["dims"]))
                v = rng.choice(U64_EXTREMES + [t["dims"][j] + 1, t["dims"][j] * 2, t["dims"][j] - 1])
                at = t["dims_at"] + 8 * j
                buf[at: at + 8] = pack_u64(v)
                desc.append(f"ne[{j}] of {t['name']!r} {t['dims'][j]} := {v}")
        elif k == 8 and g.tensors:
            t = rng.choice(g.tensors)
            v = rng.choice(list(GGML_TYPES) + [4, 5, 31, 36, 40, 2**31, 2**32 - 1])
            buf[t["type_at"]: t["type_at"] + 4] = pack_u32(v)
            desc.append(f"type of {t['name']!r} {t['type']} := {v}")
        elif g.tensors:
            t = rng.choice(g.tensors)
            v = rng.choice(U64_EXTREMES + [t["offset"] + 1, t["offset"] + g.alignment, t["offset"] - g.alignment,
                                           len(b), len(b) - g.data_start])
            buf[t["off_at"]: t["off_at"] + 8] = pack_u64(v)
            desc.append(f"offset of {t['name']!r} {t['offset']} := {v}")
        return bytes(buf)
    if r < 0.33:
        cut = rng.choice([0, 3, 4, 8, 16, 24, rng.randrange(len(b)), rng.randrange(g.table_end), g.table_end,
                          g.data_start, len(b) - 1])
        desc.append(f"truncate at {cut}/{len(b)}")
        return b[:cut]
    if r < 0.4:
        if rng.random() < 0.5:
            flip_bytes(rng, buf, 0, g.table_end, desc, "header/metadata/table")
        else:
            f32s = [t for t in g.tensors if t["type"] == 0]
            t = rng.choice(f32s or g.tensors)
            start = g.data_start + t["offset"]
            if t["type"] in (0, 1):
                poke_specials(rng, buf, start, len(t["data"]), 4 if t["type"] == 0 else 2, desc, f"tensor {t['name']!r}")
            else:
                flip_bytes(rng, buf, start, start + len(t["data"]), desc, f"tensor {t['name']!r}")
        return bytes(buf)
    # Semantic: rebuild a consistent file with changed metadata or tensors.
    kvs = [dict(e) for e in g.kvs]
    tensors = [dict(t) for t in g.tensors]
    alignment = g.alignment
    count_t = count_kv = None
    version = g.version
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        k = rng.random()
        if k < 0.3:
            # A known key set to a value of some type (token ids and sizes mostly).
            pool = rng.choice([GGUF_KEYS_INT, GGUF_KEYS_INT, GGUF_KEYS_FLOAT, GGUF_KEYS_STR, GGUF_KEYS_BOOL])
            key = enc(rng.choice(pool).format(a=arch))
            cur = next((e for e in kvs if e["key"] == key), None)
            if rng.random() < 0.5 and "token_id" in key.decode():
                t = rng.choice([4, 5, 10, 11])
                v = rng.choice([2**31, 2**32, 2**32 - 1, -1, 2**40, -2**40, 511, 512, 513, 2**63, 2**31 - 1, 65535, 65536])
            else:
                t, v = gguf_random_typed(rng, cur["type"] if cur else 4, cur["value"] if cur else None)
            if cur is None:
                kvs.append({"key": key, "type": t, "value": v})
                desc.append(f"add {key.decode()} = {gguf_show(t, v)}")
            else:
                cur["type"], cur["value"] = t, v
                desc.append(f"{key.decode()} := {gguf_show(t, v)}")
            if key == b"general.alignment" and t in GV_BITS and isinstance(v, int) and 0 < v <= 4096 and v & (v - 1) == 0:
                alignment = v
        elif k < 0.45:
            # Tokenizer arrays.
            e = next((e for e in kvs if e["key"] == rng.choice([b"tokenizer.ggml.tokens", b"tokenizer.ggml.merges",
                                                                 b"tokenizer.ggml.token_type"])), None)
            if e is None or e["type"] != 9:
                continue
            items = list(e["value"]["items"])
            op = rng.randrange(9)
            key = e["key"].decode()
            if op == 0:
                items = []
                desc.append(f"{key} := []")
            elif op == 1 and items:
                j = rng.randrange(len(items))
                if e["value"]["et"] == 8:
                    items[j] = rng.choice([b"", b"\xff\xfe", b"\xc3", b"a" * 70000, b"\x00", b" ", b"a b c", b"a  b",
                                           b"\xe2\x80", items[0], b"\n"])
                else:
                    items[j] = rng.choice([-1, 0, 7, 99, 2**31, 2**32 - 1])
                desc.append(f"{key}[{j}] := {short(items[j])}")
            elif op == 2 and items:
                n = rng.choice([1, len(items) // 2, len(items) - 1])
                items = items[:-n] if n else items
                desc.append(f"{key} truncated to {len(items)} entries")
            elif op == 3:
                items = items + items[: rng.choice([1, 10, len(items)])]
                desc.append(f"{key} extended to {len(items)} entries (duplicates)")
            elif op == 4 and e["value"]["et"] == 8:
                new = rng.choice([b"zz qq", b"\xc4\xa0 \xc4\xa0", b"a", b" a", b"a ", b"", b"\xff \xfe", b"<|endoftext|> a"])
                items = items + [new]
                desc.append(f"{key} += {new!r}")
            elif op == 5:
                e["value"] = {"et": rng.choice([4, 5, 0, 6, 9, 10]), "items": [1] * len(items)}
                if e["value"]["et"] == 9:
                    e["value"]["items"] = [{"et": 4, "items": [1]}] * min(len(items), 4)
                desc.append(f"{key} element type := {e['value']['et']}")
                continue
            elif op == 6:
                e["type"], e["value"] = 8, b"not an array"
                desc.append(f"{key} := string")
                continue
            elif op == 7 and len(items) > 1:
                rng.shuffle(items)
                desc.append(f"{key} shuffled")
            else:
                items = items + [b"\xc4\xa0" * 3000] if e["value"]["et"] == 8 else items + [2**31]
                desc.append(f"{key} += huge entry")
            e["value"] = {"et": e["value"]["et"], "items": items}
        elif k < 0.55:
            if kvs:
                i = rng.randrange(len(kvs))
                if rng.random() < 0.6:
                    desc.append(f"delete key {kvs[i]['key'].decode('utf-8', 'replace')}")
                    kvs.pop(i)
                else:
                    desc.append(f"duplicate key {kvs[i]['key'].decode('utf-8', 'replace')}")
                    kvs.append(dict(kvs[i]))
        elif k < 0.8 and tensors:
            i = rng.randrange(len(tensors))
            t = tensors[i]
            op = rng.randrange(7)
            name = t["name"].decode("utf-8", "replace")
            if op == 0 and t["type"] == 0:
                nt = rng.choice([1, 30, 8, 2, 12, 14, 28, 24, 26])
                raw = t["data"]
                if nt == 1:
                    data = f32_to_f16_bytes(raw)
                elif nt == 30:
                    data = f32_to_bf16_bytes(raw)
                elif nt == 8 and t["dims"] and t["dims"][0] % 32 == 0:
                    data = q8_0_bytes(raw)
                else:
                    data = bytes(rng.getrandbits(8) for _ in range(min(4096, ggml_nbytes(nt, t["dims"]))))
                    data += bytes(max(0, ggml_nbytes(nt, t["dims"]) - len(data)))
                t["type"], t["data"] = nt, data
                desc.append(f"tensor {name}: type F32 -> {nt} (data re-encoded)")
            elif op == 1:
                dims = t["dims"]
                nd = rng.choice([dims[::-1], dims + [1], dims[:1], [0] + dims[1:], [d + 1 for d in dims],
                                 [d * 2 for d in dims], [], [1, 1, 1, 1, 1], [max(1, d // 2) for d in dims]])
                t["dims"] = nd
                want = ggml_nbytes(t["type"], nd)
                if want > 64 << 20:
                    continue
                t["data"] = (t["data"] + bytes(max(0, want - len(t["data"]))))[:want]
                desc.append(f"tensor {name}: ne {dims} -> {nd} (data resized)")
            elif op == 2:
                tensors.pop(i)
                desc.append(f"drop tensor {name}")
            elif op == 3:
                new = rng.choice([b"blk.2.attn_norm.weight", b"output.weight", b"", b"x" * 5000, b"blk.0.attn_q.bias",
                                  b"\xff\xfe", b"blk.99999999999999999999.ffn_up.weight", b"blk.-1.ffn_up.weight",
                                  b"token_embd.weight", b"position_embd.weight", b"blk.0.attn_qkv.weight"])
                if any(x["name"] == new for x in tensors) and rng.random() < 0.5:
                    desc.append(f"tensor {name} renamed to existing {new!r} (duplicate name)")
                else:
                    desc.append(f"rename tensor {name} -> {short(new)}")
                t["name"] = new
            elif op == 4:
                tensors.append(dict(t))
                desc.append(f"duplicate tensor {name}")
            elif op == 5:
                t["offset"], t["offset_fixed"] = rng.choice([1, 16, alignment * 3, 0, 2**40]), True
                desc.append(f"tensor {name} data offset := {t['offset']} (fixed)")
            else:
                raw = bytearray(t["data"])
                if t["type"] in (0, 1):
                    poke_specials(rng, raw, 0, len(raw), 4 if t["type"] == 0 else 2, desc, f"tensor {name}")
                elif t["type"] == 8:
                    for j in range(0, len(raw), 34):
                        if rng.random() < 0.3:
                            raw[j: j + 2] = rng.choice(FLOAT16_SPECIALS)
                    desc.append(f"tensor {name}: Q8_0 scales := NaN/Inf")
                t["data"] = bytes(raw)
        elif k < 0.87:
            v = rng.choice([0, 1, 3, 8, 64, 2**31, 2**32, 4096, 24])
            alignment_kv = next((e for e in kvs if e["key"] == b"general.alignment"), None)
            if alignment_kv is None:
                kvs.append({"key": b"general.alignment", "type": 4, "value": v})
            else:
                alignment_kv["type"], alignment_kv["value"] = 4, v
            if 0 < v <= 4096 and v & (v - 1) == 0:
                alignment = v
            desc.append(f"general.alignment := {v}")
        elif k < 0.93:
            count_t = rng.choice([len(tensors) + 1, max(0, len(tensors) - 1), 0])
            count_kv = rng.choice([None, len(kvs) + 1, max(0, len(kvs) - 1)])
            desc.append(f"counts := n_tensors {count_t}, n_kv {count_kv}")
        else:
            version = rng.choice([1, 2, 3, 4])
            desc.append(f"version := {version}")
    try:
        return gguf_build(version, kvs, tensors, alignment, count_t, count_kv)
    except (ValueError, struct.error, OverflowError) as e:
        desc.append(f"(rebuild failed: {e}; original kept)")
        return b


def gguf_show(t, v):
    if t == 9:
        return f"array[{v['et']}] of {len(v['items'])} {short(v['items'][:3], 40)}"
    return f"({ {0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool', 8: 'str', 10: 'u64', 11: 'i64', 12: 'f64'}.get(t, t)}) {short(v, 50)}"


# ---------------------------------------------------------------------------------------------
# .edge

EDGE_MAGIC = b"EDGE\r\n\x1a\n"


def a64(n):
    return (n + 63) & ~63


class Edge:
    def __init__(self, b):
        self.b = b
        self.version, self.flags, self.h_off, self.h_len, self.h_crc = struct.unpack_from("<IIQQI", b, 8)
        self.header = json.loads(b[self.h_off: self.h_off + self.h_len])

    def items(self):
        return [("tensor", t) for t in self.header["tensors"]] + [("blob", x) for x in self.header["blobs"]]


def edge_assemble(version, header, data_area, flags=0):
    """File bytes from a data area (bytes 64 .. header_offset) and a header object."""
    hb = enc(dumps(header, sort_keys=True))
    h_off = 64 + len(data_area)
    pre = EDGE_MAGIC + struct.pack("<IIQQI", version, flags, h_off, len(hb), zlib.crc32(hb)) + bytes(28)
    return pre + data_area + hb


def edge_repack(e, payloads):
    """Rebuild an .edge file: payloads maps (kind, name) -> new stored bytes; offsets, lengths and CRCs fixed."""
    items = sorted(e.items(), key=lambda kv: kv[1]["offset"])
    area = bytearray()
    for kind, it in items:
        raw = payloads.get((kind, it["name"]), e.b[it["offset"]: it["offset"] + it["length"]])
        it["offset"] = 64 + len(area)
        it["length"] = len(raw)
        it["crc32"] = zlib.crc32(raw)
        area += raw + bytes(a64(len(raw)) - len(raw))
    return bytes(area)


def q_layout(t):
    """(code bytes, scale offset, scale width, zero offset or None) of a q8/q4/q3 tensor payload."""
    rows, cols = t["shape"]
    p = t.get("params") or {}
    if t["encoding"] == "q8":
        so = a64(rows * cols)
        return rows * cols, so, 4, rows, (None if p.get("symmetric") else a64(so + 4 * rows))
    g = p.get("group_size", 64)
    groups = -(-cols // g)
    rb = (cols + 1) // 2 if t["encoding"] == "q4" else (3 * cols + 7) // 8
    so = a64(rows * rb)
    return rows * rb, so, 2, rows * groups, (None if p.get("symmetric") else a64(so + 2 * rows * groups))


def q4k_layout(t):
    """(code bytes, sub offset, sub bytes per row, super offset, size) of a q4k tensor payload."""
    rows, cols = t["shape"]
    p = t.get("params") or {}
    g, b = p["group_size"], p["sub_bits"]
    rb = (cols + 1) // 2
    sub_row = (2 * b * -(-cols // g) + 7) // 8
    sub_off = a64(rows * rb)
    super_off = a64(sub_off + rows * sub_row)
    return rows * rb, sub_off, sub_row, super_off, super_off + 4 * rows


def q3s_layout(t):
    """(code bytes, sub offset, sub bytes per row, super offset, size) of a q3s tensor payload."""
    rows, cols = t["shape"]
    p = t.get("params") or {}
    g, b = p["group_size"], p["sub_bits"]
    rb = (3 * cols + 7) // 8
    sub_row = ((b + 3) * -(-cols // g) + 7) // 8
    sub_off = a64(rows * rb)
    super_off = a64(sub_off + rows * sub_row)
    return rows * rb, sub_off, sub_row, super_off, super_off + 2 * rows


ENCODING_VERSION = {"q3": 2, "q4k": 3, "q3s": 4}  # the format version that introduced an encoding; others: 1


def payload_size(t):
    """Payload bytes of tensor entry t per docs/edge-format.md ("Encodings"); None when undefined."""
    shape, e, p = t["shape"], t["encoding"], t.get("params") or {}
    n = 1
    for d in shape:
        n *= d
    if e == "f32":
        return 4 * n
    if e == "f16":
        return 2 * n
    rows, cols = shape
    sym = p.get("symmetric")
    if e == "q8":
        so = a64(rows * cols)
        return so + 4 * rows if sym else a64(so + 4 * rows) + rows
    if e in ("q4", "q3"):
        g = p["group_size"]
        groups = -(-cols // g)
        rb = (cols + 1) // 2 if e == "q4" else (3 * cols + 7) // 8
        so = a64(rows * rb)
        return so + 2 * rows * groups if sym else a64(so + 2 * rows * groups) + rows * groups
    if e == "q4k":
        return q4k_layout(t)[4]
    if e == "q3s":
        return q3s_layout(t)[4]
    return sparse_layout(t)["size"]


def sparse_layout(t):
    """Offsets of the arrays of a csr, bitmask or nm payload."""
    rows, cols = t["shape"]
    p = t.get("params") or {}
    ve = p["value_encoding"]
    vb = {"f32": 4, "f16": 2, "q8": 1}[ve]
    L = {"vb": vb}
    if t["encoding"] == "nm":
        n, m = p["n"], p["m"]
        bits = (m - 1).bit_length()
        slots = (cols // m) * n + min(n, cols % m)
        L.update(bits=bits, slots=slots, idx_row=(slots * bits + 7) // 8)
        L["value_off"] = a64(rows * L["idx_row"])
        end = L["value_off"] + rows * slots * vb
        count = rows * slots
    else:
        nnz = t["nnz"]
        if t["encoding"] == "bitmask":
            L["mask_row"] = -(-cols // 8)
            L["ptr_off"] = a64(rows * L["mask_row"])
            L["value_off"] = a64(L["ptr_off"] + 4 * (rows + 1))
        else:
            iw = p["index_width"]
            L["ptr_off"] = 0
            L["idx_off"] = a64(4 * (rows + 1))
            L["value_off"] = a64(L["idx_off"] + nnz * iw // 8)
        end = L["value_off"] + nnz * vb
        count = nnz
    if ve == "q8":
        L["scale_off"] = a64(L["value_off"] + count)
        end = L["scale_off"] + 4 * rows
        if not p.get("symmetric"):
            L["zero_off"] = a64(end)
            end = L["zero_off"] + rows
    L["size"] = end
    return L


def put_bits(buf, base, bitpos, value, nbits):
    for k in range(nbits):
        if value >> k & 1:
            i = bitpos + k
            buf[base + i // 8] |= 1 << (i % 8)


def random_encoding(rng, shape):
    """A tensor entry fragment (encoding, params, nnz) for a [rows, cols] weight."""
    rows, cols = shape
    e = rng.choice(["q8", "q4", "q3", "q4k", "q3s", "csr", "bitmask", "nm", "f16", "f32"])
    sym = rng.random() < 0.5
    if e in ("f32", "f16"):
        return e, None, None
    if e == "q8":
        return e, {"symmetric": sym}, None
    if e == "q4":
        return e, {"symmetric": sym, "group_size": rng.choice([2, 4, 32, 64, 66, cols, cols + 2, 2 * cols, 1 << 24])}, None
    if e == "q3":
        return e, {"symmetric": sym, "group_size": rng.choice([8, 16, 64, 72, cols, 1 << 24])}, None
    if e == "q4k":
        g = rng.choice([2, 6, 32, 64, 66, cols + cols % 2, 1 << 24])
        return e, {"group_size": g, "sub_bits": rng.choice([6, 8])}, None
    if e == "q3s":
        g = rng.choice([8, 16, 64, 72, -(-cols // 8) * 8, 1 << 24])
        return e, {"group_size": g, "sub_bits": rng.choice([6, 8])}, None
    ve = rng.choice(["f32", "f16", "q8"])
    p = {"value_encoding": ve}
    if ve == "q8":
        p["symmetric"] = sym
    if e == "nm":
        m = rng.choice([2, 3, 4, 4, 8, 16, 33, 128, 256])
        p.update(n=rng.randrange(1, m), m=m)
        return e, p, None
    nnz = rng.choice([0, 1, rows, rows * cols // 2, rows * cols - 1, rows * cols])
    if e == "csr":
        p["index_width"] = 16 if cols <= 65536 and rng.random() < 0.5 else 8
    return e, p, nnz


def build_payload(rng, t, desc):
    """A payload for entry t that follows the spec, then (often) one targeted violation of it."""
    e, p = t["encoding"], t.get("params") or {}
    size = payload_size(t)
    buf = bytearray(size)
    corrupt = rng.random() < 0.5
    rows, cols = t["shape"] if len(t["shape"]) == 2 else (1, t["shape"][0])
    if e in ("f32", "f16"):
        n = size // (4 if e == "f32" else 2)
        fmt = "<f" if e == "f32" else "<e"
        for i in range(n):
            struct.pack_into(fmt, buf, i * (size // n), rng.uniform(-0.1, 0.1))
        if corrupt:
            poke_specials(rng, buf, 0, size, 4 if e == "f32" else 2, desc, "payload")
        return bytes(buf)
    if e in ("q8", "q4", "q3"):
        codes, so, w, count, zo = q_layout(t)
        buf[0:codes] = bytes(rng.getrandbits(8) for _ in range(codes))
        if e == "q4" and cols % 2:
            rb = (cols + 1) // 2
            for r in range(rows):
                buf[r * rb + rb - 1] &= 0x0F
        if e == "q3":
            rb = (3 * cols + 7) // 8
            used = 3 * cols - 8 * (rb - 1)
            if used < 8:
                for r in range(rows):
                    buf[r * rb + rb - 1] &= (1 << used) - 1
        for i in range(count):
            if w == 4:
                struct.pack_into("<f", buf, so + 4 * i, rng.choice([0.01, 0.002, 1e-4, 0.0]))
            else:
                struct.pack_into("<e", buf, so + 2 * i, rng.choice([0.01, 0.002, 1e-4, 0.0]))
        top = {"q8": 255, "q4": 15, "q3": 7}[e]
        if zo is not None:
            for i in range(count):
                buf[zo + i] = rng.randint(0, top)
        if corrupt:
            k = rng.randrange(3)
            if k == 0:
                poke_specials(rng, buf, so, w * count, w, desc, "scales")
            elif k == 1 and zo is not None and top < 255:
                buf[zo + rng.randrange(count)] = rng.choice([top + 1, 255])
                desc.append("a zero point above its range")
            elif (e == "q4" and cols % 2) or (e == "q3" and (3 * cols) % 8):
                rb = codes // rows
                buf[rng.randrange(rows) * rb + rb - 1] |= 0x80
                desc.append("padding bits set at a row end")
            else:
                i = rng.randrange(count)
                buf[so + w * i: so + w * (i + 1)] = rng.choice(FLOAT32_SPECIALS[:4] if w == 4 else FLOAT16_SPECIALS[:4])
                desc.append(f"scale {i} := NaN/Inf")
        return bytes(buf)
    if e == "q4k":
        codes, sub_off, sub_row, super_off, _ = q4k_layout(t)
        buf[0:codes] = bytes(rng.getrandbits(8) for _ in range(codes))
        rb = (cols + 1) // 2
        if cols % 2:
            for r in range(rows):
                buf[r * rb + rb - 1] &= 0x0F
        used = 2 * p["sub_bits"] * -(-cols // p["group_size"])
        for r in range(rows):
            put_bits(buf, sub_off + r * sub_row, 0, rng.getrandbits(used), used)
        for i in range(2 * rows):
            struct.pack_into("<e", buf, super_off + 2 * i, rng.choice([0.01, 0.002, 1e-4, 0.0, 6e-8]))
        if corrupt:
            k = rng.randrange(4)
            if k == 0:
                poke_specials(rng, buf, super_off, 4 * rows, 2, desc, "super-scales")
            elif k == 1:
                i = rng.randrange(2 * rows)
                buf[super_off + 2 * i + 1] |= 0x80
                desc.append(f"super value {i}: sign bit set")
            elif k == 2 and used % 8:
                buf[sub_off + rng.randrange(rows) * sub_row + sub_row - 1] |= 0x80
                desc.append("sub-parameter padding bits set at a row end")
            elif cols % 2:
                buf[rng.randrange(rows) * rb + rb - 1] |= 0x80
                desc.append("code padding nibble set at a row end")
        return bytes(buf)
    if e == "q3s":
        k = rng.randrange(6) if corrupt else -1
        if k == 5:
            # Params the spec refuses, the payload built and sized for them, so that only the params rule
            # (not the size rule) can refuse the file.
            kp = rng.randrange(3)
            if kp == 0:
                v = rng.choice([2, 4, 6, 12, 20, 60, 66, 100, (1 << 24) + 4, (1 << 24) + 8])
                pk = "group_size"
            elif kp == 1:
                v = rng.choice([0, 3, 4, 5, 7, 9, 16])
                pk = "sub_bits"
            else:
                v = rng.random() < 0.5
                pk = "symmetric"
            desc.append(f"params.{pk} {short(p.get(pk))} := {v} (payload sized for it)")
            p[pk] = v
            buf = bytearray(payload_size(t))
        elif k == 3 and (3 * cols) % 8 == 0 and cols > 1:
            # Rows that end on a byte boundary have no code padding bits: one column less (the payload
            # sized for that shape) gives them some, checked when the file is opened, before a model
            # compares shapes.
            cols -= 1
            t["shape"] = [rows, cols]
            desc.append(f"shape := {t['shape']} (payload sized for it, so code rows end in padding bits)")
            buf = bytearray(payload_size(t))
        codes, sub_off, sub_row, super_off, _ = q3s_layout(t)
        buf[0:codes] = bytes(rng.getrandbits(8) for _ in range(codes))
        rb = (3 * cols + 7) // 8
        tail = 3 * cols - 8 * (rb - 1)      # bits of each row's last code byte that hold codes
        if tail < 8:
            for r in range(rows):
                buf[r * rb + rb - 1] &= (1 << tail) - 1
        used = (p["sub_bits"] + 3) * -(-cols // p["group_size"])
        for r in range(rows):
            put_bits(buf, sub_off + r * sub_row, 0, rng.getrandbits(used), used)
        for i in range(rows):
            struct.pack_into("<e", buf, super_off + 2 * i, rng.choice([0.01, 0.002, 1e-4, 0.0, 6e-8]))
        if k == 2 and used % 8:
            bit = rng.randrange(used % 8, 8)
            buf[sub_off + rng.randrange(rows) * sub_row + sub_row - 1] |= 1 << bit
            desc.append(f"sub-parameter padding bit {bit} of a row's last byte set")
        elif k in (2, 3) and tail < 8:
            bit = rng.randrange(tail, 8)
            buf[rng.randrange(rows) * rb + rb - 1] |= 1 << bit
            desc.append(f"code padding bit {bit} of a row's last byte set")
        elif k == 0:
            poke_specials(rng, buf, super_off, 2 * rows, 2, desc, "super-scales")
        elif k == 1:
            i = rng.randrange(rows)
            buf[super_off + 2 * i + 1] |= 0x80
            desc.append(f"super-scale D {i}: sign bit set")
        elif k in (2, 3, 4):
            i = rng.randrange(rows)
            buf[super_off + 2 * i: super_off + 2 * i + 2] = rng.choice(FLOAT16_SPECIALS[:4])
            desc.append(f"super-scale D {i} := NaN/Inf")
        return bytes(buf)
    L = sparse_layout(t)
    vb, ve = L["vb"], p["value_encoding"]
    if e == "nm":
        n, m, bits, slots, idx_row = p["n"], p["m"], L["bits"], L["slots"], L["idx_row"]
        for r in range(rows):
            k = 0
            for g0 in range(0, cols, m):
                glen = min(m, cols - g0)
                for idx in sorted(rng.sample(range(glen), min(n, glen))):
                    put_bits(buf, r * idx_row, k * bits, idx, bits)
                    k += 1
        count = rows * slots
        if corrupt and slots:
            r, k = rng.randrange(rows), rng.randrange(slots)
            v = rng.choice([m - 1, (1 << bits) - 1, 0])
            put_bits(buf, r * idx_row, k * bits, v, bits)
            desc.append(f"nm index bits of row {r} slot {k} or-ed with {v}")
    else:
        nnz = t["nnz"]
        per = [0] * rows
        left = nnz
        for r in range(rows):
            per[r] = min(cols, left // (rows - r) + (1 if left % (rows - r) else 0))
            left -= per[r]
        ptr = [0]
        for c in per:
            ptr.append(ptr[-1] + c)
        for i, v in enumerate(ptr):
            struct.pack_into("<I", buf, L["ptr_off"] + 4 * i, v)
        k = 0
        for r in range(rows):
            colsel = sorted(rng.sample(range(cols), per[r]))
            if e == "bitmask":
                for c in colsel:
                    buf[r * L["mask_row"] + c // 8] |= 1 << (c % 8)
            elif p["index_width"] == 16:
                for c in colsel:
                    struct.pack_into("<H", buf, L["idx_off"] + 2 * k, c)
                    k += 1
            else:
                prev = -1
                for j, c in enumerate(colsel):
                    gap = c - prev - 1
                    if gap > 255:
                        c = prev + 256
                        gap = 255
                    if c >= cols:     # cannot place the rest with gaps <= 256: use the leftmost free columns
                        c = prev + 1
                        gap = 0
                    buf[L["idx_off"] + k] = gap
                    prev = c
                    k += 1
        count = nnz
        if corrupt:
            kk = rng.randrange(5)
            if kk == 0:
                i = rng.randrange(1, rows + 1)
                v = rng.choice([0, nnz + 1, 2**32 - 1, 2**31, ptr[i] - 1 if ptr[i] else 5])
                struct.pack_into("<I", buf, L["ptr_off"] + 4 * i, v)
                desc.append(f"row_ptr[{i}] := {v}")
            elif kk == 1:
                struct.pack_into("<I", buf, L["ptr_off"], rng.choice([1, 2**32 - 1]))
                desc.append("row_ptr[0] != 0")
            elif kk == 2 and e == "bitmask" and cols % 8:
                buf[rng.randrange(rows) * L["mask_row"] + L["mask_row"] - 1] |= 0x80
                desc.append("mask bit set beyond cols")
            elif kk == 3 and e == "bitmask":
                buf[rng.randrange(rows * L["mask_row"])] ^= 1 << rng.randrange(8)
                desc.append("mask popcount disagrees with row_ptr")
            elif e == "csr" and nnz:
                j = rng.randrange(nnz)
                if p["index_width"] == 16:
                    v = rng.choice([cols, 65535, 0])
                    struct.pack_into("<H", buf, L["idx_off"] + 2 * j, v)
                else:
                    v = 255
                    buf[L["idx_off"] + j] = v
                desc.append(f"col_idx[{j}] := {v}")
    vo = L["value_off"]
    for i in range(count):
        if ve == "f32":
            struct.pack_into("<f", buf, vo + 4 * i, rng.uniform(-0.1, 0.1))
        elif ve == "f16":
            struct.pack_into("<e", buf, vo + 2 * i, rng.uniform(-0.1, 0.1))
        else:
            buf[vo + i] = rng.getrandbits(8)
    if ve == "q8":
        for r in range(rows):
            struct.pack_into("<f", buf, L["scale_off"] + 4 * r, 0.01)
        if corrupt and rng.random() < 0.3:
            poke_specials(rng, buf, L["scale_off"], 4 * rows, 4, desc, "sparse q8 scales")
    elif corrupt and rng.random() < 0.3 and count:
        poke_specials(rng, buf, vo, vb * count, vb, desc, "sparse values")
    return bytes(buf)


def reencode_tensor(rng, e, desc):
    """Rewrites one 2-D tensor of an .edge file in another encoding with a generated payload."""
    h = e.header
    ts = [t for t in h["tensors"] if len(t["shape"]) == 2 and t["shape"][0] * t["shape"][1] <= 65536]
    if not ts:
        return None
    t = rng.choice(ts)
    enc_name, params, nnz = random_encoding(rng, t["shape"])
    t["encoding"] = enc_name
    t.pop("params", None)
    t.pop("nnz", None)
    t.pop("raw_length", None)
    t["compression"] = "none"
    if params is not None:
        t["params"] = params
    if nnz is not None:
        t["nnz"] = nnz
    desc.append(f"tensor {t['name']} {t['shape']} re-encoded as {enc_name} {params or ''}{'' if nnz is None else f' nnz {nnz}'}")
    payload = build_payload(rng, t, desc)
    if rng.random() < 0.1:
        t["compression"] = "deflate"
        t["raw_length"] = len(payload)
        payload = zlib.compress(payload, 6)
        desc.append("deflated")
    if rng.random() < 0.1 and t.get("nnz") is not None:
        t["nnz"] += rng.choice([1, -1])
        desc.append(f"entry nnz := {t['nnz']} (payload built for one less/more)")
    version = e.version
    if rng.random() < 0.9:  # mostly the oldest version that can express the file; else the seed's
        version = max([1] + [ENCODING_VERSION.get(x["encoding"], 1) for x in h["tensors"]])
    h["version"] = version
    area = edge_repack(e, {("tensor", t["name"]): payload})
    return edge_assemble(version, h, area)


def mutate_edge_bytes(rng, b, desc, tokenizer_mutator):
    e = Edge(b)
    r = rng.random()
    buf = bytearray(b)
    if r < 0.1:
        k = rng.randrange(7)
        if k == 0:
            v = rng.choice([0, 1, 2, 3, 4, 5, 2**31, 2**32 - 1])
            buf[8:12] = pack_u32(v)
            desc.append(f"preamble version {e.version} := {v}")
        elif k == 1:
            v = rng.choice([1, 2, 2**31, 2**32 - 1])
            buf[12:16] = pack_u32(v)
            desc.append(f"preamble flags := {v}")
        elif k == 2:
            v = rng.choice([0, 1, 63, 64, e.h_off - 64, e.h_off + 64, e.h_off - 1, e.h_off + 1, len(b), 2**63, 2**64 - 1,
                            2**64 - 64, 2**63 - 64])
            buf[16:24] = pack_u64(v)
            desc.append(f"header_offset {e.h_off} := {v}")
        elif k == 3:
            v = rng.choice([0, 1, 2, e.h_len - 1, e.h_len + 1, 64 << 20, (64 << 20) + 1, 2**63, 2**64 - 1, len(b)])
            buf[24:32] = pack_u64(v)
            desc.append(f"header_length {e.h_len} := {v}")
        elif k == 4:
            v = rng.getrandbits(32)
            buf[32:36] = pack_u32(v)
            desc.append(f"header_crc32 := {v:#x}")
        elif k == 5:
            i = rng.randrange(36, 64)
            buf[i] = rng.randrange(1, 256)
            desc.append(f"reserved byte {i} := {buf[i]}")
        else:
            i = rng.randrange(8)
            buf[i] ^= 1 << rng.randrange(8)
            desc.append(f"magic byte {i} flipped")
        return bytes(buf)
    if r < 0.15:
        cut = rng.choice([0, 8, 63, 64, rng.randrange(len(b)), e.h_off, e.h_off + 1, len(b) - 1])
        desc.append(f"truncate at {cut}/{len(b)}")
        return b[:cut]
    if r < 0.17:
        extra = rng.choice([b"\x00", b" ", bytes(64), b"junk"])
        desc.append(f"append {extra!r}")
        return b + extra
    h = e.header
    version = e.version
    if r < 0.36:
        out = reencode_tensor(rng, e, desc)
        if out is not None:
            return out
        e = Edge(b)
        h = e.header
    if r < 0.45:
        # Data area: flip bytes or write NaN/Inf into one item; the item CRC is fixed or not.
        kind, it = rng.choice(e.items())
        start, n = it["offset"], it["length"]
        fix = rng.random() < 0.75
        if kind == "tensor" and it["compression"] == "none" and rng.random() < 0.7:
            enc_name = it["encoding"]
            if enc_name in ("f32", "f16"):
                poke_specials(rng, buf, start, n, 4 if enc_name == "f32" else 2, desc, f"tensor {it['name']}")
            elif enc_name == "q4k":
                codes, sub_off, sub_row, super_off, size = q4k_layout(it)
                k = rng.random()
                if k < 0.5:
                    poke_specials(rng, buf, start + super_off, size - super_off, 2, desc, f"tensor {it['name']} super-scales")
                elif k < 0.7:
                    flip_bytes(rng, buf, start + sub_off, start + super_off, desc, f"tensor {it['name']} sub-parameters")
                else:
                    flip_bytes(rng, buf, start, start + codes, desc, f"tensor {it['name']} codes")
            elif enc_name == "q3s":
                codes, sub_off, sub_row, super_off, size = q3s_layout(it)
                k = rng.random()
                if k < 0.5:
                    poke_specials(rng, buf, start + super_off, size - super_off, 2, desc, f"tensor {it['name']} super-scales")
                elif k < 0.7:
                    flip_bytes(rng, buf, start + sub_off, start + super_off, desc, f"tensor {it['name']} sub-parameters")
                else:
                    flip_bytes(rng, buf, start, start + codes, desc, f"tensor {it['name']} codes")
            elif enc_name in ("q8", "q4", "q3"):
                codes, so, w, count, zo = q_layout(it)
                k = rng.random()
                if k < 0.6:
                    poke_specials(rng, buf, start + so, w * count, w, desc, f"tensor {it['name']} scales")
                elif k < 0.8 and zo is not None:
                    for _ in range(rng.choice([1, 5])):
                        buf[start + zo + rng.randrange(count)] = rng.choice([8, 15, 16, 200, 255])
                    desc.append(f"tensor {it['name']} zero points out of range")
                else:
                    flip_bytes(rng, buf, start, start + codes, desc, f"tensor {it['name']} codes")
            else:
                flip_bytes(rng, buf, start, start + n, desc, f"tensor {it['name']} ({enc_name})")
        else:
            flip_bytes(rng, buf, start, start + n, desc, f"{kind} {it['name']}")
        if fix:
            it["crc32"] = zlib.crc32(bytes(buf[start: start + n]))
            desc.append("item CRC fixed")
        return edge_assemble(version, h, bytes(buf[64: e.h_off]))
    if r < 0.54:
        # Replace a blob (the tokenizer) or a tensor payload, repacking the file consistently.
        payloads = {}
        k = rng.random()
        blobs = [x for x in h["blobs"] if x["name"] == "tokenizer.json" and x["compression"] == "none"]
        if k < 0.6 and blobs:
            x = blobs[0]
            doc = b[x["offset"]: x["offset"] + x["length"]]
            new = tokenizer_mutator(rng, doc, desc)
            if not new:
                new = b" "
            payloads[("blob", x["name"])] = new
        else:
            ts = [t for t in h["tensors"] if t["compression"] == "none"]
            if not ts:
                return b
            t = rng.choice(ts)
            raw = b[t["offset"]: t["offset"] + t["length"]]
            op = rng.random()
            if op < 0.3 and t["encoding"] == "f32":
                t["encoding"] = "f16"
                payloads[("tensor", t["name"])] = f32_to_f16_bytes(raw)
                desc.append(f"tensor {t['name']} re-encoded f32 -> f16")
            elif op < 0.5:
                t["compression"] = "deflate"
                t["raw_length"] = len(raw)
                payloads[("tensor", t["name"])] = zlib.compress(raw, 6)
                desc.append(f"tensor {t['name']} deflated")
            elif op < 0.65:
                t["compression"] = "deflate"
                extra = rng.choice([1, 64, 1000])
                t["raw_length"] = len(raw)
                payloads[("tensor", t["name"])] = zlib.compress(raw + bytes(extra), 6)
                desc.append(f"tensor {t['name']} deflated with {extra} extra bytes inside")
            elif op < 0.75:
                t["compression"] = "deflate"
                t["raw_length"] = len(raw)
                z = zlib.compress(raw, 6)
                payloads[("tensor", t["name"])] = rng.choice([z[:-4], z[:2] + bytes(len(z) - 2), z + b"\x00", z[:10]])
                desc.append(f"tensor {t['name']} deflated, stream damaged")
            else:
                n = rng.choice([0, 1, 63, len(raw) - 1, len(raw) + 1])
                payloads[("tensor", t["name"])] = (raw + bytes(64))[:n] if n > 0 else b""
                desc.append(f"tensor {t['name']} payload resized {len(raw)} -> {n}")
        area = edge_repack(e, payloads)
        if rng.random() < 0.1:
            version = rng.choice([v for v in (1, 2, 3, 4) if v != version])
            desc.append(f"version := {version}")
            h["version"] = version
        return edge_assemble(version, h, area)
    # Header JSON edits, CRC recomputed (usually).
    area = b[64: e.h_off]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        k = rng.random()
        cfg = h.get("config") if isinstance(h, dict) else None
        if k < 0.35 and isinstance(cfg, dict):
            key = rng.choice(["num_heads", "head_dim", "hidden_size", "vocab_size", "num_layers", "num_kv_heads",
                              "intermediate_size", "max_positions", "bos_token_id", "eos_token_id", "bos_token_id",
                              "eos_token_id", "norm_eps", "rope_theta", "architecture", "activation", "tied_embeddings",
                              "layers", "layers", "unknown_key"])
            cur = cfg.get(key)
            if key == "layers":
                n = cfg.get("num_layers", 2) if isinstance(cfg.get("num_layers"), int) else 2
                base = {"num_heads": cfg.get("num_heads"), "num_kv_heads": cfg.get("num_kv_heads"),
                        "intermediate_size": cfg.get("intermediate_size")}
                layers = [dict(base) for _ in range(max(0, min(n, 64)))]
                if layers and rng.random() < 0.8:
                    j = rng.randrange(len(layers))
                    f = rng.choice(list(base))
                    layers[j][f] = rng.choice([0, -1, 1, 3, 2**31, 2**32, 2**40, -2**40, 2**53, 1.5, None, "4"])
                    desc.append(f"config.layers[{j}].{f} := {short(layers[j][f])}")
                else:
                    layers = rng.choice([[], layers[:-1], layers + layers[:1], [{}] * len(layers), "x", None])
                    desc.append(f"config.layers := {short(layers)}")
                cfg["layers"] = layers
            elif key in ("bos_token_id", "eos_token_id", "vocab_size", "num_heads", "head_dim", "hidden_size",
                         "num_layers", "num_kv_heads", "intermediate_size", "max_positions") and rng.random() < 0.7:
                v = rng.choice([2**31, 2**32, 2**40, -2**40, -1, 0, 2**31 - 1, 2**24, 2**24 + 1, 2**53, 2**53 + 2,
                                2**63, 511, 512, 513, 1, 3, (cur + 1) if isinstance(cur, int) else 1,
                                (cur * 2) if isinstance(cur, int) else 2])
                cfg[key] = v
                desc.append(f"config.{key} {short(cur)} := {v}")
            elif cur is None and key != "unknown_key":
                cfg[key] = any_value(rng)
                desc.append(f"config.{key} (absent) := {short(cfg[key])}")
            else:
                v = interesting(rng, cur) if key != "unknown_key" else any_value(rng)
                cfg[key] = v
                desc.append(f"config.{key} {short(cur)} := {short(v)}")
        elif k < 0.7 and isinstance(h.get("tensors"), list) and any(isinstance(x, dict) for x in h["tensors"]):
            t = rng.choice([x for x in h["tensors"] if isinstance(x, dict)])  # an earlier edit may have made an entry a non-object
            f = rng.choice(["offset", "length", "shape", "shape", "encoding", "params", "params", "crc32",
                            "compression", "raw_length", "nnz", "name", "<delete>", "<duplicate>", "<unknown>"])
            if f == "<delete>":
                h["tensors"].remove(t)
                desc.append(f"delete tensor entry {t['name']}")
            elif f == "<duplicate>":
                h["tensors"].append(dict(t))
                desc.append(f"duplicate tensor entry {t['name']}")
            elif f == "<unknown>":
                t["extra"] = 1
                desc.append(f"tensor {t['name']}: unknown key")
            elif f == "shape":
                s = t.get("shape")
                v = rng.choice([[], [0], s[::-1] if isinstance(s, list) else [1], (s or []) + [1], [2**31, 1],
                                [2**32, 2**32], [2**40, 2**40], [1] * 9, [-1, 64], [64.5, 64], None, "64x64",
                                [x * 2 for x in s] if isinstance(s, list) else 0,
                                [s[0], s[1] + 1] if isinstance(s, list) and len(s) == 2 else [3]])
                t["shape"] = v
                desc.append(f"tensor {t['name']}.shape {short(s)} := {short(v)}")
            elif f == "params":
                p = t.get("params")
                if isinstance(p, dict) and p and rng.random() < 0.7:
                    pk = rng.choice(list(p) + ["group_size", "n", "m", "index_width", "value_encoding", "symmetric", "sub_bits"])
                    cur = p.get(pk)
                    if pk in ("group_size", "n", "m", "index_width", "sub_bits"):
                        v = rng.choice([0, 1, 2, 3, 7, 8, 16, 24, 32, 63, 64, 128, 256, 257, 4096, 2**24, 2**24 + 2,
                                        2**31, 2**32, -2, -64, 2**53])
                    elif pk == "value_encoding":
                        v = rng.choice(["f32", "f16", "q8", "q4", "bf16", "", None])
                    else:
                        v = interesting(rng, cur)
                    p[pk] = v
                    desc.append(f"tensor {t['name']}.params.{pk} {short(cur)} := {short(v)}")
                else:
                    v = rng.choice([None, {}, {"symmetric": True}, {"symmetric": False, "group_size": 64}, [], "q8",
                                    {"symmetric": True, "extra": 1}])
                    t["params"] = v
                    desc.append(f"tensor {t['name']}.params := {short(v)}")
            elif f == "encoding":
                cur = t.get("encoding")
                v = rng.choice(["f32", "f16", "q8", "q4", "q3", "q4k", "q3s", "csr", "bitmask", "nm", "q2", "", "F32", None, 8])
                t["encoding"] = v
                desc.append(f"tensor {t['name']}.encoding {cur} := {short(v)}")
            elif f == "name":
                v = rng.choice(["", "blk.2.attn_norm.weight", "output.weight", "token_embd.weight", "x\ny",
                                "blk.0.attn_q.weight", "y" * 5000, None])
                desc.append(f"tensor {t['name']}.name := {short(v)}")
                t["name"] = v
            else:
                cur = t.get(f)
                if f in ("offset", "length", "raw_length", "nnz"):
                    v = rng.choice([0, 1, 63, 64, -64, 2**31, 2**32, 2**40, 2**53, 2**53 + 2, 2**63, -1, 1.5,
                                    (cur + 64) if isinstance(cur, int) else 64, (cur - 64) if isinstance(cur, int) else 64,
                                    (cur + 1) if isinstance(cur, int) else 1, len(b), e.h_off])
                    if f == "raw_length" and "raw_length" not in t and rng.random() < 0.5:
                        t["compression"] = "deflate"
                elif f == "crc32":
                    v = rng.choice([0, 2**32 - 1, 2**32, -1, (cur ^ 1) if isinstance(cur, int) else 0])
                else:
                    v = rng.choice(["none", "deflate", "gzip", "", None, "zlib"])
                t[f] = v
                desc.append(f"tensor {t['name']}.{f} {short(cur)} := {short(v)}")
        elif k < 0.8 and isinstance(h.get("blobs"), list):
            blobs = [x for x in h["blobs"] if isinstance(x, dict)]
            if blobs and rng.random() < 0.85:
                x = rng.choice(blobs)
                f = rng.choice(["offset", "length", "crc32", "compression", "raw_length", "name", "<delete>"])
                if f == "<delete>":
                    h["blobs"].remove(x)
                    desc.append(f"delete blob {x['name']}")
                else:
                    cur = x.get(f)
                    if f == "name":
                        v = rng.choice(["", "tokenizer", "tokenizer.json ", "TOKENIZER.JSON", None, "other.json"])
                    elif f == "compression":
                        v = rng.choice(["deflate", "gzip", None])
                    else:
                        v = rng.choice([0, 1, 64, -1, 2**32, 2**63, 2**53, (cur + 64) if isinstance(cur, int) else 0])
                    x[f] = v
                    desc.append(f"blob {x.get('name')!r}.{f} {short(cur)} := {short(v)}")
            else:
                h["blobs"].append({"name": "extra", "offset": 64, "length": 1, "crc32": 0, "compression": "none"})
                desc.append("add overlapping blob")
        elif k < 0.9:
            key = rng.choice(["format", "version", "provenance", "blobs", "tensors", "config", "extra"])
            cur = h.get(key)
            v = interesting(rng, cur) if cur is not None else any_value(rng)
            h[key] = v
            desc.append(f"header.{key} := {short(v)}")
        else:
            prov = h.get("provenance")
            if isinstance(prov, dict):
                key = rng.choice(["source_sha256", "source_format", "source_path", "toolchain", "recipe", "passes",
                                  "metrics", "extra"])
                v = any_value(rng)
                prov[key] = v
                desc.append(f"provenance.{key} := {short(v)}")
    hb = enc(dumps(h, sort_keys=True))
    if rng.random() < 0.05:
        hb = enc(dumps(Pairs(list(h.items()) + [("format", "edge")])))
        desc.append("duplicate top-level key 'format'")
    h_off = 64 + len(area)
    crc = zlib.crc32(hb)
    if rng.random() < 0.08:
        crc ^= 1
        desc.append("header CRC left wrong")
    pre = EDGE_MAGIC + struct.pack("<IIQQI", version, 0, h_off, len(hb), crc) + bytes(28)
    return pre + area + hb


# ---------------------------------------------------------------------------------------------
# config.json, tokenizer.json, recipe JSON

CONFIG_KEYS = {
    "llama": ["hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
              "max_position_embeddings", "num_hidden_layers", "vocab_size", "rms_norm_eps", "rope_theta",
              "bos_token_id", "eos_token_id", "bos_token_id", "eos_token_id", "tie_word_embeddings", "hidden_act",
              "model_type", "architectures", "rope_scaling", "attention_bias", "mlp_bias", "sliding_window"],
    "gpt2": ["n_embd", "n_head", "n_layer", "n_positions", "n_inner", "n_ctx", "vocab_size", "layer_norm_epsilon",
             "activation_function", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "bos_token_id",
             "eos_token_id", "bos_token_id", "eos_token_id", "tie_word_embeddings", "model_type", "architectures"],
}
CONFIG_INTS = [0, -1, 1, 2, 3, 2**31, 2**31 - 1, 2**32, 2**40, 2**63, 2**63 - 1, 2**53, 2**53 + 1, 2**24, 2**24 + 1,
               -2**31, 4097, 511, 512, 513, 10**20]


def mutate_config_doc(rng, doc, desc):
    """Mutated config.json bytes."""
    if rng.random() < 0.1:
        return mutate_json_raw(rng, doc, desc)
    c = json.loads(doc)
    arch = "gpt2" if c.get("model_type") == "gpt2" else "llama"
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        key = rng.choice(CONFIG_KEYS[arch])
        cur = c.get(key)
        r = rng.random()
        if r < 0.1 and key in c:
            del c[key]
            desc.append(f"delete {key}")
            continue
        if key in ("bos_token_id", "eos_token_id"):
            v = rng.choice([512, 513, 511, -1, 2**31, 2**32, 2**31 - 1, 2**40, -2**40, 2**63, [], [2**31], [0, 1],
                            [-1], ["0"], 0.5, "0", None, True, Raw("1e999")])
        elif key in ("architectures", "model_type", "hidden_act", "activation_function"):
            v = rng.choice(STRINGS + [["LlamaForCausalLM"], ["GPT2LMHeadModel"], ["MistralForCausalLM"], [], [""],
                                      ["X" * 4096], "llama", "gpt2", "mistral", "gelu", "relu", [1], None, 5,
                                      ["LlamaForCausalLM\n"], "silu\n"])
        elif key == "rope_scaling":
            v = rng.choice([{"type": "linear", "factor": 2.0}, {}, "linear", 0, False, None])
        elif isinstance(cur, bool) or key in ("attention_bias", "mlp_bias", "tie_word_embeddings",
                                               "scale_attn_weights", "scale_attn_by_inverse_layer_idx"):
            v = rng.choice([True, False, 0, 1, "true", None, []])
        elif isinstance(cur, float) or key in ("rms_norm_eps", "rope_theta", "layer_norm_epsilon"):
            v = rng.choice([0.0, -1e-5, 1.0, 2.0, 1e-300, 1e308, -0.0, Raw("NaN"), Raw("Infinity"), Raw("-Infinity"),
                            Raw("1e999"), Raw("-1e999"), 1e-45, "1e-5", None, 10**20])
        else:
            cur_i = cur if isinstance(cur, int) and not isinstance(cur, bool) else 64
            v = rng.choice(CONFIG_INTS + [cur_i + 1, cur_i - 1, cur_i * 2, cur_i // 2, float(cur_i), cur_i + 0.5,
                                          str(cur_i), [cur_i], None, Raw("NaN"), Raw(f"{cur_i}.0"), Raw("1e400")])
        c[key] = v
        desc.append(f"{key} {short(cur)} := {short(v)}")
    if rng.random() < 0.05:
        k = rng.choice(list(c))
        c = Pairs(list(c.items()) + [(k, 1)])
        desc.append(f"duplicate key {k}")
    return enc(dumps(c, indent=2)) + b"\n"


def mutate_tokenizer_doc(rng, doc, desc):
    """Mutated tokenizer.json bytes."""
    if rng.random() < 0.08:
        return mutate_json_raw(rng, doc, desc)
    t = json.loads(doc)
    model = t.get("model") if isinstance(t.get("model"), dict) else {}
    vocab = model.get("vocab") if isinstance(model.get("vocab"), dict) else {}
    merges = model.get("merges") if isinstance(model.get("merges"), list) else []
    n = len(vocab)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not isinstance(t, dict):  # an earlier round duplicated a key of the root (a Pairs): no more edits
            break
        k = rng.random()
        if k < 0.22 and vocab:
            tok = rng.choice(list(vocab))
            op = rng.randrange(6)
            if op == 0:
                v = rng.choice([n, n + 1, 2**31, 2**32, -1, 2**53, 2**63, 0, 1, 1.5, "3", None, vocab[rng.choice(list(vocab))]])
                vocab[tok] = v
                desc.append(f"vocab[{short(tok)}] := {short(v)}")
            elif op == 1:
                del vocab[tok]
                desc.append(f"delete vocab entry {short(tok)} (a gap in ids)")
            elif op == 2:
                new = rng.choice(["", "\x00", "a" * 70000, "\n", INVALID_UTF8, "\udcc3", "Ġ" * 1000, "\x1b", "\u0100"])
                vocab[new] = vocab.pop(tok)
                desc.append(f"vocab key {short(tok)} -> {short(new)}")
            elif op == 3:
                vocab[rng.choice(["new", "Ġnew", "zz"])] = rng.choice([n, n + 5, 2**31, n * 100])
                desc.append("add vocab entry beyond the range")
            elif op == 4:
                model["vocab"] = rng.choice([{}, [], None, list(vocab.items())[:10], "vocab"])
                desc.append(f"model.vocab := {short(model['vocab'])}")
            else:
                vals = list(vocab.values())
                rng.shuffle(vals)
                for kk, vv in zip(list(vocab), vals):
                    vocab[kk] = vv
                desc.append("vocab ids shuffled")
        elif k < 0.42:
            op = rng.randrange(7)
            if op == 0:
                m = rng.choice(["qqq zzz", "a", "a b c", "", " ", "a  b", "\n \n", "Ġ Ġ", INVALID_UTF8 + " a",
                                ["q", "z"], ["a"], ["a", "b", "c"], [1, 2], None, 5, "x" * 5000 + " y"])
                merges.insert(rng.randrange(len(merges) + 1), m)
                desc.append(f"insert merge {short(m)}")
            elif op == 1:
                model["merges"] = rng.choice([[], None, "merges", {}, merges * 2, merges[::-1]])
                desc.append(f"model.merges := {short(model['merges'])}")
            elif op == 2 and merges:
                j = rng.randrange(len(merges))
                merges[j] = merges[j].split(" ") if isinstance(merges[j], str) else " ".join(map(str, merges[j]))
                desc.append(f"merge {j} switched between string and pair form")
            elif op == 3 and merges:
                desc.append("delete merges entry")
                merges.pop(rng.randrange(len(merges)))
            elif op == 4:
                merges.extend(["a b"] * rng.choice([1, 10000]))
                desc.append("duplicate merges appended")
            elif op == 5 and merges:
                m = merges[rng.randrange(len(merges))]
                merges.insert(0, m)
                desc.append(f"merge {short(m)} duplicated at the front")
            else:
                merges.append(["Ġt", "he"] if rng.random() < 0.5 else "Ġt he")
                desc.append("merge whose result is not in the vocabulary")
        elif k < 0.6:
            at = t.get("added_tokens")
            if not isinstance(at, list):
                at = []
                t["added_tokens"] = at
            op = rng.randrange(6)
            entries = [x for x in at if isinstance(x, dict)]  # an earlier mutation may have left non-objects
            filled = [x for x in entries if x]                 # objects with a field to change
            if op == 0 and entries:
                x = rng.choice(entries)
                v = rng.choice([n, n + 1, 2**31, 2**32, -1, 2**53, 2**63, 1.5, "0", None])
                x["id"] = v
                desc.append(f"added_tokens id of {short(x.get('content'))} := {short(v)}")
            elif op == 1 and entries:
                at.append(dict(rng.choice(entries)))
                desc.append("duplicate added token")
            elif op == 2:
                c = rng.choice(["", "a" * 70000, "\x00", "\n", INVALID_UTF8, "<|endoftext|>", "Ġ", "<s>", "</s>", "the"])
                at.append({"id": rng.choice([n, n + 10, 0, 5, 2**31]), "content": c, "single_word": False, "lstrip": False,
                           "rstrip": False, "normalized": rng.choice([False, True]), "special": rng.choice([True, False])})
                desc.append(f"add added token {short(c)}")
            elif op == 3 and filled:
                x = rng.choice(filled)
                f = rng.choice(list(x))
                x[f] = interesting(rng, x[f])
                desc.append(f"added token field {f} := {short(x[f])}")
            elif op == 4:
                t["added_tokens"] = rng.choice([None, {}, "x", [1], [{}]])
                desc.append(f"added_tokens := {short(t['added_tokens'])}")
            elif at:
                del at[rng.randrange(len(at))]
                desc.append("delete added token")
        elif k < 0.72:
            v = rng.choice([None, {"type": "Unknown"}, {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False},
                            {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated", "invert": False},
                            {"type": "Split", "pattern": {"Regex": "(a*)*b"}, "behavior": "Isolated", "invert": False},
                            {"type": "Split", "pattern": {"String": ""}, "behavior": "Removed", "invert": False},
                            {"type": "Sequence", "pretokenizers": []}, {"type": "Sequence"},
                            {"type": "Sequence", "pretokenizers": [{"type": "Sequence", "pretokenizers": [{"type": "Digits"}]}]},
                            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
                            {"type": "Whitespace"}, {"type": "Digits", "individual_digits": "yes"},
                            {"type": "BertPreTokenizer"}, "ByteLevel", [], {"type": ""},
                            {"type": "Split", "pattern": {"Regex": "\\p{Zzz}"}, "behavior": "Isolated", "invert": False},
                            {"type": "Split", "pattern": {"Regex": "x" * 5000}, "behavior": "Weird", "invert": False}])
            desc.append(f"pre_tokenizer := {short(v)}")
            t["pre_tokenizer"] = v
        elif k < 0.8:
            v = rng.choice([{"type": "NFC"}, {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Unknown"},
                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
                            {"type": "Replace", "pattern": {"Regex": "(("}, "content": "x"},
                            {"type": "Replace", "pattern": {"String": ""}, "content": "x"},
                            {"type": "Prepend", "prepend": "x" * 70000}, {"type": "Sequence", "normalizers": [{}]},
                            {"type": "Strip", "strip_left": True, "strip_right": True}, [], "NFC"])
            desc.append(f"normalizer := {short(v)}")
            t["normalizer"] = v
        elif k < 0.88:
            f = rng.choice(["type", "unk_token", "byte_fallback", "continuing_subword_prefix", "end_of_word_suffix",
                            "fuse_unk", "dropout", "ignore_merges"])
            cur = model.get(f)
            if f == "type":
                v = rng.choice(["WordPiece", "Unigram", "WordLevel", "", "bpe", None, 1])
            elif f == "unk_token":
                v = rng.choice(["<unk>", "<|endoftext|>", "", "a" * 5000, 0, None])
            else:
                v = interesting(rng, cur) if cur is not None else rng.choice([True, "##", "</w>", 0.5, Raw("NaN")])
            model[f] = v
            desc.append(f"model.{f} {short(cur)} := {short(v)}")
        elif k < 0.94:
            f = rng.choice(["decoder", "post_processor"])
            v = rng.choice([None, {"type": "Unknown"}, {"type": "ByteFallback"},
                            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}],
                             "pair": [], "special_tokens": {"<nope>": {"id": "<nope>", "ids": [2**31], "tokens": ["<nope>"]}}},
                            {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}]},
                            "ByteLevel", [], {"type": "ByteLevel", "add_prefix_space": "yes"}])
            t[f] = v
            desc.append(f"{f} := {short(v)}")
        else:
            root_paths = [p for p in json_paths(t, limit=2000) if not (len(p) >= 2 and p[:2] in (("model", "vocab"), ("model", "merges")))]
            p = rng.choice(root_paths)
            t = mutate_json_at(rng, t, p, desc)
    return enc(dumps(t, indent=2 if rng.random() < 0.5 else None))


RECIPE_FIELD_VALUES = {
    "bits": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 32, -1, -8, 2**31, 2**32 + 8, 4.5, 8.0, "8", None, Raw("NaN")],
    "group_size": [0, -1, 1, 2, 3, 7, 8, 16, 24, 33, 63, 64, 65, 128, 4096, 2**24, 2**24 + 2, 2**31, 2**32, 2**62,
                   2**63 - 1, 64.5, "64", Raw("1e999")],
    "symmetric": [True, False, 0, 1, "true", None],
    "sparsity": [-0.1, -0.0, 0.0, 1e-9, 0.5, 0.99, 0.999999, 1.0, 1.5, 2, 1e308, Raw("NaN"), Raw("1e999"),
                 Raw("-1e999"), "0.5", None, 5e-324],
    "block_size": [0, -1, 1, 2, 3, 127, 128, 2**31, 2**62, 1.5],
    "damp": [0.0, -0.01, 1e-30, 1.0, 1e30, Raw("NaN"), Raw("1e999"), 100],
    "shrink": [0.0, -0.5, 1.0, 1.5, Raw("NaN"), 2],
    "kinds": [[], ["linear", "linear"], ["bogus"], ["norm"], ["bias"], ["embedding"], ["output"], "linear", [1],
              ["linear", "norm", "bias", "embedding", "output"], [""]],
    "include": [[], [""], ["["], ["**"], ["blk.*.attn_q.*"], ["x" * 5000], "blk.*", [None], ["blk.999.*"]],
    "exclude": [["*"], [""], ["["], "x", ["blk.*"]],
    "exclude_layers": [[], [-1], [0], [0, 1], [2**31], [2**63], [1.5], "0", [0, 0]],
    "method": ["gptq", "rtn", "round_to_nearest", "", "GPTQ", "awq", None, 1],
    "rounding": ["mse", "round", "minmax", "", "nearest", None],
    "weighting": ["magnitude", "activation_magnitude", "uniform", "", "bogus"],
    "act_order": [True, False, "yes", None],
    "tied_as_head": [True, False, 1],
    "pattern": ["2:4", "1:4", "0:4", "4:2", "4:4", "1:1", "2:256", "3:257", "1:2", "2:0", "a:b", "2:4:8", "", ":",
                "-1:4", "2147483648:4294967296", "2", 24],
    "scope": ["per_row", "per_tensor", "global", "layer", "", "owl", None],
    "dtype": ["f16", "f32", "bf16", "q8", "", None, 16],
    "format": ["auto", "dense", "csr", "bitmask", "nm", "q8", "", None],
    "mlp": [0.0, 0.25, 0.5, 0.99, 1.0, -0.1, 1.5, Raw("NaN")],
    "heads": [0.0, 0.25, 0.5, 0.99, 1.0, -0.1, 1.5, Raw("NaN")],
    "ranking": ["activation", "magnitude", "random", "", None],
    # Work sizes stay small (a recipe that asks for hours of distillation is not a hang).
    "steps": [0, 1, 2, -1, 1.5, "2"],
    "batch": [0, 1, -1, 2**31, 1.5],
    "length": [0, 1, 2, 16, 4096, -1],
    "lr": [0.0, -1.0, 1e30, Raw("NaN"), Raw("Infinity")],
    "eval_every": [0, 1, -1, 2**31],
    "temperature": [0.0, -1.0, 1e-30, Raw("NaN")],
    "alpha": [0.0, -1.0, 1.0, 2.0, Raw("NaN")],
    "owl_lambda": [0.0, -1.0, 1.0, 0.5, Raw("NaN")],
    "owl_threshold": [0.0, -1.0, 1.0, 1e9, Raw("NaN")],
    "true_sequential": [True, False, "yes"],
    "tokens": [0, 1, 15, 16, 17, 2**24, 2**24 + 1, -1, 2**31, 1.5],
    "ctx": [0, 1, 15, 16, 17, 2**16, 2**16 + 1, -1, 2**31, 1.5],
    "max_ppl_increase": [0.0, -1.0, 1000.0, 1000.5, Raw("NaN"), Raw("Infinity"), 1e308],
    "max_bytes": [0, 1, -1, 2**63 - 1, 2**63, 2**64, 1.5],
    "deflate": [True, False, 1, "true", None],
    "name": STRINGS,
    "description": STRINGS,
    "pass": ["quantize", "cast", "pack", "magnitude_prune", "wanda_prune", "sparsegpt_prune", "structured_prune",
             "distill", "bogus", "", "Quantize", "quantize\n", None, 1, "x" * 4096],
}
EXTRA_PASSES = [
    {"pass": "cast", "dtype": "f16"}, {"pass": "pack", "format": "auto"},
    {"pass": "magnitude_prune", "sparsity": 0.5},
    {"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": True},
    {"pass": "quantize", "bits": 3, "group_size": 64, "symmetric": False},
    {"pass": "quantize", "bits": 8, "symmetric": False, "kinds": ["embedding"]},
    {"pass": "structured_prune", "mlp": 0.5, "heads": 0.5},
    {"pass": "magnitude_prune", "pattern": "2:4"},
    {"pass": "bogus"}, {}, {"pass": "quantize"},
]


def mutate_recipe_doc(rng, doc, desc):
    """Mutated recipe bytes."""
    if rng.random() < 0.08:
        return mutate_json_raw(rng, doc, desc)
    rc = json.loads(doc)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        k = rng.random()
        passes = rc.get("passes") if isinstance(rc, dict) else None
        if k < 0.55 and isinstance(passes, list) and passes:
            p = rng.choice(passes)
            if not isinstance(p, dict):
                continue
            i = passes.index(p)
            if rng.random() < 0.75:
                field = rng.choice(list(p) + rng.sample(sorted(RECIPE_FIELD_VALUES), 2))
                cur = p.get(field)
                v = rng.choice(RECIPE_FIELD_VALUES[field]) if field in RECIPE_FIELD_VALUES else interesting(rng, cur)
                p[field] = v
                desc.append(f"passes[{i}].{field} {short(cur)} := {short(v)}")
            else:
                if not p:
                    continue        # an earlier mutation emptied this pass: nothing to delete
                field = rng.choice(list(p))
                if field == "pass" or (p.get("pass") == "distill" and field in ("steps", "length", "eval_every")):
                    continue        # (deleting distill's work sizes restores its 10-minute defaults)
                del p[field]
                desc.append(f"delete passes[{i}].{field}")
        elif k < 0.7 and isinstance(passes, list):
            op = rng.randrange(5)
            if op == 0:
                np_ = dict(rng.choice(EXTRA_PASSES))
                passes.insert(rng.randrange(len(passes) + 1), np_)
                desc.append(f"insert pass {short(np_)}")
            elif op == 1 and passes:
                chosen = rng.choice(passes)
                passes.append(dict(chosen) if isinstance(chosen, dict) else chosen)
                desc.append("repeat a pass")
            elif op == 2 and len(passes) > 1:
                rng.shuffle(passes)
                desc.append("shuffle passes")
            elif op == 3:
                rc["passes"] = rng.choice([[], None, {}, "quantize", [None], [[]], passes * 50])
                desc.append(f"passes := {short(rc['passes'])}")
            elif passes:
                passes.pop(rng.randrange(len(passes)))
                desc.append("delete a pass")
        elif k < 0.82 and isinstance(rc, dict):
            f = rng.choice(["calibration", "budget", "deflate", "name", "description", "unknown"])
            if f in ("calibration", "budget"):
                sub = rc.get(f) if isinstance(rc.get(f), dict) else {}
                sk = rng.choice(["tokens", "ctx", "true_sequential"] if f == "calibration" else ["max_ppl_increase", "max_bytes"])
                if rng.random() < 0.1:
                    sub = rng.choice([None, [], "x", {"extra": 1}])
                    desc.append(f"{f} := {short(sub)}")
                else:
                    sub[sk] = rng.choice(RECIPE_FIELD_VALUES[sk])
                    desc.append(f"{f}.{sk} := {short(sub[sk])}")
                rc[f] = sub
            elif f == "unknown":
                rc[rng.choice(["unknown", "", "Passes", "x" * 300])] = any_value(rng)
                desc.append("unknown top-level key")
            else:
                rc[f] = rng.choice(RECIPE_FIELD_VALUES[f]) if rng.random() < 0.8 else deep_nest(rng.choice([200, 10000]))
                desc.append(f"{f} := {short(rc[f])}")
        else:
            rc = mutate_json_at(rng, rc, choose_path(rng, rc), desc)
    # A distillation pass without steps trains for its default (minutes): not a hang worth finding.
    passes = rc.get("passes") if isinstance(rc, dict) else None
    for p in passes if isinstance(passes, list) else []:
        if isinstance(p, dict) and p.get("pass") == "distill" and p.get("steps") is None:
            p["steps"] = 2
    return enc(dumps(rc, indent=2 if rng.random() < 0.5 else None))


# ---------------------------------------------------------------------------------------------
# Text

def mutate_text_bytes(rng, base, desc):
    r = rng.randrange(16)
    b = bytearray(base)
    if r == 0:
        desc.append("empty text")
        return b""
    if r == 1:
        for _ in range(rng.choice([1, 5, 50])):
            i = rng.randrange(len(b))
            b[i:i] = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80"])
        desc.append("invalid UTF-8 sequences inserted")
    elif r == 2:
        for _ in range(rng.choice([1, 20])):
            i = rng.randrange(len(b))
            b[i:i] = b"\x00"
        desc.append("NUL bytes inserted")
    elif r == 3:
        n = rng.choice([70000, 300000])
        desc.append(f"one line of {n} letters")
        return b"a" * n
    elif r == 4:
        desc.append("one huge line (text without newlines x8)")
        return bytes(base).replace(b"\n", b" ") * 8
    elif r == 5:
        desc.append("only whitespace")
        return rng.choice([b" " * 5000, b"\n" * 5000, b"\t \r\n" * 2000, b"\xe3\x80\x80" * 2000])
    elif r == 6:
        desc.append("BOM prefix")
        return b"\xef\xbb\xbf" + bytes(b)
    elif r == 7:
        desc.append("CR line endings only")
        return bytes(b).replace(b"\n", b"\r")
    elif r == 8:
        desc.append("special-token text repeated")
        return rng.choice([b"<|endoftext|>", b"<|im_start|>", b"<|endoftext|><|im_end|>"]) * rng.choice([10, 3000])
    elif r == 9:
        desc.append("mixed scripts / emoji / combining marks")
        return ("Ünïcödé 日本語テキスト 🙂🙃 a\u0301\u0302\u0303 \u202e rtl \u200b zwsp ".encode() * 200)
    elif r == 10:
        desc.append("digits only")
        return b"0123456789" * rng.choice([100, 10000])
    elif r == 11:
        desc.append("control bytes")
        return bytes(rng.randrange(0, 32) for _ in range(3000))
    elif r == 12:
        desc.append("random bytes")
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([10, 3000])))
    elif r == 13:
        n = rng.choice([1, 2, 10, 63, 64, 65, 100])
        desc.append(f"first {n} bytes")
        return bytes(b[:n])
    elif r == 14:
        desc.append("truncated inside a multi-byte character")
        return bytes(b[:500]) + "é日🙂".encode()[:rng.choice([1, 3, 5, 7])]
    else:
        desc.append("repeated single character, no spaces")
        return rng.choice(["é", "Ġ", " ", "🙂", "a"]).encode() * rng.choice([1000, 20000])
    return bytes(b)


# ---------------------------------------------------------------------------------------------
# Cases: what to run

class Case:
    """A command (argv template), its output path, and follow-ups to run when it exits 0.

    Templates: '{bin}' is the binaries folder; paths are relative to the case folder (the cwd)."""

    def __init__(self, target, argv, out=None, followups=None, desc=None):
        self.target = target
        self.argv = argv
        self.out = out
        self.followups = followups or []
        self.desc = desc or []

    def to_json(self):
        return {"target": self.target, "argv": self.argv, "out": self.out, "followups": self.followups, "desc": self.desc}

    @staticmethod
    def from_json(d):
        return Case(d["target"], d["argv"], d.get("out"), d.get("followups"), d.get("desc"))


FAST_RECIPES = ["int8", "int8", "int8", "int8", "f16", "int4-g64", "int4-mixed", "f32"]
CALIBRATED = ["int3", "int4", "gptq-int4-g64", "int8-prune50", "int8-2of4", "int8-structured25",
              "wanda50-int8", "sparsegpt50-int8", "distill-prune50-int8"]


def convert_case(target, rng, seeds, case_dir, input_rel, recipe=None):
    """compress --recipe R INPUT out/out.edge, with generate and perplexity follow-ups."""
    recipe = recipe or rng.choice(FAST_RECIPES)
    shutil.copyfile(os.path.join(seeds, "recipes", recipe + ".json"), os.path.join(case_dir, "recipe.json"))
    shutil.copyfile(os.path.join(seeds, "text.txt"), os.path.join(case_dir, "text.txt"))
    return Case(target, ["{bin}/compress", "--recipe", "recipe.json", input_rel, "out/out.edge"], "out/out.edge",
                followups=[["{bin}/edge-run", "generate", "out/out.edge", "--prompt", "hi", "-n", "3"],
                           ["{bin}/edge-run", "perplexity", "out/out.edge", "--text", "text.txt", "--ctx", "{ctx}",
                            "--chunks", "2"]], desc=[f"recipe {recipe}"])


def checkpoint_case(target, rng, seeds, case_dir, input_rel):
    """Mostly a conversion; sometimes inspect or export of the checkpoint."""
    r = rng.random()
    if r < 0.1:
        return Case(target, ["{bin}/compress", "inspect", input_rel])
    if r < 0.2:
        return Case(target, ["{bin}/compress", "export", input_rel, "out/export"], "out/export")
    return convert_case(target, rng, seeds, case_dir, input_rel)


def copy_seed_folder(seeds, name, case_dir):
    dst = os.path.join(case_dir, name)
    shutil.copytree(os.path.join(seeds, name), dst)
    return dst


def make_safetensors(rng, seeds, case_dir, cache):
    name = rng.choice(["tiny-llama", "tiny-llama", "tiny-gpt2", "tiny-llama-f16"])
    folder = copy_seed_folder(seeds, name, case_dir)
    desc = [f"seed {name}"]
    data = mutate_safetensors_bytes(rng, cache.read(os.path.join(folder, "model.safetensors")), desc)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(data)
    c = checkpoint_case("safetensors", rng, seeds, case_dir, name)
    c.desc = desc + c.desc
    return c


def make_sharded(rng, seeds, case_dir, cache):
    name = "tiny-llama-untied-sharded"
    folder = copy_seed_folder(seeds, name, case_dir)
    desc = [f"seed {name}"]
    idx_path = os.path.join(folder, "model.safetensors.index.json")
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    r = rng.random()
    if r < 0.55:
        idx = json.loads(cache.read(idx_path))
        wm = idx["weight_map"]
        for _ in range(rng.choice([1, 1, 2])):
            k = rng.random()
            tname = rng.choice(list(wm))
            cur = wm[tname] if isinstance(wm[tname], str) else shards[0]
            if k < 0.45:
                v = rng.choice(["model-00003-of-00002.safetensors", "../tiny-llama/model.safetensors", "../x",
                                "/etc/passwd", "", ".", "..", "/", "model.safetensors.index.json", "config.json",
                                "tokenizer.json", shards[0] if cur == shards[1] else shards[1],
                                "./" + cur, cur + "\n", "x" * 5000, "/dev/zero", "/proc/self/mem",
                                "sub/../" + cur, None, 1, [cur], {}])
                wm[tname] = v
                desc.append(f"weight_map[{tname}] := {short(v)}")
            elif k < 0.6:
                del wm[tname]
                desc.append(f"weight_map: delete {tname}")
            elif k < 0.7:
                wm[rng.choice(["model.layers.9.mlp.up_proj.weight", "extra.weight", "", "model.norm.weight"])] = shards[0]
                desc.append("weight_map: add entry for a tensor not in the shards")
            elif k < 0.78:
                idx["weight_map"] = Pairs(list(wm.items()) + [(tname, shards[0])])
                desc.append(f"weight_map: duplicate key {tname}")
                break
            elif k < 0.88:
                v = rng.choice([None, [], "x", {}, 5, list(wm.items())])
                idx["weight_map"] = v
                desc.append(f"weight_map := {short(v)}")
                break
            else:
                v = rng.choice([{"total_size": -1}, {"total_size": 2**63}, {"total_size": "x"}, None, [], {"total_size": 1.5}])
                idx["metadata"] = v
                desc.append(f"metadata := {short(v)}")
        data = enc(dumps(idx, indent=2))
        if rng.random() < 0.1:
            data = mutate_json_raw(rng, data, desc)
        with open(idx_path, "wb") as f:
            f.write(data)
    elif r < 0.85:
        s = rng.choice(shards)
        p = os.path.join(folder, s)
        desc.append(f"shard {s}:")
        data = mutate_safetensors_bytes(rng, cache.read(p), desc)
        with open(p, "wb") as f:
            f.write(data)
    else:
        s = rng.choice(shards)
        p = os.path.join(folder, s)
        k = rng.randrange(5)
        os.remove(p)
        if k == 0:
            desc.append(f"shard {s} deleted")
        elif k == 1:
            os.mkdir(p)
            desc.append(f"shard {s} is a folder")
        elif k == 2:
            os.symlink(s, p)
            desc.append(f"shard {s} is a symlink to itself")
        elif k == 3:
            os.symlink("/dev/null", p)
            desc.append(f"shard {s} -> /dev/null")
        else:
            other = shards[1] if s == shards[0] else shards[0]
            shutil.copyfile(os.path.join(folder, other), p)
            desc.append(f"shard {s} replaced by a copy of {other}")
    c = checkpoint_case("sharded", rng, seeds, case_dir, name)
    c.desc = desc + c.desc
    return c


def make_gguf(rng, seeds, case_dir, cache):
    name = rng.choice(["tiny-llama.gguf", "tiny-llama.gguf", "tiny-gpt2.gguf"])
    desc = [f"seed {name}"]
    data = mutate_gguf_bytes(rng, cache.read(os.path.join(seeds, name)), desc)
    with open(os.path.join(case_dir, name), "wb") as f:
        f.write(data)
    c = checkpoint_case("gguf", rng, seeds, case_dir, name)
    c.desc = desc + c.desc
    return c


def folder_json_case(target, file, mutate, rng, seeds, case_dir, cache, recipes):
    """A copy of an HF seed folder with its JSON `file` mutated by `mutate`, converted with one of `recipes`."""
    name = rng.choice(["tiny-llama", "tiny-llama", "tiny-gpt2"])
    folder = copy_seed_folder(seeds, name, case_dir)
    desc = [f"seed {name}"]
    p = os.path.join(folder, file)
    data = mutate(rng, cache.read(p), desc)
    with open(p, "wb") as f:
        f.write(data)
    recipe = recipes[0] if len(recipes) == 1 else rng.choice(recipes)  # (one choice draws nothing: seeds reproduce)
    c = convert_case(target, rng, seeds, case_dir, name, recipe=recipe)
    c.desc = desc + c.desc
    return c


def make_config(rng, seeds, case_dir, cache):
    return folder_json_case("config", "config.json", mutate_config_doc, rng, seeds, case_dir, cache, ["int8", "int8", "int8", "f16"])


def make_tokenizer(rng, seeds, case_dir, cache):
    return folder_json_case("tokenizer", "tokenizer.json", mutate_tokenizer_doc, rng, seeds, case_dir, cache, ["int8"])


def make_recipe(rng, seeds, case_dir, cache):
    base = rng.choice(FAST_RECIPES * 3 + CALIBRATED)
    desc = [f"seed recipe {base}"]
    doc = cache.read(os.path.join(seeds, "recipes", base + ".json"))
    if base in CALIBRATED and rng.random() < 0.8:
        rc = json.loads(doc)
        rc["calibration"] = {"tokens": 1024, "ctx": 128}
        for p in rc["passes"]:
            if p.get("pass") == "distill":
                p.update({"steps": 2, "eval_every": 1, "length": 64})
        doc = json.dumps(rc).encode()
        desc.append("calibration shortened")
    data = mutate_recipe_doc(rng, doc, desc)
    with open(os.path.join(case_dir, "recipe.json"), "wb") as f:
        f.write(data)
    model = rng.choice(["tiny-llama", "tiny-llama", "tiny-gpt2"])
    copy_seed_folder(seeds, model, case_dir)
    shutil.copyfile(os.path.join(seeds, "text.txt"), os.path.join(case_dir, "text.txt"))
    return Case("recipe", ["{bin}/compress", "--recipe", "recipe.json", model, "out/out.edge"], "out/out.edge",
                followups=[["{bin}/edge-run", "generate", "out/out.edge", "--prompt", "hi", "-n", "3"],
                           ["{bin}/edge-run", "perplexity", "out/out.edge", "--text", "text.txt", "--ctx", "{ctx}",
                            "--chunks", "2"]], desc=desc + [f"model {model}"])


EDGE_SEEDS = ["llama-int8", "llama-int4-g64", "llama-int8-prune50", "llama-int3", "llama-f16", "gpt2-int8",
              "llama-int8-deflate", "llama-int8-2of4"]


def edge_command(rng, target, seeds, case_dir, name):
    shutil.copyfile(os.path.join(seeds, "text.txt"), os.path.join(case_dir, "text.txt"))
    r = rng.random()
    kernels = ["--kernels", "ref"] if rng.random() < 0.15 else []
    # Sparse int8 matrices as dense copies made at load (the default on the reference kernels) or kept.
    kernels += rng.choice([[], [], [], ["--sparse", "dense"], ["--sparse", "keep"]])
    if r < 0.27:
        return Case(target, ["{bin}/edge-run", "perplexity", name, "--text", "text.txt", "--ctx",
                             rng.choice(["32", "32", "16", "64", "128"]), "--chunks", "2"] + kernels)
    if r < 0.52:
        return Case(target, ["{bin}/edge-run", "generate", name, "--prompt", "hi", "-n", "3"] + kernels)
    if r < 0.65:
        return Case(target, ["{bin}/compress", "inspect", name])
    if r < 0.78:
        return Case(target, ["{bin}/compress", "export", name, "out/export"], "out/export")
    if r < 0.88:
        return Case(target, ["{bin}/edge-run", "info", name])
    c = convert_case(target, rng, seeds, case_dir, name, recipe=rng.choice(["int8", "f16", "int4-g64"]))
    return c


def make_edge(rng, seeds, case_dir, cache):
    seed = rng.choice(EDGE_SEEDS)
    desc = [f"seed {seed}.edge"]
    data = mutate_edge_bytes(rng, cache.read(os.path.join(seeds, seed + ".edge")), desc, mutate_tokenizer_doc)
    with open(os.path.join(case_dir, "model.edge"), "wb") as f:
        f.write(data)
    c = edge_command(rng, "edge", seeds, case_dir, "model.edge")
    c.desc = desc + c.desc
    return c


def make_text(rng, seeds, case_dir, cache):
    desc = []
    text = mutate_text_bytes(rng, cache.read(os.path.join(seeds, "text.txt")), desc)
    with open(os.path.join(case_dir, "input.txt"), "wb") as f:
        f.write(text)
    seed = rng.choice(["llama-int8", "llama-int8", "gpt2-int8", "llama-int3", "llama-int8-prune50"])
    shutil.copyfile(os.path.join(seeds, seed + ".edge"), os.path.join(case_dir, "model.edge"))
    desc.append(f"model {seed}.edge")
    r = rng.random()
    if r < 0.5:
        ctx = rng.choice(["2", "4", "16", "32", "32", "32", "64", "64", "128", "129"])
        return Case("text", ["{bin}/edge-run", "perplexity", "model.edge", "--text", "input.txt", "--ctx", ctx,
                             "--chunks", "2"], desc=desc + [f"perplexity --ctx {ctx}"])
    if r < 0.85:
        prompt = text.replace(b"\x00", b"")[: rng.choice([20, 50, 50, 100, 300, 1000, 100000])]
        return Case("text", ["{bin}/edge-run", "generate", "model.edge", "--prompt",
                             prompt.decode("utf-8", "surrogateescape"), "-n", "3"], desc=desc + ["generate --prompt"])
    shutil.copyfile(os.path.join(seeds, "recipes", "wanda50-int8.json"), os.path.join(case_dir, "recipe.json"))
    copy_seed_folder(seeds, "tiny-llama", case_dir)
    return Case("text", ["{bin}/compress", "--recipe", "recipe.json", "--data", "input.txt", "tiny-llama",
                         "out/out.edge"], "out/out.edge", desc=desc + ["compress --data (wanda50-int8)"])


MAKERS = {"safetensors": make_safetensors, "sharded": make_sharded, "gguf": make_gguf, "config": make_config,
          "tokenizer": make_tokenizer, "recipe": make_recipe, "edge": make_edge, "text": make_text}


class FileCache:
    def __init__(self):
        self.d = {}

    def read(self, path):
        if path not in self.d:
            with open(path, "rb") as f:
                self.d[path] = f.read()
        return self.d[path]


# ---------------------------------------------------------------------------------------------
# Running and classifying

class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def _child_limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


CHILD_ENV = dict(os.environ, SWIFT_BACKTRACE="enable=no")
_SELF_LIMITED = False


def _limit_self():
    """Puts the children's limits on this process, once: children inherit them, so Popen needs no
    preexec_fn and can vfork (forking a worker whose heap has grown copied its page tables at every
    run: the long run slowed from 66 to 12 runs/s)."""
    global _SELF_LIMITED
    if not _SELF_LIMITED:
        _child_limits()
        _SELF_LIMITED = True


def run_cmd(argv, cwd, timeout, env=None):
    """Runs argv; returns rc (negative: signal), stderr bytes, maxrss KiB, timed_out, seconds."""
    _limit_self()
    errf = tempfile.TemporaryFile(dir=cwd)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                         env=env or CHILD_ENV, start_new_session=True)
    timed_out = False
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except Timeout:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, ru = os.wait4(p.pid, 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    p.returncode = os.waitstatus_to_exitcode(status)
    try:
        os.killpg(p.pid, signal.SIGKILL)        # stray children, if any
    except (ProcessLookupError, PermissionError):
        pass
    errf.seek(0)
    err = errf.read(65536)
    errf.close()
    return p.returncode, err, ru.ru_maxrss, timed_out, time.monotonic() - t0


NL = b"\n"


def message_problem(err):
    """Why stderr is not one clean line of at most MAX_MESSAGE bytes (None when it is)."""
    body = err[:-1] if err.endswith(b"\n") else err
    if not body.strip():
        return "empty"
    if NL in body:
        return f"{body.count(NL) + 1} lines"
    if len(body) > MAX_MESSAGE:
        return f"{len(body)} bytes"
    if any(c < 0x20 or c == 0x7f for c in body):
        return "control bytes"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return None


def leftovers(cwd):
    out = os.path.join(cwd, "out")
    try:
        names = sorted(os.listdir(out))
    except FileNotFoundError:
        return []
    return names


def classify(rc, err, maxrss, timed_out, left):
    if timed_out:
        return "hang", "no exit after the timeout"
    if maxrss > RSS_LIMIT_KB:
        return "memory", f"peak RSS {maxrss // 1024} MiB"
    if ALLOC_PATTERNS.search(err.decode("utf-8", "replace")) and rc != 0:
        return "memory", "allocation failure"
    text = err.decode("utf-8", "replace")
    if rc < 0 or rc in CRASH_CODES or "Fatal error" in text or "Program crashed" in text:
        sig = f"signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 and -rc in signal.Signals._value2member_map_ else f"exit {rc}"
        return "crash", sig
    if rc == 0:
        return "accepted", ""
    if left:
        return "partial-output", f"exit {rc}, left {left[:4]}"
    prob = message_problem(err)
    if prob:
        return "bad-message", f"exit {rc}, stderr {prob}"
    return "refused", f"exit {rc}"


def edge_max_positions(path):
    try:
        with open(path, "rb") as f:
            b = f.read()
        return int(Edge(b).header["config"]["max_positions"])
    except Exception:
        return None


def execute(case, cwd, bindir, timeout):
    """Runs a case in cwd (holding its inputs and an empty out/); returns a result dict."""
    def argv_of(tpl):
        return [a.replace("{bin}", bindir) for a in tpl]

    prefixes = sorted({os.path.abspath(cwd).encode() + b"/", os.path.realpath(cwd).encode() + b"/"}, key=len, reverse=True)

    def rel(e):
        # Paths in messages are shown relative to the case folder, so that a message's length
        # does not depend on where the harness runs.
        for p in prefixes:
            e = e.replace(p, b"")
        return e

    rc, err, rss, to, secs = run_cmd(argv_of(case.argv), cwd, timeout)
    err = rel(err)
    left = leftovers(cwd) if rc != 0 or to else []
    cls, why = classify(rc, err, rss, to, left)
    res = {"class": cls, "why": why, "stage": "main", "rc": rc, "stderr": err, "argv": case.argv, "runs": 1,
           "seconds": secs}
    if cls == "accepted" and case.followups:
        mp = edge_max_positions(os.path.join(cwd, case.out)) if case.out else None
        ctx = str(max(4, min(32, mp))) if mp else "32"
        res["ctx"] = ctx
        for f in case.followups:
            tpl = [a.replace("{ctx}", ctx) for a in f]
            frc, ferr, frss, fto, fsecs = run_cmd(argv_of(tpl), cwd, timeout)
            ferr = rel(ferr)
            res["runs"] += 1
            res["seconds"] += fsecs
            fcls, fwhy = classify(frc, ferr, frss, fto, [])
            if fcls != "accepted":
                stage_cls = fcls if fcls in ("crash", "hang", "memory") else "accepted-then-refused"
                res.update({"class": stage_cls, "why": f"{tpl[1]}: {fcls} ({fwhy})", "stage": "followup",
                            "rc": frc, "stderr": ferr, "argv": tpl, "followup_class": fcls})
                break
    return res


SITE_RE = re.compile(r"^\s*\d+ [^\n]*?0x[0-9a-f]+ ([^\n]+?)(?: \+ \d+)? in \S+ at /\S*?(Sources/[^:\s]+:\d+)", re.M)


def backtrace(argv_tpl, cwd, bindir, timeout):
    """stderr of argv re-run with Swift's backtracer on, and the first frame in Sources/ ("file:line")."""
    env = dict(os.environ)
    env["SWIFT_BACKTRACE"] = "enable=yes,interactive=no,color=no,sanitize=no"
    rc, err, _, _, _ = run_cmd([a.replace("{bin}", bindir) for a in argv_tpl], cwd, max(timeout, 60), env=env)
    text = err.decode("utf-8", "replace")
    m = SITE_RE.search(text)
    site = f"{m.group(2)} in {m.group(1)}" if m else None
    if site:
        fm = re.search(r"Fatal error: (.*)", text)
        if fm:
            site += " (" + fm.group(1).strip()[:120] + ")"
    return err, site


# ---------------------------------------------------------------------------------------------
# Worker

G = {}


def worker_init(cfg, lock):
    G.update(cfg)
    G["lock"] = lock
    G["cache"] = FileCache()
    G["wdir"] = tempfile.mkdtemp(prefix=f"w{os.getpid()}-", dir=cfg["work"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)


KEEP_PER_FINDING = 2


def save_case(case, res, iteration, cwd):
    """Copies the case into --keep-crashes DIR/<class>/<target>-<iteration>/: at most
    KEEP_PER_CLASS_TARGET per class and target, and at most KEEP_PER_FINDING per distinct finding
    (crash site or message template), so that the saved cases cover the distinct defects."""
    keep = G.get("keep")
    if not keep or res["class"] in ("refused", "accepted"):
        return None
    group = os.path.join(keep, res["class"])
    key = finding_key({"class": res["class"], "stderr": res["stderr"].decode("utf-8", "replace"), "argv": res["argv"],
                       "why": res["why"], "site": res.get("site")})
    with G["lock"]:
        os.makedirs(group, exist_ok=True)
        mine = [d for d in os.listdir(group) if d.startswith(case.target + "-")]
        if len(mine) >= KEEP_PER_CLASS_TARGET:
            return None
        same = 0
        for d in mine:
            try:
                with open(os.path.join(group, d, "case.json")) as f:
                    same += json.load(f).get("key") == key
            except (OSError, ValueError):
                pass
        if same >= KEEP_PER_FINDING:
            return None
        dst = os.path.join(group, f"{case.target}-{iteration}")
        if os.path.exists(dst):
            shutil.rmtree(dst)
        shutil.copytree(cwd, dst, symlinks=True, ignore=shutil.ignore_patterns("out", "tmp*"))
        write_case_files(dst, case, res, iteration, key)
    return dst


def escape_controls(text):
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def write_case_files(dst, case, res, iteration, key):
    bindir = G["bin"]
    q = lambda a: shlex.quote(a.replace("{bin}", bindir))
    lines = [f"# target {case.target}, iteration {iteration}, seed {G['seed']}, class {res['class']} "
             f"({res['stage']}: {res['why']})", "# mutation: " + escape_controls("; ".join(case.desc)),
             f"cd {shlex.quote(dst)} && rm -rf out && mkdir out && " + " ".join(q(a) for a in case.argv)]
    if case.followups:
        lines.append("# follow-ups, run when the command above exits 0 (--ctx: min(32, max_positions), at least 4):")
        lines += [" ".join(q(a.replace("{ctx}", res.get("ctx", "32"))) for a in f) for f in case.followups]
    with open(os.path.join(dst, "cmd.txt"), "w", errors="surrogateescape") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(dst, "stderr.txt"), "wb") as f:
        f.write(res["stderr"])
    meta = case.to_json()
    meta.update({"iteration": iteration, "seed": G["seed"], "class": res["class"], "why": res["why"],
                 "stage": res["stage"], "key": key})
    with open(os.path.join(dst, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)


def do_iteration(i):
    seed, targets = G["seed"], G["targets"]
    target = targets[i % len(targets)]
    rng = random.Random(f"{seed}:{i}")
    cwd = os.path.join(G["wdir"], f"it{i}")
    os.makedirs(os.path.join(cwd, "out"))
    try:
        t0 = time.monotonic()
        try:
            case = MAKERS[target](rng, G["seeds"], cwd, G["cache"])
        except Exception:
            import traceback
            tb = traceback.format_exc()
            return {"iteration": i, "target": target, "class": "harness-error", "why": tb.strip().splitlines()[-1],
                    "stage": "mutate", "argv": [], "desc": [], "stderr": tb, "runs": 0, "seconds": 0.0,
                    "mutate_seconds": 0.0, "kept": None, "followup_class": None, "site": None}
        t_mut = time.monotonic() - t0
        res = execute(case, cwd, G["bin"], G["timeout"])
        site = bt = None
        if res["class"] == "crash" and G.setdefault("backtraces", 0) < MAX_BACKTRACES:
            # Re-run with Swift's backtracer on for the crash site (file:line), used to group crashes.
            G["backtraces"] += 1
            bt, site = backtrace(res["argv"], cwd, G["bin"], G["timeout"])
            res["site"] = site
        kept = save_case(case, res, i, cwd)
        if kept and bt is not None:
            with open(os.path.join(kept, "backtrace.txt"), "wb") as f:
                f.write(bt)
        err = res["stderr"].decode("utf-8", "replace")
        return {"iteration": i, "target": target, "class": res["class"], "why": res["why"], "stage": res["stage"],
                "argv": res["argv"], "desc": case.desc, "stderr": err[:2000], "runs": res["runs"],
                "seconds": res["seconds"], "mutate_seconds": t_mut, "kept": kept,
                "followup_class": res.get("followup_class"), "site": site}
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Setup

def setup_seeds(work, bindir):
    seeds = os.path.join(work, "seeds")
    os.makedirs(os.path.join(seeds, "recipes"))
    fx = os.path.join(REPO, "Fixtures")
    for name in ["tiny-llama", "tiny-gpt2", "tiny-llama-f16", "tiny-llama-untied-sharded"]:
        shutil.copytree(os.path.join(fx, name), os.path.join(seeds, name))
    for name in ["tiny-llama.gguf", "tiny-gpt2.gguf"]:
        shutil.copyfile(os.path.join(fx, name), os.path.join(seeds, name))
    for name in os.listdir(os.path.join(REPO, "Recipes")):
        if name.endswith(".json"):
            shutil.copyfile(os.path.join(REPO, "Recipes", name), os.path.join(seeds, "recipes", name))
    with open(os.path.join(fx, "text", "us-declaration.txt"), "rb") as f:
        text = f.read()[:3000]
    with open(os.path.join(seeds, "text.txt"), "wb") as f:
        f.write(text[: text.rfind(b"\n") + 1])
    makes = [("llama-int8", "int8", "tiny-llama", []), ("llama-int4-g64", "int4-g64", "tiny-llama", []),
             ("llama-int8-prune50", "int8-prune50", "tiny-llama", []), ("llama-int3", "int3", "tiny-llama", []),
             ("llama-f16", "f16", "tiny-llama", []), ("gpt2-int8", "int8", "tiny-gpt2", []),
             ("llama-int8-deflate", "int8", "tiny-llama", ["--deflate"]),
             ("llama-int8-2of4", "int8-2of4", "tiny-llama", [])]
    for out, recipe, model, extra in makes:
        argv = [os.path.join(bindir, "compress"), "--recipe", os.path.join(seeds, "recipes", recipe + ".json")] + extra + \
               [os.path.join(seeds, model), os.path.join(seeds, out + ".edge")]
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            sys.exit(f"fuzz: cannot make seed {out}.edge: {p.stderr.decode(errors='replace').strip()}")
    return seeds


# ---------------------------------------------------------------------------------------------
# Reporting

def normalize_message(msg):
    """The first line of a message, without "Error: " and the leading file name, numbers as #."""
    m = msg.strip().splitlines()[0] if msg.strip() else "<empty>"
    m = re.sub(r"^Error: ", "", m)
    m = re.sub(r"^[\w./-]+\.(safetensors|json|gguf|edge|txt): ", "", m)
    m = re.sub(r"0x[0-9a-fA-F]+", "0x#", m)
    m = re.sub(r"\d+", "#", m)
    return m[:100]


def summarize(results, targets):
    table = {t: Counter() for t in targets}
    for r in results:
        table[r["target"]][r["class"]] += 1
    return table


def print_table(table, targets, out=sys.stdout):
    cols = CLASSES + (["harness-error"] if any(table[t]["harness-error"] for t in targets) else [])
    w = max(len(t) for t in targets + ["total"])
    head = f"{'target':<{w}} " + " ".join(f"{c:>{max(len(c), 6)}}" for c in cols) + "   total"
    print(head, file=out)
    tot = Counter()
    for t in targets:
        row = table[t]
        tot.update(row)
        print(f"{t:<{w}} " + " ".join(f"{row[c]:>{max(len(c), 6)}}" for c in cols) + f" {sum(row.values()):>7}", file=out)
    print(f"{'total':<{w}} " + " ".join(f"{tot[c]:>{max(len(c), 6)}}" for c in cols) + f" {sum(tot.values()):>7}", file=out)


def collapse_quotes(m):
    """Quoted values replaced by '…', so that one message template is one finding."""
    m = re.sub(r"'[^']*('|$)", "'…'", m)
    return re.sub(r'"[^"]*("|$)', '"…"', m)


def finding_key(r):
    if r["class"] == "crash":
        return r.get("site") or ("crash in " + " ".join(r["argv"][:2]).replace("{bin}/", "") + ": "
                                  + normalize_message(r["stderr"]))
    if r["class"] == "hang":
        return "hang in " + " ".join(r["argv"][:2]).replace("{bin}/", "")
    key = collapse_quotes(normalize_message(r["stderr"]))
    if r["class"] == "bad-message":
        key = re.sub(r"\d+", "#", r["why"]) + " | " + key
    if r["class"] == "accepted-then-refused":
        key = r["argv"][1] + ": " + key
    if r["class"] == "partial-output":
        key = " ".join(r["argv"][:2]).replace("{bin}/", "") + ": " + re.sub(r"value \S+ at", "value … at", key)
    return key


def group_findings(results):
    g = defaultdict(list)
    for r in results:
        if r["class"] in BAD_CLASSES or r["class"] == "accepted-then-refused":
            g[(r["class"], r["target"], finding_key(r))].append(r)
    order = {c: i for i, c in enumerate(CLASSES)}
    return sorted(g.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], -len(kv[1])))


def refusal_tops(results, targets, n=10):
    tops = {}
    for t in targets:
        c = Counter(normalize_message(r["stderr"]) for r in results if r["target"] == t and r["class"] == "refused")
        tops[t] = c.most_common(n)
    return tops


# ---------------------------------------------------------------------------------------------
# Replay

def replay(args):
    bindir = os.path.abspath(args.bin)
    cases = []
    for root, dirs, files in os.walk(args.replay):
        if "case.json" in files:
            cases.append(root)
            dirs[:] = []
    cases.sort()
    bad = 0
    counts = Counter()
    tmp = tempfile.mkdtemp(prefix="fuzz-replay-")
    try:
        for d in cases:
            with open(os.path.join(d, "case.json")) as f:
                meta = json.load(f)
            case = Case.from_json(meta)
            cwd = os.path.join(tmp, "c")
            shutil.copytree(d, cwd, symlinks=True, ignore=shutil.ignore_patterns("out", "cmd.txt", "stderr.txt", "case.json", "backtrace.txt"))
            os.makedirs(os.path.join(cwd, "out"), exist_ok=True)
            # A case whose input file is missing would be refused for that alone and test nothing.
            missing = [a for a in case.argv if "{" not in a and not a.startswith("-") and not a.startswith("out")
                       and "." in os.path.basename(a) and not os.path.exists(os.path.join(cwd, a))]
            if missing:
                shutil.rmtree(cwd)
                bad += 1
                counts["harness-error"] += 1
                print(f"{meta['class']:>22} -> {'missing input':<22} {d}  {', '.join(missing)} is not in the case folder")
                continue
            res = execute(case, cwd, bindir, args.timeout)
            shutil.rmtree(cwd)
            counts[res["class"]] += 1
            if res["class"] in BAD_CLASSES:
                bad += 1
            line = res["stderr"].decode("utf-8", "replace").strip().splitlines()
            print(f"{meta['class']:>22} -> {res['class']:<22} {d}  {line[0][:100] if line else ''}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"replayed {len(cases)} cases: " + ", ".join(f"{c} {counts[c]}" for c in CLASSES + ["harness-error"] if counts[c]))
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------
# Main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, ".build", "release"), help="folder holding compress and edge-run")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset of " + ",".join(TARGETS))
    ap.add_argument("--work", help="work folder (default: a new temporary folder, removed afterwards)")
    ap.add_argument("--report", help="write a JSON report here")
    ap.add_argument("--keep-crashes", metavar="DIR", help="save every case not refused/accepted here")
    ap.add_argument("--replay", metavar="DIR", help="re-run the cases saved under DIR and print their class now")
    ap.add_argument("--only-iteration", type=int, help="run only this iteration and print its details")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a run counts as a hang (default 30)")
    args = ap.parse_args()

    bindir = os.path.abspath(args.bin)
    for exe in ("compress", "edge-run"):
        if not os.access(os.path.join(bindir, exe), os.X_OK):
            sys.exit(f"fuzz: {bindir}/{exe} is missing or not executable")
    if args.replay:
        return replay(args)
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in MAKERS:
            sys.exit(f"fuzz: unknown target '{t}'; known: {', '.join(TARGETS)}")

    own_work = not args.work
    work = tempfile.mkdtemp(prefix="fz") if own_work else os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    seeds_dir = os.path.join(work, "seeds")
    if os.path.exists(seeds_dir):
        shutil.rmtree(seeds_dir)
    t0 = time.monotonic()
    seeds = setup_seeds(work, bindir)
    print(f"fuzz: seeds ready in {time.monotonic() - t0:.1f}s ({work})", file=sys.stderr)
    keep = os.path.abspath(args.keep_crashes) if args.keep_crashes else None
    cfg = {"bin": bindir, "seed": args.seed, "targets": targets, "seeds": seeds, "work": work, "keep": keep,
           "timeout": args.timeout}
    lock = multiprocessing.Lock()

    if args.only_iteration is not None:
        worker_init(cfg, lock)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        r = do_iteration(args.only_iteration)
        print(json.dumps({k: v for k, v in r.items() if k != "stderr"}, indent=1))
        print("stderr:\n" + r["stderr"])
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
        return 1 if r["class"] in BAD_CLASSES else 0

    results = []
    t_start = time.monotonic()
    last = t_start
    runs = 0
    counts = Counter()
    ctx = multiprocessing.get_context("fork")
    interrupted = False
    # Workers are replaced every 1000 iterations: their heaps grow over a long run.
    with ctx.Pool(args.jobs, initializer=worker_init, initargs=(cfg, lock), maxtasksperchild=250) as pool:
        try:
            for r in pool.imap_unordered(do_iteration, range(args.iterations), chunksize=4):
                results.append(r)
                runs += r["runs"]
                counts[r["class"]] += 1
                now = time.monotonic()
                if now - last >= 5 or len(results) == args.iterations:
                    last = now
                    el = now - t_start
                    print(f"fuzz: {len(results)}/{args.iterations} iterations, {runs} runs, {el:.0f}s, "
                          f"{runs / el:.1f} runs/s | " + ", ".join(f"{c} {counts[c]}" for c in CLASSES if counts[c]),
                          file=sys.stderr)
        except KeyboardInterrupt:
            interrupted = True
            pool.terminate()
    elapsed = time.monotonic() - t_start
    results.sort(key=lambda r: r["iteration"])
    table = summarize(results, targets)
    print(f"fuzz: {len(results)} iterations, {runs} runs in {elapsed:.1f}s ({1000 * elapsed / max(1, len(results)):.1f}s "
          f"per 1000 iterations), seed {args.seed}, binaries {bindir}")
    print_table(table, targets)
    groups = group_findings(results)
    if groups:
        print("\ndistinct non-clean results (class, target, crash site or message; count; first iteration):")
        for (cls, target, key), rs in groups:
            print(f"  {cls:<22} {target:<11} {len(rs):>5}  #{rs[0]['iteration']:<6} {key[:150]}")
    if args.report:
        rep = {"binaries": bindir, "seed": args.seed, "iterations": len(results), "targets": targets,
               "seconds": round(elapsed, 1), "runs": runs, "interrupted": interrupted,
               "summary": {t: dict(table[t]) for t in targets},
               "refusals": {t: [[m, c] for m, c in v] for t, v in refusal_tops(results, targets).items()},
               "findings": [{"class": c, "target": t, "key": k, "count": len(rs), "iterations": [r["iteration"] for r in rs][:50],
                             "kept": [r["kept"] for r in rs if r.get("kept")][:5]} for (c, t, k), rs in group_findings(results)],
               # Every non-clean result in full; refused and accepted ones briefly, and only in runs of
               # at most 10 000 iterations (the report stays a few MB).
               "results": [r if r["class"] not in ("refused", "accepted") else
                           {"iteration": r["iteration"], "target": r["target"], "class": r["class"],
                            "argv": r["argv"][:2], "desc": r["desc"], "stderr": r["stderr"][:200]}
                           for r in results if r["class"] not in ("refused", "accepted") or args.iterations <= 10000]}
        with open(args.report, "w") as f:
            json.dump(rep, f, indent=1, default=str)
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    else:
        shutil.rmtree(seeds_dir, ignore_errors=True)
        for d in os.listdir(work):
            if re.fullmatch(r"w\d+-\w+", d):
                shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    errors = [r for r in results if r["class"] == "harness-error"]
    if errors:
        print(f"\nfuzz: {len(errors)} iterations failed inside the harness (first: #{errors[0]['iteration']}):\n"
              + errors[0]["stderr"], file=sys.stderr)
    return 1 if any(r["class"] in BAD_CLASSES or r["class"] == "harness-error" for r in results) or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
