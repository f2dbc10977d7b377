import EdgeKernels

/// Byte offsets inside a `csr` or `bitmask` payload (docs/edge-format.md, "Encodings").
///
/// Both hold a [rows, cols] matrix of which only the `nnz` stored values are kept, in row order;
/// every other element is zero. Sub-arrays start 64-byte aligned, in this order:
///
/// ```
/// bitmask: mask      rows * ceil(cols/8) u8   bit j%8 of byte j/8 of a row = element j stored (LSB first)
///          row_ptr   rows + 1 u32 LE          row_ptr[0] = 0, row_ptr[r+1] - row_ptr[r] = stored values of row r
///          values    nnz * value bytes        value_encoding f32 / f16 / q8 (int8, or uint8 with zeros)
///          scale     rows f32 LE              q8 only
///          zero      rows u8                  q8 asymmetric only
/// csr:     row_ptr   rows + 1 u32 LE
///          col_idx   nnz u8 or u16 LE         index_width 8: c_k - c_(k-1) - 1 with c_(-1) = -1 (gaps up to 256);
///                                             index_width 16: c_k (absolute; cols <= 65536)
///          values, scale, zero as for bitmask
/// ```
/// The payload ends where its last sub-array ends (no trailing padding).
public struct SparseLayout: Equatable, Sendable {
    /// Most stored values a sparse tensor may have (row pointers are u32).
    public static let maxNNZ = Int(UInt32.max)
    /// Most columns a 16-bit absolute column index can address.
    public static let maxColumns16 = 1 << 16

    /// `.csr` or `.bitmask`.
    public let encoding: Encoding
    public let rows: Int, cols: Int
    /// Number of stored values.
    public let nnz: Int
    /// How the stored values are encoded: `.f32`, `.f16` or `.q8`.
    public let valueEncoding: Encoding
    /// q8 values: symmetric (int8, no zero array) or asymmetric (uint8 + zero array). False otherwise.
    public let symmetric: Bool
    /// csr: 8 or 16; bitmask: 0.
    public let indexWidth: Int

    /// The layout for `params`, or nil if they are not valid for `encoding` (a sparse one) and the shape:
    /// `value_encoding` one of f32/f16/q8, `symmetric` present exactly for q8, no `group_size`,
    /// `index_width` 8 or 16 (16 only for cols <= 65536) for csr and absent for bitmask.
    public init?(encoding: Encoding, rows: Int, cols: Int, params: EncodingParams, nnz: Int) {
        guard encoding.isSparse, rows >= 0, cols >= 0, nnz >= 0, nnz <= SparseLayout.maxNNZ, params.groupSize == nil,
              let values = _StoredValues.resolve(params) else { return nil }
        let indexWidth: Int
        if encoding == .csr {
            guard let w = params.indexWidth, w == 8 || (w == 16 && cols <= SparseLayout.maxColumns16) else { return nil }
            indexWidth = w
        } else {
            guard params.indexWidth == nil else { return nil }
            indexWidth = 0
        }
        self.init(unchecked: encoding, rows: rows, cols: cols, nnz: nnz, valueEncoding: values.encoding, symmetric: values.symmetric,
                  indexWidth: indexWidth)
    }

    /// The stored values of a csr/bitmask payload of [rows, cols] as its last row pointer says
    /// (nil when the payload is too short to hold the row pointers).
    public static func storedValues(_ p: UnsafeRawBufferPointer, encoding: Encoding, rows: Int, cols: Int) -> Int? {
        let l = SparseLayout(unchecked: encoding, rows: rows, cols: cols, nnz: 0, valueEncoding: .f32, symmetric: false, indexWidth: 0)
        guard p.count >= l.rowPointerOffset + 4 * (rows + 1) else { return nil }
        return l.rowPointer(rows, p)
    }

    private init(unchecked encoding: Encoding, rows: Int, cols: Int, nnz: Int, valueEncoding: Encoding, symmetric: Bool, indexWidth: Int) {
        self.encoding = encoding
        self.rows = rows
        self.cols = cols
        self.nnz = nnz
        self.valueEncoding = valueEncoding
        self.symmetric = symmetric
        self.indexWidth = indexWidth
    }

    /// The params that describe this layout in the tensor table.
    public var params: EncodingParams {
        EncodingParams(symmetric: valueEncoding == .q8 ? symmetric : nil, valueEncoding: valueEncoding,
                       indexWidth: encoding == .csr ? indexWidth : nil)
    }

    /// Bytes per stored value: 4 (f32), 2 (f16), 1 (q8).
    public var valueBytes: Int { valueEncoding == .f32 ? 4 : valueEncoding == .f16 ? 2 : 1 }
    /// Mask bytes per row (bitmask).
    public var maskRowBytes: Int { (cols + 7) / 8 }
    /// Start of `row_ptr`.
    public var rowPointerOffset: Int { encoding == .bitmask ? align64(rows * maskRowBytes) : 0 }
    /// Start of `col_idx` (csr).
    public var indexOffset: Int { align64(rowPointerOffset + 4 * (rows + 1)) }
    /// Start of `values`.
    public var valueOffset: Int {
        encoding == .bitmask ? align64(rowPointerOffset + 4 * (rows + 1)) : align64(indexOffset + nnz * indexWidth / 8)
    }
    /// Start of `scale` (q8).
    public var scaleOffset: Int { align64(valueOffset + nnz * valueBytes) }
    /// Start of `zero` (q8 asymmetric).
    public var zeroOffset: Int { align64(scaleOffset + rows * 4) }
    /// Payload size.
    public var totalBytes: Int {
        if valueEncoding != .q8 { return valueOffset + nnz * valueBytes }
        return symmetric ? scaleOffset + rows * 4 : zeroOffset + rows
    }

    /// row_ptr[i] of payload `p`.
    @inline(__always) public func rowPointer(_ i: Int, _ p: UnsafeRawBufferPointer) -> Int {
        Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: rowPointerOffset + 4 * i, as: UInt32.self)))
    }

    /// Writes row `r` of the matrix (cols floats, zeros included) to `out`. The payload must be
    /// valid (`sparsePayloadProblem` returned nil for it).
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        out.update(repeating: 0, count: cols)
        let k0 = rowPointer(r, p), k1 = rowPointer(r + 1, p)
        guard k0 < k1 else { return }
        let stored = _StoredValues(encoding: valueEncoding, symmetric: symmetric, valueOffset: valueOffset, scaleOffset: scaleOffset, zeroOffset: zeroOffset)
        let (s, z) = stored.row(r, p)
        @inline(__always) func value(_ k: Int) -> Float { stored.value(k, p, scale: s, zero: z) }
        var k = k0
        if encoding == .bitmask {
            let m0 = r * maskRowBytes
            for b in 0 ..< maskRowBytes {
                var m = p[m0 + b]
                while m != 0, k < k1 {
                    out[b * 8 + m.trailingZeroBitCount] = value(k)
                    k += 1
                    m &= m &- 1
                }
            }
        } else if indexWidth == 8 {
            var c = -1
            for k in k0 ..< k1 {
                c += Int(p[indexOffset + k]) + 1
                out[c] = value(k)
            }
        } else {
            for k in k0 ..< k1 {
                out[Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: indexOffset + 2 * k, as: UInt16.self)))] = value(k)
            }
        }
    }
}

/// The first rule a csr/bitmask payload breaks, as one line naming the array, row and both numbers,
/// or nil if it is valid: its size matches `expectedPayloadBytes`, row_ptr starts at 0, never
/// decreases and ends at `nnz`; bitmask rows have as many mask bits set as row_ptr says and no bit
/// past the last column; csr columns are in 0..<cols and strictly increasing within a row.
/// Linear in the payload size; never traps.
public func sparsePayloadProblem(_ p: UnsafeRawBufferPointer, encoding: Encoding, shape: [Int], params: EncodingParams, nnz: Int?) -> String? {
    guard let nnz else { return "nnz is missing; a \(encoding.rawValue) tensor needs it" }
    guard shape.count == 2, let expected = expectedPayloadBytes(encoding: encoding, shape: shape, params: params, nnz: nnz),
          let l = SparseLayout(encoding: encoding, rows: shape[0], cols: shape[1], params: params, nnz: nnz) else {
        return "shape \(shape) with params \(params) and nnz \(nnz) is not valid for \(encoding.rawValue)"
    }
    guard p.count == expected else { return "payload is \(p.count) bytes; shape, params and nnz \(nnz) imply \(expected)" }
    let rows = l.rows, cols = l.cols
    guard l.rowPointer(0, p) == 0 else { return "row_ptr[0] is \(l.rowPointer(0, p)); expected 0" }
    for r in 0 ..< rows {
        let a = l.rowPointer(r, p), b = l.rowPointer(r + 1, p)
        guard b >= a else { return "row_ptr[\(r + 1)] is \(b), less than row_ptr[\(r)] (\(a))" }
        guard b - a <= cols else { return "row_ptr says row \(r) holds \(b - a) values; it has \(cols) columns" }
    }
    guard l.rowPointer(rows, p) == nnz else { return "row_ptr[\(rows)] is \(l.rowPointer(rows, p)); expected nnz \(nnz)" }
    if encoding == .bitmask {
        let mb = l.maskRowBytes
        let tailBits = cols % 8
        for r in 0 ..< rows {
            var bits = 0
            for b in 0 ..< mb { bits += p[r * mb + b].nonzeroBitCount }
            let want = l.rowPointer(r + 1, p) - l.rowPointer(r, p)
            guard bits == want else { return "mask of row \(r) has \(bits) bits set; row_ptr says \(want) values" }
            if tailBits != 0 {
                let extra = p[r * mb + mb - 1] >> tailBits
                if extra != 0 {
                    return "mask of row \(r) marks column \(cols + extra.trailingZeroBitCount), past the last column \(cols - 1)"
                }
            }
        }
    } else {
        for r in 0 ..< rows {
            var c = -1
            for k in l.rowPointer(r, p) ..< l.rowPointer(r + 1, p) {
                let next: Int
                if l.indexWidth == 8 {
                    next = c + Int(p[l.indexOffset + k]) + 1
                } else {
                    next = Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: l.indexOffset + 2 * k, as: UInt16.self)))
                    guard next > c else { return "col_idx[\(k)] of row \(r) is \(next), not above the previous column \(c)" }
                }
                guard next < cols else { return "col_idx[\(k)] puts a value of row \(r) at column \(next); the tensor has \(cols) columns" }
                c = next
            }
        }
    }
    return nil
}

/// What each packing of a dense tensor would cost, from one scan of its payload.
public struct SparseCandidates: Equatable, Sendable {
    /// Values that would be stored (those whose decoded value is not zero).
    public let nnz: Int
    /// Size of the dense payload as it is.
    public let denseBytes: Int
    /// Size of the csr payload (nil when no index width can hold the columns).
    public let csrBytes: Int?
    /// The csr index width: 8 when every gap fits, else 16 (cols <= 65536), else nil.
    public let csrIndexWidth: Int?
    /// Size of the bitmask payload.
    public let bitmaskBytes: Int
}

extension EncodedTensor {
    /// Whether this tensor can be packed sparse: a 2-D f32, f16 or q8 tensor.
    public var canPackSparse: Bool { shape.count == 2 && [.f32, .f16, .q8].contains(encoding) }

    /// Calls `body(r, j, k)` for every element of row-major index k = r*cols + j whose decoded value is
    /// not zero (f32: != 0; f16: not +-0; q8: code != zero point and scale != 0), in row order.
    func forEachStored(_ body: (Int, Int, Int) -> Void) {
        let rows = shape[0], cols = shape[1]
        payload.withUnsafeBytes { p in
            switch encoding {
            case .f32:
                for k in 0 ..< rows * cols where Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))) != 0 {
                    body(k / cols, k % cols, k)
                }
            case .f16:
                for k in 0 ..< rows * cols where UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)) & 0x7FFF != 0 {
                    body(k / cols, k % cols, k)
                }
            default:
                guard case let .q8(l)? = layout else { preconditionFailure("forEachStored: \(name) is not a valid f32, f16 or q8 matrix") }
                for r in 0 ..< rows {
                    let s = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: l.scaleOffset + 4 * r, as: UInt32.self)))
                    guard s != 0 else { continue }
                    let z: UInt8 = l.symmetric ? 0 : p[l.zeroOffset + r]
                    for j in 0 ..< cols where p[r * cols + j] != z { body(r, j, r * cols + j) }
                }
            }
        }
    }

    /// The exact size of each packing of this tensor, or nil if it cannot be packed sparse.
    public func sparseCandidates() -> SparseCandidates? {
        guard canPackSparse else { return nil }
        let rows = shape[0], cols = shape[1]
        var nnz = 0, maxGap = 0, lastRow = -1, lastCol = -1
        forEachStored { r, j, _ in
            if r != lastRow { lastRow = r; lastCol = -1 }
            maxGap = max(maxGap, j - lastCol)
            lastCol = j
            nnz += 1
        }
        guard nnz <= SparseLayout.maxNNZ else { return nil }
        let width: Int? = maxGap <= 256 ? 8 : cols <= SparseLayout.maxColumns16 ? 16 : nil
        let base = EncodingParams(symmetric: encoding == .q8 ? params.symmetric : nil, valueEncoding: encoding)
        var csrParams = base
        csrParams.indexWidth = width
        let csr = width.flatMap { _ in SparseLayout(encoding: .csr, rows: rows, cols: cols, params: csrParams, nnz: nnz)?.totalBytes }
        let bitmask = SparseLayout(encoding: .bitmask, rows: rows, cols: cols, params: base, nnz: nnz)?.totalBytes ?? Int.max
        return SparseCandidates(nnz: nnz, denseBytes: payload.count, csrBytes: csr, csrIndexWidth: width, bitmaskBytes: bitmask)
    }

    /// This dense tensor packed as `encoding` (`.csr` or `.bitmask`) with identical values: the
    /// elements whose decoded value is zero are dropped, the others keep their stored bytes (q8
    /// scales and zero points are copied). Nil if it cannot be packed (not a 2-D f32/f16/q8 tensor,
    /// or csr columns no index width holds).
    public func packedSparse(as target: Encoding) -> EncodedTensor? {
        guard target.isSparse, let c = sparseCandidates() else { return nil }
        let rows = shape[0], cols = shape[1]
        var params = EncodingParams(symmetric: encoding == .q8 ? params.symmetric : nil, valueEncoding: encoding)
        if target == .csr {
            guard let w = c.csrIndexWidth else { return nil }
            params.indexWidth = w
        }
        guard let l = SparseLayout(encoding: target, rows: rows, cols: cols, params: params, nnz: c.nnz) else { return nil }
        let vb = l.valueBytes
        var out = [UInt8](repeating: 0, count: l.totalBytes)
        payload.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                var k = 0, lastRow = -1, lastCol = -1
                var rowStart = [Int](repeating: 0, count: rows + 1)
                forEachStored { r, j, i in
                    if r != lastRow {
                        for rr in lastRow + 1 ... r { rowStart[rr] = k }
                        lastRow = r
                        lastCol = -1
                    }
                    if target == .bitmask {
                        dst[r * l.maskRowBytes + j / 8] |= UInt8(1) << (j % 8)
                    } else if l.indexWidth == 8 {
                        dst[l.indexOffset + k] = UInt8(j - lastCol - 1)
                    } else {
                        dst.storeBytes(of: UInt16(j).littleEndian, toByteOffset: l.indexOffset + 2 * k, as: UInt16.self)
                    }
                    lastCol = j
                    (dst.baseAddress! + l.valueOffset + vb * k).copyMemory(from: src.baseAddress! + vb * i, byteCount: vb)
                    k += 1
                }
                for rr in lastRow + 1 ... rows { rowStart[rr] = k }
                for (r, v) in rowStart.enumerated() {
                    dst.storeBytes(of: UInt32(v).littleEndian, toByteOffset: l.rowPointerOffset + 4 * r, as: UInt32.self)
                }
                if encoding == .q8 {
                    let q = Q8Layout(rows: rows, cols: cols, symmetric: l.symmetric)
                    (dst.baseAddress! + l.scaleOffset).copyMemory(from: src.baseAddress! + q.scaleOffset, byteCount: rows * 4)
                    if !l.symmetric { (dst.baseAddress! + l.zeroOffset).copyMemory(from: src.baseAddress! + q.zeroOffset, byteCount: rows) }
                }
            }
        }
        return EncodedTensor(name: name, shape: shape, encoding: target, params: params, payload: out, nnz: c.nnz)
    }
}
