#!/usr/bin/env python3
"""Independent reader for the .edge container (format v1 to v4), written from docs/edge-format.md alone.

It needs only the Python standard library and numpy, shares no code with the Swift reader, and
exists to show that the spec is enough to read a file: a Swift test writes a file, runs this
script on it, and compares the dequantized values.

Usage:
    edge_read.py FILE            print the config and a table of tensors
    edge_read.py --json FILE     print {"config", "provenance", "tensors": {name: {"shape",
                                 "encoding", "values"}}, "blobs": {name: text}} as JSON
                                 (non-finite values become null; non-UTF-8 blobs {"hex": ...})

Exit status 0 on success, 1 with one line on stderr when the file breaks a rule of the spec.
It applies the structural rules (preamble, header checksum, strict JSON, keys, shapes, params,
lengths, placement, CRC-32s, deflate); the model-config ranges it leaves to the model consumer.
"""

import json
import struct
import sys
import zlib

import numpy as np

MAGIC = b"EDGE\r\n\x1a\n"
PREAMBLE = 64
ALIGN = 64
VERSION = 4                 # the newest version this reader understands
ENCODING_VERSION = {"q3": 2, "q4k": 3, "q3s": 4}  # the version that introduced an encoding; the others are in v1
MAX_HEADER = 64 << 20
MAX_RANK, MAX_DIM, MAX_ELEMENTS, MAX_GROUP = 8, 1 << 40, 1 << 48, 1 << 24
ENCODINGS = {"f32", "f16", "q8", "q4", "q3", "q4k", "q3s", "nm", "csr", "bitmask"}
RESERVED = set()  # encodings the spec defines and this reader does not decode
MAX_NM_M = 256
TOP_KEYS = {"format", "version", "config", "tensors", "blobs", "provenance"}
TENSOR_KEYS = {"name", "shape", "encoding", "params", "offset", "length", "crc32", "compression", "raw_length", "nnz"}
BLOB_KEYS = {"name", "offset", "length", "crc32", "compression", "raw_length"}
PROVENANCE_KEYS = {"source_sha256", "source_format", "source_path", "recipe", "toolchain", "passes", "metrics"}


class EdgeError(Exception):
    """A rule of the spec is broken; the message is one line."""


def align64(n):
    return (n + 63) & ~63


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise EdgeError(f"header: duplicate key {k!r}")
        out[k] = v
    return out


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def payload_length(t):
    """Bytes the payload of tensor entry t must have (docs: "Encodings")."""
    name, shape, enc, params = t["name"], t["shape"], t["encoding"], t.get("params") or {}
    if enc in RESERVED:
        raise EdgeError(f"tensor {name!r}: encoding {enc!r} is reserved and not supported")
    if enc not in ENCODINGS:
        raise EdgeError(f"tensor {name!r}: unknown encoding {enc!r}")
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_RANK or not all(_is_int(d) and 1 <= d <= MAX_DIM for d in shape):
        raise EdgeError(f"tensor {name!r}: bad shape {shape}")
    count = int(np.prod(shape, dtype=object))
    if count > MAX_ELEMENTS:
        raise EdgeError(f"tensor {name!r}: shape {shape} has too many elements")
    known = {"nm": {"symmetric", "value_encoding", "n", "m"}, "q4k": {"group_size", "sub_bits"},
             "q3s": {"group_size", "sub_bits"}, "csr": {"symmetric", "value_encoding", "index_width"},
             "bitmask": {"symmetric", "value_encoding"}}.get(enc, {"symmetric", "group_size"})
    if set(params) - known:
        raise EdgeError(f"tensor {name!r}: unknown params {sorted(set(params) - known)}")
    if enc == "nm":
        return nm_layout(t)["size"]
    if enc in ("csr", "bitmask"):
        return sparse_layout(t)["size"]
    if enc == "q4k":
        return q4k_layout(t)["size"]
    if enc == "q3s":
        return q3s_layout(t)["size"]
    if enc == "f32":
        if params:
            raise EdgeError(f"tensor {name!r}: f32 takes no params")
        return 4 * count
    if enc == "f16":
        if params:
            raise EdgeError(f"tensor {name!r}: f16 takes no params")
        return 2 * count
    if len(shape) != 2 or not isinstance(params.get("symmetric"), bool):
        raise EdgeError(f"tensor {name!r}: {enc} needs shape [rows, cols] and params.symmetric")
    rows, cols = shape
    sym = params["symmetric"]
    if enc == "q8":
        if "group_size" in params:
            raise EdgeError(f"tensor {name!r}: q8 takes no group_size")
        scale_off = align64(rows * cols)
        return scale_off + 4 * rows if sym else align64(scale_off + 4 * rows) + rows
    g = params.get("group_size")
    step = 8 if enc == "q3" else 2                    # q3: a multiple of 8; q4: even
    if not _is_int(g) or g < step or g > MAX_GROUP or g % step:
        raise EdgeError(f"tensor {name!r}: bad group_size {g}")
    groups = (cols + g - 1) // g
    row_bytes = (3 * cols + 7) // 8 if enc == "q3" else (cols + 1) // 2
    scale_off = align64(rows * row_bytes)
    return scale_off + 2 * rows * groups if sym else align64(scale_off + 2 * rows * groups) + rows * groups


def grouped_values(p, name, enc, bits, u, codes_len, g, sym):
    """float32 values of a q4 / q3 tensor from its codes u (rows, cols): the f16 scales at the first
    64-aligned offset after the codes (codes_len bytes), then for an asymmetric tensor the u8 zero
    points at the next 64-aligned offset (symmetric: 2^(bits-1)); both (rows, groups), row-major."""
    rows, cols = u.shape
    groups = (cols + g - 1) // g
    scale_off = align64(codes_len)
    h = np.frombuffer(p, dtype="<u2", count=rows * groups, offset=scale_off)
    if ((h & 0x7C00) == 0x7C00).any():
        raise EdgeError(f"tensor {name!r}: {enc} scale is not finite")
    s = h.view("<f2").astype(np.float32).reshape(rows, groups)
    if sym:
        z = np.full((rows, groups), 1 << (bits - 1), dtype=np.int64)
    else:
        z = np.frombuffer(p, dtype=np.uint8, count=rows * groups, offset=align64(scale_off + 2 * rows * groups))
        if (z > (1 << bits) - 1).any():
            raise EdgeError(f"tensor {name!r}: {enc} zero point above {(1 << bits) - 1}")
        z = z.astype(np.int64).reshape(rows, groups)
    gi = np.arange(cols) // g
    return (s[:, gi] * (u.astype(np.int64) - z[:, gi]).astype(np.float32)).astype(np.float32)


def q3_codes(p, name, enc, rows, cols):
    """The 3-bit codes (rows, cols) of a q3 / q3s payload: each row's ceil(3 * cols / 8) bytes a
    little-endian bit stream, code c in bits 3c...3c+2; refuses padding bits set after a row's last code."""
    row_bytes = (3 * cols + 7) // 8
    packed = np.frombuffer(p, dtype=np.uint8, count=rows * row_bytes).reshape(rows, row_bytes)
    bits = np.unpackbits(packed, axis=1, bitorder="little")            # bit i of a row = bit i % 8 of byte i // 8
    if bits[:, 3 * cols:].any():
        raise EdgeError(f"tensor {name!r}: {enc} padding bits set after a row's last code")
    return (bits[:, : 3 * cols].reshape(rows, cols, 3).astype(np.int64) << np.arange(3)).sum(axis=2)  # lowest bit first


def dequantize_q3(t, p):
    """float32 values of a q3 tensor, checking scales, zero points and row padding bits (docs: "q3", "Validation")."""
    (rows, cols), name = t["shape"], t["name"]
    sym, g = t["params"]["symmetric"], t["params"]["group_size"]
    u = q3_codes(p, name, "q3", rows, cols)
    return grouped_values(p, name, "q3", 3, u, rows * ((3 * cols + 7) // 8), g, sym)


def q3s_layout(t):
    """Sizes and offsets of a q3s payload (docs: "q3s"), after checking shape and params."""
    name, shape, params = t["name"], t["shape"], t.get("params") or {}
    if len(shape) != 2:
        raise EdgeError(f"tensor {name!r}: q3s needs shape [rows, cols]")
    g, b = params.get("group_size"), params.get("sub_bits")
    if not _is_int(g) or g < 8 or g > MAX_GROUP or g % 8:
        raise EdgeError(f"tensor {name!r}: bad group_size {g}")
    if not _is_int(b) or b not in (6, 8):
        raise EdgeError(f"tensor {name!r}: bad sub_bits {b!r}; expected 6 or 8")
    rows, cols = shape
    groups = (cols + g - 1) // g
    sub_row = ((b + 3) * groups + 7) // 8
    sub_off = align64(rows * ((3 * cols + 7) // 8))
    super_off = align64(sub_off + rows * sub_row)
    return {"g": g, "b": b, "groups": groups, "sub_row": sub_row, "sub_off": sub_off, "super_off": super_off,
            "size": super_off + 2 * rows}


def dequantize_q3s(t, p):
    """float32 values of a q3s tensor, checking the code and sub-parameter padding bits and every
    super-scale (docs: "q3s", "Validation"): s = D*sc, w = s*(u - z), exact in binary32."""
    L, (rows, cols), name = q3s_layout(t), t["shape"], t["name"]
    g, b, groups = L["g"], L["b"], L["groups"]
    u = q3_codes(p, name, "q3s", rows, cols)
    sub = np.frombuffer(p, dtype=np.uint8, count=rows * L["sub_row"], offset=L["sub_off"]).reshape(rows, L["sub_row"])
    bits = np.unpackbits(sub, axis=1, bitorder="little")
    if bits[:, (b + 3) * groups:].any():
        raise EdgeError(f"tensor {name!r}: q3s sub-parameter padding bits set after a row's last group")
    fields = bits[:, : (b + 3) * groups].reshape(rows, groups, b + 3).astype(np.int64) << np.arange(b + 3)
    sc = fields[:, :, :b].sum(axis=2)                                  # lowest bit first: the scale code,
    z = fields[:, :, b:].sum(axis=2) >> b                              # then the 3-bit zero point
    h = np.frombuffer(p, dtype="<u2", count=rows, offset=L["super_off"])
    if ((h & 0x7C00) == 0x7C00).any():
        raise EdgeError(f"tensor {name!r}: q3s super-scale D is not finite")
    if (h & 0x8000).any():
        raise EdgeError(f"tensor {name!r}: q3s super-scale D is negative (sign bit set)")
    s = h.view("<f2").astype(np.float32)[:, None] * sc.astype(np.float32)   # exact: 11-bit significand times an integer < 256
    gi = np.arange(cols) // g
    return (s[:, gi] * (u - z[:, gi]).astype(np.float32)).astype(np.float32)  # exact


def q4_codes(p, name, enc, rows, cols):
    """The 4-bit codes (rows, cols) of a q4 / q4k payload: element c of a row in byte c // 2 of the
    row's ceil(cols / 2) bytes, low nibble when c is even; refuses a set high nibble ending a row of odd cols."""
    row_bytes = (cols + 1) // 2
    packed = np.frombuffer(p, dtype=np.uint8, count=rows * row_bytes).reshape(rows, row_bytes)
    if cols % 2 and (packed[:, -1] >> 4).any():
        raise EdgeError(f"tensor {name!r}: {enc} padding bits set after a row's last code")
    u = np.empty((rows, 2 * row_bytes), dtype=np.uint8)
    u[:, 0::2] = packed & 0x0F   # element 2k: low nibble of byte k
    u[:, 1::2] = packed >> 4     # element 2k+1: high nibble
    return u[:, :cols]


def q4k_layout(t):
    """Sizes and offsets of a q4k payload (docs: "q4k"), after checking shape and params."""
    name, shape, params = t["name"], t["shape"], t.get("params") or {}
    if len(shape) != 2:
        raise EdgeError(f"tensor {name!r}: q4k needs shape [rows, cols]")
    g, b = params.get("group_size"), params.get("sub_bits")
    if not _is_int(g) or g < 2 or g > MAX_GROUP or g % 2:
        raise EdgeError(f"tensor {name!r}: bad group_size {g}")
    if not _is_int(b) or b not in (6, 8):
        raise EdgeError(f"tensor {name!r}: bad sub_bits {b!r}; expected 6 or 8")
    rows, cols = shape
    groups = (cols + g - 1) // g
    row_bytes = (cols + 1) // 2
    sub_row = (2 * b * groups + 7) // 8
    sub_off = align64(rows * row_bytes)
    super_off = align64(sub_off + rows * sub_row)
    return {"g": g, "b": b, "groups": groups, "sub_row": sub_row, "sub_off": sub_off, "super_off": super_off,
            "size": super_off + 4 * rows}


def dequantize_q4k(t, p):
    """float32 values of a q4k tensor, checking the code and sub-parameter padding bits and every
    super-scale and super-min (docs: "q4k", "Validation"): d = D*sc, m = M*mn, w = d*u - m in binary32."""
    L, (rows, cols), name = q4k_layout(t), t["shape"], t["name"]
    g, b, groups = L["g"], L["b"], L["groups"]
    u = q4_codes(p, name, "q4k", rows, cols).astype(np.float32)
    sub = np.frombuffer(p, dtype=np.uint8, count=rows * L["sub_row"], offset=L["sub_off"]).reshape(rows, L["sub_row"])
    bits = np.unpackbits(sub, axis=1, bitorder="little")               # bit i of a row = bit i % 8 of byte i // 8
    if bits[:, 2 * b * groups:].any():
        raise EdgeError(f"tensor {name!r}: q4k sub-parameter padding bits set after a row's last group")
    codes = (bits[:, : 2 * b * groups].reshape(rows, groups, 2, b).astype(np.int64) << np.arange(b)).sum(axis=3)  # lowest bit first
    h = np.frombuffer(p, dtype="<u2", count=2 * rows, offset=L["super_off"]).reshape(rows, 2)   # (D, M) per row
    for j, what in ((0, "super-scale D"), (1, "super-min M")):
        if ((h[:, j] & 0x7C00) == 0x7C00).any():
            raise EdgeError(f"tensor {name!r}: q4k {what} is not finite")
        if (h[:, j] & 0x8000).any():
            raise EdgeError(f"tensor {name!r}: q4k {what} is negative (sign bit set)")
    f = h.view("<f2").astype(np.float32)
    d = f[:, 0:1] * codes[:, :, 0].astype(np.float32)                  # exact: 11-bit significand times an integer < 256
    m = f[:, 1:2] * codes[:, :, 1].astype(np.float32)
    gi = np.arange(cols) // g
    return (d[:, gi] * u - m[:, gi]).astype(np.float32)               # d*u exact: one rounding, the subtraction


def value_encoding(t, enc):
    """(V, bytes per value) of a sparse or nm tensor's stored values, after checking its params
    (docs: "csr and bitmask", "nm")."""
    name, params = t["name"], t.get("params") or {}
    ve = params.get("value_encoding")
    if ve not in ("f32", "f16", "q8"):
        raise EdgeError(f"tensor {name!r}: {enc} value_encoding {ve!r}; expected f32, f16 or q8")
    if (ve == "q8") != isinstance(params.get("symmetric"), bool) or (ve != "q8" and "symmetric" in params):
        raise EdgeError(f"tensor {name!r}: {enc} params.symmetric is required for q8 values and absent otherwise")
    return ve, {"f32": 4, "f16": 2, "q8": 1}[ve]


def q8_tail(t, ve, end, rows):
    """(scale_offset, zero_offset, size) after stored values ending at `end`: q8's per-row scales and,
    when not symmetric, zero points; (None, None, end) for f32 and f16 values."""
    if ve != "q8":
        return None, None, end
    scale_off = align64(end)
    end = scale_off + 4 * rows
    if t["params"]["symmetric"]:
        return scale_off, None, end
    zero_off = align64(end)
    return scale_off, zero_off, zero_off + rows


def stored_values(t, p, L, count, row_of):
    """float32 values of the `count` stored values at L["value_off"]; row_of[k] = the row of value k
    (for q8's per-row scale and zero point)."""
    ve, off, rows = L["ve"], L["value_off"], t["shape"][0]
    if ve == "f32":
        return np.frombuffer(p, dtype="<f4", count=count, offset=off).astype(np.float32)
    if ve == "f16":
        return np.frombuffer(p, dtype="<f2", count=count, offset=off).astype(np.float32)
    sym = t["params"]["symmetric"]
    q = np.frombuffer(p, dtype=np.int8 if sym else np.uint8, count=count, offset=off).astype(np.float32)
    s = np.frombuffer(p, dtype="<f4", count=rows, offset=L["scale_off"]).astype(np.float32)
    if not sym:
        q = q - np.frombuffer(p, dtype=np.uint8, count=rows, offset=L["zero_off"]).astype(np.float32)[row_of]
    return (s[row_of] * q).astype(np.float32)


def nm_layout(t):
    """Sizes and offsets of an nm payload (docs: "nm"), after checking shape and params."""
    name, shape, params = t["name"], t["shape"], t.get("params") or {}
    n, m = params.get("n"), params.get("m")
    if len(shape) != 2:
        raise EdgeError(f"tensor {name!r}: nm needs shape [rows, cols]")
    if not _is_int(m) or not 2 <= m <= MAX_NM_M or not _is_int(n) or not 1 <= n < m:
        raise EdgeError(f"tensor {name!r}: nm needs 1 <= n < m <= {MAX_NM_M}, got n {n!r}, m {m!r}")
    ve, vb = value_encoding(t, "nm")
    rows, cols = shape
    bits = (m - 1).bit_length()                       # ceil(log2 m)
    slots = (cols // m) * n + min(n, cols % m)        # per row; the tail group keeps min(n, tail)
    idx_row = (slots * bits + 7) // 8
    value_off = align64(rows * idx_row)
    scale_off, zero_off, end = q8_tail(t, ve, value_off + rows * slots * vb, rows)
    return {"n": n, "m": m, "ve": ve, "bits": bits, "slots": slots, "idx_row": idx_row, "value_off": value_off,
            "scale_off": scale_off, "zero_off": zero_off, "size": end}


def dequantize_nm(t, p):
    """float32 values of an nm tensor, checking every in-group index (docs: "nm", "Validation")."""
    L, (rows, cols), name = nm_layout(t), t["shape"], t["name"]
    n, m, bits, slots = L["n"], L["m"], L["bits"], L["slots"]
    if len(p) != L["size"]:
        raise EdgeError(f"tensor {name!r}: nm payload is {len(p)} bytes, expected {L['size']}")
    idx = np.frombuffer(p, dtype=np.uint8, count=rows * L["idx_row"]).reshape(rows, L["idx_row"])
    bitstream = np.unpackbits(idx, axis=1, bitorder="little")[:, : slots * bits].reshape(rows, slots, bits)
    index = (bitstream.astype(np.int64) << np.arange(bits)).sum(axis=2)               # (rows, slots)
    if rows and L["idx_row"] * 8 > slots * bits and np.unpackbits(idx, axis=1, bitorder="little")[:, slots * bits:].any():
        raise EdgeError(f"tensor {name!r}: nm index bits set after a row's last index")
    group = np.arange(slots) // n                                                      # slot -> group
    length = np.minimum(m, cols - group * m)                                           # columns of that group
    if (index >= length).any():
        raise EdgeError(f"tensor {name!r}: nm index beyond its group")
    first = np.arange(slots) % n == 0
    if slots and not (np.diff(index, axis=1)[:, ~first[1:]] > 0).all():
        raise EdgeError(f"tensor {name!r}: nm indices not increasing within a group")
    v = stored_values(t, p, L, rows * slots, np.repeat(np.arange(rows), slots))
    out = np.zeros((rows, cols), dtype=np.float32)
    out[np.arange(rows)[:, None], group * m + index] = v.reshape(rows, slots)
    return out


def sparse_layout(t):
    """Offsets of a csr or bitmask payload (docs: "csr and bitmask"), after checking shape, params and nnz."""
    name, shape, enc, params = t["name"], t["shape"], t["encoding"], t.get("params") or {}
    nnz = t.get("nnz")
    if len(shape) != 2:
        raise EdgeError(f"tensor {name!r}: {enc} needs shape [rows, cols]")
    rows, cols = shape
    ve, vb = value_encoding(t, enc)
    if not _is_int(nnz) or not 0 <= nnz <= min(rows * cols, 2 ** 32 - 1):
        raise EdgeError(f"tensor {name!r}: {enc} needs nnz within 0 ... {rows * cols}, got {nnz!r}")
    width = None
    if enc == "bitmask":
        if "index_width" in params:
            raise EdgeError(f"tensor {name!r}: bitmask takes no index_width")
        mask_row = (cols + 7) // 8
        ptr_off = align64(rows * mask_row)
        value_off = align64(ptr_off + 4 * (rows + 1))
        idx_off = None
    else:
        width = params.get("index_width")
        if width not in (8, 16):
            raise EdgeError(f"tensor {name!r}: csr index_width {width!r}; expected 8 or 16")
        mask_row = None
        ptr_off = 0
        idx_off = align64(4 * (rows + 1))
        value_off = align64(idx_off + nnz * width // 8)
    scale_off, zero_off, end = q8_tail(t, ve, value_off + nnz * vb, rows)
    return {"ve": ve, "nnz": nnz, "width": width, "mask_row": mask_row, "ptr_off": ptr_off, "idx_off": idx_off,
            "value_off": value_off, "scale_off": scale_off, "zero_off": zero_off, "size": end}


def dequantize_sparse(t, p):
    """float32 values of a csr or bitmask tensor, checking row_ptr, masks and columns (docs: "csr and bitmask")."""
    L, (rows, cols), name, enc = sparse_layout(t), t["shape"], t["name"], t["encoding"]
    if len(p) != L["size"]:
        raise EdgeError(f"tensor {name!r}: {enc} payload is {len(p)} bytes, expected {L['size']}")
    nnz = L["nnz"]
    ptr = np.frombuffer(p, dtype="<u4", count=rows + 1, offset=L["ptr_off"]).astype(np.int64)
    if ptr[0] != 0 or ptr[-1] != nnz or (np.diff(ptr) < 0).any() or (np.diff(ptr) > cols).any():
        raise EdgeError(f"tensor {name!r}: {enc} row_ptr is not 0 ... nnz, non-decreasing, at most cols a row")
    counts = np.diff(ptr)
    row_of = np.repeat(np.arange(rows), counts)                                        # stored element -> row
    if enc == "bitmask":
        masks = np.frombuffer(p, dtype=np.uint8, count=rows * L["mask_row"]).reshape(rows, L["mask_row"])
        bits = np.unpackbits(masks, axis=1, bitorder="little")
        if bits[:, cols:].any():
            raise EdgeError(f"tensor {name!r}: bitmask bits set after a row's last column")
        if (bits.sum(axis=1) != counts).any():
            raise EdgeError(f"tensor {name!r}: bitmask mask and row_ptr disagree on a row's count")
        col = np.nonzero(bits[:, :cols])[1]                                            # row order, increasing columns
    else:
        if L["width"] == 16:
            col = np.frombuffer(p, dtype="<u2", count=nnz, offset=L["idx_off"]).astype(np.int64)
            if nnz and (col >= cols).any():
                raise EdgeError(f"tensor {name!r}: csr column beyond the row")
            first = np.zeros(nnz, dtype=bool)
            first[ptr[:-1][counts > 0]] = True
            if nnz > 1 and not (np.diff(col)[~first[1:]] > 0).all():
                raise EdgeError(f"tensor {name!r}: csr columns not increasing within a row")
        else:
            # c_k = c_(k-1) + gap_k + 1 within a row, c_(-1) = -1: a running sum restarted at each row.
            csum = np.cumsum(np.frombuffer(p, dtype=np.uint8, count=nnz, offset=L["idx_off"]).astype(np.int64) + 1)
            col = csum - np.concatenate([[0], csum])[ptr[:-1]][row_of] - 1
            if nnz and (col >= cols).any():
                raise EdgeError(f"tensor {name!r}: csr column beyond the row")
    out = np.zeros((rows, cols), dtype=np.float32)
    out[row_of, col] = stored_values(t, p, L, nnz, row_of)
    return out


def dequantize(t, p):
    """float32 values of tensor entry t from its (decompressed) payload bytes p."""
    shape, enc, params = t["shape"], t["encoding"], t.get("params") or {}
    if enc == "nm":
        return dequantize_nm(t, p)
    if enc in ("csr", "bitmask"):
        return dequantize_sparse(t, p)
    if enc == "q3":
        return dequantize_q3(t, p)
    if enc == "q4k":
        return dequantize_q4k(t, p)
    if enc == "q3s":
        return dequantize_q3s(t, p)
    if enc == "f32":
        return np.frombuffer(p, dtype="<f4").astype(np.float32).reshape(shape)
    if enc == "f16":
        return np.frombuffer(p, dtype="<f2").astype(np.float32).reshape(shape)
    rows, cols = shape
    sym = params["symmetric"]
    if enc == "q8":
        scale_off = align64(rows * cols)
        q = np.frombuffer(p, dtype=np.int8 if sym else np.uint8, count=rows * cols).reshape(rows, cols).astype(np.float32)
        s = np.frombuffer(p, dtype="<f4", count=rows, offset=scale_off).astype(np.float32)[:, None]
        if sym:
            return s * q
        z = np.frombuffer(p, dtype=np.uint8, count=rows, offset=align64(scale_off + 4 * rows)).astype(np.float32)[:, None]
        return s * (q - z)
    g = params["group_size"]
    u = q4_codes(p, t["name"], "q4", rows, cols).astype(np.float32)
    return grouped_values(p, t["name"], "q4", 4, u, rows * ((cols + 1) // 2), g, sym)


class EdgeReader:
    """Reads and validates a whole .edge file (docs: "Validation")."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:8] != MAGIC[: min(8, len(d))]:
            raise EdgeError(f"not an .edge file (first bytes {d[:8].hex(' ')})")
        if len(d) < PREAMBLE:
            raise EdgeError(f"truncated: {len(d)} bytes, the preamble needs {PREAMBLE}")
        version, flags, h_off, h_len, h_crc = struct.unpack_from("<IIQQI", d, 8)
        if version == 0 or version > VERSION:
            raise EdgeError(f"version {version}; this reader understands up to v{VERSION}")
        if flags != 0:
            raise EdgeError(f"flags 0x{flags:x}; v{version} defines none")
        if any(d[36:64]):
            raise EdgeError("reserved preamble bytes are not zero")
        if h_off < PREAMBLE or h_off % ALIGN or not 2 <= h_len <= MAX_HEADER:
            raise EdgeError(f"bad header range {h_off}+{h_len}")
        if h_off + h_len > len(d):
            raise EdgeError(f"truncated: the header ends at {h_off + h_len}, the file has {len(d)} bytes")
        if h_off + h_len != len(d):
            raise EdgeError(f"{len(d) - h_off - h_len} bytes follow the header")
        header_bytes = d[h_off:]
        if zlib.crc32(header_bytes) != h_crc:
            raise EdgeError(f"header CRC32 is 0x{zlib.crc32(header_bytes):08x}, the preamble says 0x{h_crc:08x}")
        try:
            h = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as e:
            raise EdgeError(f"header is not valid UTF-8 JSON: {e}")
        if not isinstance(h, dict) or set(h) != TOP_KEYS:
            raise EdgeError(f"header keys are {sorted(h) if isinstance(h, dict) else h!r}; expected {sorted(TOP_KEYS)}")
        if h["format"] != "edge" or h["version"] != version:
            raise EdgeError("header format/version do not match the preamble")
        prov = h["provenance"]
        if not isinstance(prov, dict) or set(prov) - PROVENANCE_KEYS or not {"source_sha256", "source_format", "recipe", "toolchain", "passes", "metrics"} <= set(prov):
            raise EdgeError("provenance keys are wrong")
        self.header, self.config, self.provenance = h, h["config"], prov
        self.tensors, self.blobs = h["tensors"], h["blobs"]

        spans = []
        for kind, items, keys in (("tensor", self.tensors, TENSOR_KEYS), ("blob", self.blobs, BLOB_KEYS)):
            names = set()
            for it in items:
                required = keys - {"params", "raw_length", "nnz"}
                if set(it) - keys or not required <= set(it):
                    raise EdgeError(f"{kind} entry has keys {sorted(it)}")
                name = it["name"]
                if not name or name in names:
                    raise EdgeError(f"{kind} {name!r}: empty or duplicate name")
                names.add(name)
                needs = ENCODING_VERSION.get(it["encoding"], 1) if kind == "tensor" else 1
                if needs > version:
                    raise EdgeError(f"tensor {name!r}: {it['encoding']} needs format version {needs}, the file says {version}")
                expected = payload_length(it) if kind == "tensor" else None
                length, raw = it["length"], it.get("raw_length")
                if it["compression"] == "none":
                    if raw is not None or length < 1 or (expected is not None and length != expected):
                        raise EdgeError(f"{kind} {name!r}: length {length}, expected {expected}")
                elif it["compression"] == "deflate":
                    if raw is None or raw < 1 or (expected is not None and raw != expected) or length < 1 or raw > 1032 * length:
                        raise EdgeError(f"{kind} {name!r}: raw_length {raw}, expected {expected}")
                else:
                    raise EdgeError(f"{kind} {name!r}: unknown compression {it['compression']!r}")
                off = it["offset"]
                if off % ALIGN or off < PREAMBLE or off + length > h_off:
                    raise EdgeError(f"{kind} {name!r}: offset {off} is unaligned or outside the data area")
                spans.append((off, length, f"{kind} {name!r}"))
        spans.sort()
        expected_off, prev_end = PREAMBLE, PREAMBLE
        for off, length, what in spans:
            if off != expected_off:
                raise EdgeError(f"{what}: offset {off}; the packing rule puts it at {expected_off}")
            if any(d[prev_end:off]):
                raise EdgeError(f"non-zero padding before {what}")
            prev_end, expected_off = off + length, align64(off + length)
        if h_off != expected_off or any(d[prev_end:h_off]):
            raise EdgeError(f"header_offset {h_off}; the packing rule puts it at {expected_off}")
        for kind, items in (("tensor", self.tensors), ("blob", self.blobs)):
            for it in items:
                crc = zlib.crc32(d[it["offset"]: it["offset"] + it["length"]])
                if crc != it["crc32"]:
                    raise EdgeError(f"{kind} {it['name']!r}: CRC32 is 0x{crc:08x}, the header says 0x{it['crc32']:08x}")

    def stored(self, it):
        """The item's bytes after undoing its compression."""
        raw = self.data[it["offset"]: it["offset"] + it["length"]]
        if it["compression"] == "deflate":
            z = zlib.decompressobj()
            out = z.decompress(raw)
            if not z.eof or z.unused_data or len(out) != it["raw_length"]:
                raise EdgeError(f"{it['name']!r}: the deflate stream does not inflate to {it['raw_length']} bytes")
            return out
        return raw

    def values(self, t):
        return dequantize(t, self.stored(t))


def main(argv):
    args = [a for a in argv[1:] if a != "--json"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        r = EdgeReader(args[0])
        if "--json" in argv:
            def finite(x):
                return float(x) if np.isfinite(x) else None
            blobs = {}
            for b in r.blobs:
                raw = r.stored(b)
                try:
                    blobs[b["name"]] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    blobs[b["name"]] = {"hex": raw.hex()}
            out = {
                "config": r.config,
                "provenance": r.provenance,
                "tensors": {t["name"]: {"shape": t["shape"], "encoding": t["encoding"],
                                        "values": [finite(x) for x in r.values(t).ravel()]} for t in r.tensors},
                "blobs": blobs,
            }
            json.dump(out, sys.stdout, sort_keys=True, allow_nan=False)
            print()
        else:
            print(json.dumps(r.config, sort_keys=True))
            for t in r.tensors:
                v = r.values(t)
                print(f"{t['name']:40s} {t['encoding']:4s} {str(t['shape']):16s} {t['compression']:8s} "
                      f"{t['length']:10d} bytes  mean|w| {float(np.abs(v).mean()):.6g}")
    except (EdgeError, OSError, KeyError, TypeError) as e:
        print(f"edge_read: {args[0]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
