import EdgeKernels

/// Byte offsets inside an `nm` payload (docs/edge-format.md, "Encodings"): a [rows, cols] matrix
/// in which every group of `m` consecutive columns of a row (columns `g*m ..< g*m + m`, from
/// column 0) holds at most `n` non-zeros, stored as exactly `n` slots per group: the in-group
/// index of each slot (`indexBits` bits, strictly increasing within a group) and its value.
///
/// When `cols` is not a multiple of `m`, the last group of a row (the *tail*) has
/// `tail = cols % m` columns and `min(n, tail)` slots. Every row therefore has the same number of
/// slots, `slotsPerRow = (cols / m) * n + min(n, cols % m)`. Sub-arrays start 64-byte aligned:
///
/// ```
/// idx     rows * idxRowBytes                     row r at r * idxRowBytes; slot s of the row at bits
///                                                s*indexBits ..< (s+1)*indexBits of that bit stream
///                                                (bit i = bit i%8 of byte i/8, LSB first); unused bits 0
/// values  rows * slotsPerRow * value bytes       value_encoding f32 / f16 / q8 (int8, or uint8 with zeros)
/// scale   rows f32 LE                            q8 only
/// zero    rows u8                                q8 asymmetric only
/// ```
/// Slots of a group with fewer than `n` non-zeros hold values that decode to zero.
public struct NMLayout: Equatable, Sendable {
    /// Largest group length (indices are at most 8 bits).
    public static let maxM = 256

    public let rows: Int, cols: Int
    /// Slots (kept values) per full group.
    public let n: Int
    /// Group length.
    public let m: Int
    /// How the stored values are encoded: `.f32`, `.f16` or `.q8`.
    public let valueEncoding: Encoding
    /// q8 values: symmetric (int8, no zero array) or asymmetric (uint8 + zero array). False otherwise.
    public let symmetric: Bool

    /// The layout for `params`, or nil if they are not valid for nm and the shape: `n` and `m` with
    /// 1 <= n < m <= 256, `value_encoding` one of f32/f16/q8, `symmetric` present exactly for q8,
    /// no `group_size` or `index_width`.
    public init?(rows: Int, cols: Int, params: EncodingParams) {
        guard rows >= 0, cols >= 0, let n = params.n, let m = params.m, n >= 1, n < m, m <= NMLayout.maxM,
              params.groupSize == nil, params.indexWidth == nil, let values = _StoredValues.resolve(params) else { return nil }
        self.init(unchecked: rows, cols: cols, n: n, m: m, valueEncoding: values.encoding, symmetric: values.symmetric)
    }

    private init(unchecked rows: Int, cols: Int, n: Int, m: Int, valueEncoding: Encoding, symmetric: Bool) {
        self.rows = rows
        self.cols = cols
        self.n = n
        self.m = m
        self.valueEncoding = valueEncoding
        self.symmetric = symmetric
    }

    /// The params that describe this layout in the tensor table.
    public var params: EncodingParams {
        EncodingParams(symmetric: valueEncoding == .q8 ? symmetric : nil, valueEncoding: valueEncoding, n: n, m: m)
    }

    /// Bits per in-group index: ceil(log2 m) (1 for m = 2, 2 for m = 3...4, 3 for m = 5...8, ...).
    public var indexBits: Int { Int.bitWidth - (m - 1).leadingZeroBitCount }
    /// Full groups per row.
    public var fullGroups: Int { cols / m }
    /// Columns of the partial last group (0: none).
    public var tailColumns: Int { cols % m }
    /// Groups per row, the tail included.
    public var groups: Int { fullGroups + (tailColumns > 0 ? 1 : 0) }
    /// Slots per row: n per full group, min(n, tail) for the tail.
    public var slotsPerRow: Int { fullGroups * n + min(n, tailColumns) }
    /// Index bytes per row.
    public var indexRowBytes: Int { (slotsPerRow * indexBits + 7) / 8 }
    /// Bytes per stored value: 4 (f32), 2 (f16), 1 (q8).
    public var valueBytes: Int { valueEncoding == .f32 ? 4 : valueEncoding == .f16 ? 2 : 1 }
    /// Start of `values`.
    public var valueOffset: Int { align64(rows * indexRowBytes) }
    /// Start of `scale` (q8).
    public var scaleOffset: Int { align64(valueOffset + rows * slotsPerRow * valueBytes) }
    /// Start of `zero` (q8 asymmetric).
    public var zeroOffset: Int { align64(scaleOffset + rows * 4) }
    /// Payload size.
    public var totalBytes: Int {
        if valueEncoding != .q8 { return valueOffset + rows * slotsPerRow * valueBytes }
        return symmetric ? scaleOffset + rows * 4 : zeroOffset + rows
    }

    /// Slots of group `g` of a row (n, or min(n, tail) for the tail group).
    @inline(__always) public func slots(inGroup g: Int) -> Int { g < fullGroups ? n : min(n, tailColumns) }
    /// Columns of group `g` of a row (m, or the tail's length).
    @inline(__always) public func columns(inGroup g: Int) -> Int { g < fullGroups ? m : tailColumns }

    /// The in-group index of slot `s` of row `r` in payload `p`.
    @inline(__always) public func index(row r: Int, slot s: Int, _ p: UnsafeRawBufferPointer) -> Int {
        let bit = s * indexBits, at = r * indexRowBytes + bit / 8, shift = bit % 8
        var v = Int(p[at]) >> shift
        if shift + indexBits > 8 { v |= Int(p[at + 1]) << (8 - shift) }
        return v & ((1 << indexBits) - 1)
    }

    /// Writes row `r` of the matrix (cols floats, zeros included) to `out`. The payload must be
    /// valid (`nmPayloadProblem` returned nil for it).
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        out.update(repeating: 0, count: cols)
        let stored = _StoredValues(encoding: valueEncoding, symmetric: symmetric, valueOffset: valueOffset, scaleOffset: scaleOffset, zeroOffset: zeroOffset)
        let (s, z) = stored.row(r, p)
        let base = r * slotsPerRow
        var slot = 0
        for g in 0 ..< groups {
            for _ in 0 ..< slots(inGroup: g) {
                out[g * m + index(row: r, slot: slot, p)] = stored.value(base + slot, p, scale: s, zero: z)
                slot += 1
            }
        }
    }
}

/// Whether an index byte of a 2:4 row holds two valid groups: in each nibble the first 2-bit index
/// (bits 0-1) below the second (bits 2-3).
@inline(__always) private func nm24ByteIsValid(_ b: UInt8) -> Bool {
    (b & 3) < ((b >> 2) & 3) && ((b >> 4) & 3) < (b >> 6)
}

/// The first rule an nm payload breaks, as one line naming the array, row, group and numbers, or nil
/// if it is valid: its size matches `expectedPayloadBytes`; within every group the indices are
/// below the group's length and strictly increasing; the bits after a row's last index are 0.
/// Linear in the payload size; never traps.
public func nmPayloadProblem(_ p: UnsafeRawBufferPointer, shape: [Int], params: EncodingParams) -> String? {
    guard shape.count == 2, let expected = expectedPayloadBytes(encoding: .nm, shape: shape, params: params),
          let l = NMLayout(rows: shape[0], cols: shape[1], params: params) else {
        return "shape \(shape) with params \(params) is not valid for nm"
    }
    guard p.count == expected else { return "payload is \(p.count) bytes; shape and params imply \(expected)" }
    let usedBits = l.slotsPerRow * l.indexBits
    // 2:4: each index byte holds two whole groups' indices (a < b in each nibble) for the row's first
    // `whole` bytes; a row whose bytes all pass skips them below (a 135M model's 2:4 file was checked
    // slot by slot in most of its 0.39 s load, against 0.16 s for its bitmask twin).
    let whole = l.n == 2 && l.m == 4 ? l.fullGroups / 2 : 0
    for r in 0 ..< l.rows {
        var slot = 0, first = 0
        if whole > 0 {
            var ok = true
            let row = p.baseAddress!.assumingMemoryBound(to: UInt8.self) + r * l.indexRowBytes
            for i in 0 ..< whole where !nm24ByteIsValid(row[i]) { ok = false; break }
            if ok { first = 2 * whole; slot = 4 * whole }  // else the slot-by-slot loop names the slot
        }
        for g in first ..< l.groups {
            let len = l.columns(inGroup: g)
            var previous = -1
            for _ in 0 ..< l.slots(inGroup: g) {
                let i = l.index(row: r, slot: slot, p)
                guard i < len else {
                    return "idx of row \(r), group \(g) (slot \(slot)) is \(i); the group has \(len) columns"
                }
                guard i > previous else {
                    return "idx of row \(r), group \(g) (slot \(slot)) is \(i), not above the group's previous index \(previous)"
                }
                previous = i
                slot += 1
            }
        }
        if usedBits % 8 != 0, p[r * l.indexRowBytes + l.indexRowBytes - 1] >> (usedBits % 8) != 0 {
            return "idx of row \(r) has bits set after its last index (bit \(usedBits % 8) on of its last byte)"
        }
    }
    return nil
}

extension EncodedTensor {
    /// Whether every group of `m` columns of every row holds at most `n` values whose decoded value is
    /// not zero (the tail group of `cols % m` columns at most min(n, tail)): the condition for
    /// `packedNM`. False for tensors that cannot be packed sparse.
    public func conformsToNM(n: Int, m: Int) -> Bool {
        guard canPackSparse, n >= 1, n < m, m <= NMLayout.maxM else { return false }
        let cols = shape[1]
        var ok = true, count = 0, lastRow = -1, lastGroup = -1
        forEachStored { r, j, _ in
            guard ok else { return }
            let g = j / m
            if r != lastRow || g != lastGroup { lastRow = r; lastGroup = g; count = 0 }
            count += 1
            if count > min(n, min(m, cols - g * m)) { ok = false }
        }
        return ok
    }

    /// This dense f32/f16/q8 matrix packed as `nm` with `n` slots per group of `m` and identical
    /// values: in each group the non-zero elements keep their stored bytes, and a group with fewer
    /// than `n` of them fills its slots with the lowest-index zero elements (their bytes copied too,
    /// so they decode to zero); q8 scales and zero points are copied. `nnz` is the count of non-zeros.
    /// Nil if the tensor cannot be packed sparse or does not conform (`conformsToNM`).
    public func packedNM(n: Int, m: Int) -> EncodedTensor? {
        guard conformsToNM(n: n, m: m) else { return nil }
        let rows = shape[0], cols = shape[1]
        let params = EncodingParams(symmetric: encoding == .q8 ? self.params.symmetric : nil, valueEncoding: encoding, n: n, m: m)
        guard let l = NMLayout(rows: rows, cols: cols, params: params) else { return nil }
        // Mark the stored (non-zero) elements, one flag per element.
        var stored = [Bool](repeating: false, count: rows * cols)
        var nnz = 0
        forEachStored { _, _, k in stored[k] = true; nnz += 1 }
        let vb = l.valueBytes, bits = l.indexBits
        var out = [UInt8](repeating: 0, count: l.totalBytes)
        payload.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                var chosen = [Int](repeating: 0, count: n)
                for r in 0 ..< rows {
                    var slot = 0
                    for g in 0 ..< l.groups {
                        let len = l.columns(inGroup: g), want = l.slots(inGroup: g), c0 = g * m
                        // The non-zeros, then the lowest zeros until `want`, in increasing column order.
                        var have = 0
                        for j in 0 ..< len where stored[r * cols + c0 + j] { chosen[have] = j; have += 1 }
                        var j = 0
                        while have < want {
                            if !stored[r * cols + c0 + j] {
                                var at = have
                                while at > 0 && chosen[at - 1] > j { chosen[at] = chosen[at - 1]; at -= 1 }
                                chosen[at] = j
                                have += 1
                            }
                            j += 1
                        }
                        for i in 0 ..< want {
                            let bit = (slot) * bits, at = r * l.indexRowBytes + bit / 8, shift = bit % 8
                            let idx = chosen[i]
                            dst[at] |= UInt8(truncatingIfNeeded: idx << shift)
                            if shift + bits > 8 { dst[at + 1] |= UInt8(truncatingIfNeeded: idx >> (8 - shift)) }
                            let k = r * l.slotsPerRow + slot
                            (dst.baseAddress! + l.valueOffset + vb * k).copyMemory(from: src.baseAddress! + vb * (r * cols + c0 + idx), byteCount: vb)
                            slot += 1
                        }
                    }
                }
                if encoding == .q8 {
                    let q = Q8Layout(rows: rows, cols: cols, symmetric: l.symmetric)
                    (dst.baseAddress! + l.scaleOffset).copyMemory(from: src.baseAddress! + q.scaleOffset, byteCount: rows * 4)
                    if !l.symmetric { (dst.baseAddress! + l.zeroOffset).copyMemory(from: src.baseAddress! + q.zeroOffset, byteCount: rows) }
                }
            }
        }
        return EncodedTensor(name: name, shape: shape, encoding: .nm, params: params, payload: out, nnz: nnz)
    }

    /// The N:M patterns worth trying for `nm` (NMPattern's common list, sparsest first).
    public static let nmCandidatePatterns: [(n: Int, m: Int)] = [(1, 8), (1, 4), (2, 8), (1, 2), (2, 4), (4, 8)]

    /// The smallest nm packing among `nmCandidatePatterns` that this tensor conforms to, as
    /// (n, m, payload bytes); nil when it conforms to none (or cannot be packed sparse).
    /// - Parameter nnz: the tensor's count of non-zeros if known (`sparseCandidates().nnz`): patterns
    ///   with fewer slots than that are skipped without a scan.
    public func bestNMCandidate(nnz: Int? = nil) -> (n: Int, m: Int, bytes: Int)? {
        guard canPackSparse else { return nil }
        var best: (n: Int, m: Int, bytes: Int)?
        let base = EncodingParams(symmetric: encoding == .q8 ? params.symmetric : nil, valueEncoding: encoding)
        for (n, m) in EncodedTensor.nmCandidatePatterns {
            var p = base
            p.n = n
            p.m = m
            guard let l = NMLayout(rows: shape[0], cols: shape[1], params: p) else { continue }
            let size = l.totalBytes
            if let b = best, b.bytes <= size { continue }
            if let nnz, nnz > l.rows * l.slotsPerRow { continue }
            if conformsToNM(n: n, m: m) { best = (n, m, size) }
        }
        return best
    }
}
