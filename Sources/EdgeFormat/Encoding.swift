import EdgeKernels

/// How a tensor's bytes encode its values. Layouts are specified byte by byte in
/// docs/edge-format.md ("Encodings"); `EncodedTensor` builds them and `decode` reads them back.
public enum Encoding: String, Codable, Sendable, CaseIterable {
    /// IEEE binary32, row-major.
    case f32
    /// IEEE binary16, row-major.
    case f16
    /// int8 per output channel (row): symmetric (int8, w = s*q) or asymmetric (uint8, w = s*(q - z)).
    case q8
    /// int4 in groups of `group_size` along the input dimension, f16 scale per group (+ u8 zero if asymmetric).
    case q4
    /// 3-bit codes packed 8 per 3 bytes, in groups of `group_size` inputs, f16 scale per group (+ u8 zero
    /// if asymmetric). See `Q3Layout`.
    case q3
    /// 4-bit codes as q4's, in groups of `group_size` inputs, each group's scale and min as `sub_bits`-bit
    /// codes under per-row binary16 super-scales: w = (D*sc)*u - M*mn. See `Q4KLayout`.
    case q4k
    /// 3-bit codes as q3's, in groups of `group_size` inputs (a multiple of 8), each group's scale a
    /// `sub_bits`-bit code under a per-row binary16 super-scale and its zero point a 3-bit code:
    /// w = (D*sc)*(u - z). See `Q3SLayout`.
    case q3s
    /// Sparse, compressed sparse rows: u32 row pointers, column indices (u8 gaps or u16 absolute),
    /// the stored values in `value_encoding` (+ q8 scales/zeros). See `SparseLayout`.
    case csr
    /// Sparse, one presence bit per element: per-row bit masks, u32 row pointers, the stored values
    /// in `value_encoding` (+ q8 scales/zeros). See `SparseLayout`.
    case bitmask
    /// Packed N:M semi-structured sparsity: per group of `m` inputs of a row, `n` slots of
    /// (in-group index in ceil(log2 m) bits, value in `value_encoding` (+ q8 scales/zeros)). See `NMLayout`.
    case nm

    /// Whether this version can encode and decode it.
    public var isImplemented: Bool { true }

    /// The format version that introduced it: a file holding a tensor in this encoding says at least
    /// this version (q3: 2; q4k: 3; q3s: 4; every other encoding: 1). See `EdgePreamble.version(for:)`.
    public var formatVersion: UInt32 {
        switch self {
        case .q3: return 2
        case .q4k: return 3
        case .q3s: return 4
        default: return 1
        }
    }

    /// Whether this is a sparse encoding whose size depends on the tensor entry's `nnz` (csr, bitmask).
    public var isSparse: Bool { self == .csr || self == .bitmask }

    /// Whether a payload of this encoding has a structure a reader checks before use (csr, bitmask: row
    /// pointers, columns, mask bits; nm: in-group indices; q4, q3: finite scales, zero points, row
    /// padding bits; q4k, q3s: finite non-negative super-scales, padding bits), beyond its size.
    public var hasStructure: Bool { isSparse || self == .nm || self == .q4 || self == .q3 || self == .q4k || self == .q3s }
}

/// Encoding parameters stored in the tensor table beside the encoding name.
public struct EncodingParams: Codable, Equatable, Sendable {
    /// q8/q4/q3: symmetric (no zero points) or asymmetric.
    public var symmetric: Bool?
    /// q4/q3/q4k/q3s: inputs per group.
    public var groupSize: Int?
    /// csr/bitmask: how the stored values are encoded (f32, f16 or q8).
    public var valueEncoding: Encoding?
    /// csr: bits per stored column index, 8 (gaps) or 16 (absolute columns).
    public var indexWidth: Int?
    /// nm: values kept (slots) per group.
    public var n: Int?
    /// nm: group length (consecutive inputs of a row).
    public var m: Int?
    /// q4k: bits per group scale code and per group min code (6 or 8); q3s: bits per group scale code.
    public var subBits: Int?

    public init(symmetric: Bool? = nil, groupSize: Int? = nil, valueEncoding: Encoding? = nil, indexWidth: Int? = nil,
                n: Int? = nil, m: Int? = nil, subBits: Int? = nil) {
        self.symmetric = symmetric
        self.groupSize = groupSize
        self.valueEncoding = valueEncoding
        self.indexWidth = indexWidth
        self.n = n
        self.m = m
        self.subBits = subBits
    }

    enum CodingKeys: String, CodingKey {
        case symmetric, groupSize = "group_size", valueEncoding = "value_encoding", indexWidth = "index_width", n, m, subBits = "sub_bits"
    }
}

/// Rounds `n` up to a multiple of 64 (every sub-array of an encoding starts 64-byte aligned).
@inline(__always) public func align64(_ n: Int) -> Int { (n + 63) & ~63 }

/// A tensor in its final byte layout, ready for the writer.
public struct EncodedTensor: Sendable {
    public var name: String
    public var shape: [Int]
    public var encoding: Encoding
    public var params: EncodingParams
    /// Exactly the bytes stored in the file for this tensor (before optional deflate).
    public var payload: [UInt8]
    /// Number of stored (non-zero) values; set by the sparse builders, which the format requires it for.
    public var nnz: Int?

    public init(name: String, shape: [Int], encoding: Encoding, params: EncodingParams = .init(), payload: [UInt8], nnz: Int? = nil) {
        self.name = name
        self.shape = shape
        self.encoding = encoding
        self.params = params
        self.payload = payload
        self.nnz = nnz
    }

    public var count: Int { shape.reduce(1, *) }

    // MARK: builders

    /// f32 layout: `count` little-endian binary32 values.
    public static func f32(name: String, shape: [Int], values: [Float]) -> EncodedTensor {
        precondition(values.count == shape.reduce(1, *))
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { dst in
            values.withUnsafeBytes { src in dst.copyMemory(from: src) }  // x86-64 and arm64 are little-endian
        }
        return EncodedTensor(name: name, shape: shape, encoding: .f32, payload: bytes)
    }

    /// f16 layout: `count` little-endian binary16 values (round to nearest even).
    public static func f16(name: String, shape: [Int], values: [Float]) -> EncodedTensor {
        precondition(values.count == shape.reduce(1, *))
        var bytes = [UInt8](repeating: 0, count: values.count * 2)
        bytes.withUnsafeMutableBytes { dst in
            values.withUnsafeBufferPointer { edge_f32_to_f16_row($0.baseAddress, dst.baseAddress, values.count) }
        }
        return EncodedTensor(name: name, shape: shape, encoding: .f16, payload: bytes)
    }

    /// q8 layout for a [rows, cols] tensor: `q` (rows*cols bytes, row-major), pad to 64,
    /// `scale` (rows f32), and if asymmetric: pad to 64, `zero` (rows u8).
    /// - Parameters:
    ///   - q: symmetric: int8 bit patterns in -127...127; asymmetric: uint8 0...255.
    ///   - zeros: nil for symmetric.
    public static func q8(name: String, rows: Int, cols: Int, q: [UInt8], scales: [Float], zeros: [UInt8]?) -> EncodedTensor {
        precondition(q.count == rows * cols && scales.count == rows && (zeros == nil || zeros!.count == rows))
        let layout = Q8Layout(rows: rows, cols: cols, symmetric: zeros == nil)
        var bytes = [UInt8](repeating: 0, count: layout.totalBytes)
        bytes.replaceSubrange(0 ..< q.count, with: q)
        bytes.withUnsafeMutableBytes { dst in
            scales.withUnsafeBytes { (dst.baseAddress! + layout.scaleOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        if let zeros { bytes.replaceSubrange(layout.zeroOffset ..< layout.zeroOffset + rows, with: zeros) }
        return EncodedTensor(name: name, shape: [rows, cols], encoding: .q8, params: .init(symmetric: zeros == nil), payload: bytes)
    }

    /// q4 layout for a [rows, cols] tensor with groups of `groupSize` inputs (the last group of a row
    /// may be shorter): `q` (rows * ceil(cols/2) bytes; element j of a row in byte j/2, low nibble
    /// for even j), pad to 64, `scale` (rows * groups f16), and if asymmetric: pad to 64, `zero`
    /// (rows * groups u8, each 0...15). Symmetric stores u = q + 8 and w = s*(u - 8).
    /// - Parameter u: one unsigned nibble value 0...15 per weight, row-major.
    public static func q4(name: String, rows: Int, cols: Int, groupSize: Int, u: [UInt8], scales: [Float], zeros: [UInt8]?) -> EncodedTensor {
        let layout = Q4Layout(rows: rows, cols: cols, groupSize: groupSize, symmetric: zeros == nil)
        precondition(u.count == rows * cols && scales.count == rows * layout.groups && (zeros == nil || zeros!.count == rows * layout.groups))
        var bytes = [UInt8](repeating: 0, count: layout.totalBytes)
        packQ4Codes(u, rows: rows, cols: cols, into: &bytes)
        bytes.withUnsafeMutableBytes { dst in
            scales.withUnsafeBufferPointer { edge_f32_to_f16_row($0.baseAddress, dst.baseAddress! + layout.scaleOffset, scales.count) }
        }
        if let zeros { bytes.replaceSubrange(layout.zeroOffset ..< layout.zeroOffset + zeros.count, with: zeros) }
        return EncodedTensor(name: name, shape: [rows, cols], encoding: .q4,
                             params: .init(symmetric: zeros == nil, groupSize: groupSize), payload: bytes)
    }
}

/// Byte offsets inside a q8 payload.
public struct Q8Layout: Equatable, Sendable {
    public let rows: Int, cols: Int, symmetric: Bool
    public init(rows: Int, cols: Int, symmetric: Bool) { self.rows = rows; self.cols = cols; self.symmetric = symmetric }
    public var scaleOffset: Int { align64(rows * cols) }
    public var zeroOffset: Int { align64(scaleOffset + rows * 4) }
    public var totalBytes: Int { symmetric ? scaleOffset + rows * 4 : zeroOffset + rows }
}

/// Packs `rows * cols` 4-bit codes (row-major) into the first `rows * ceil(cols/2)` bytes of `bytes`
/// (zeroed by the caller) as q4 and q4k store them: element j of a row in byte j/2 of the row, low
/// nibble when j is even; a row of odd cols ends with a 0 high nibble.
func packQ4Codes(_ u: [UInt8], rows: Int, cols: Int, into bytes: inout [UInt8]) {
    let rowBytes = (cols + 1) / 2
    for r in 0 ..< rows {
        let src = r * cols, dst = r * rowBytes
        for j in 0 ..< cols {
            let v = u[src + j] & 0x0F
            if j & 1 == 0 { bytes[dst + j / 2] |= v } else { bytes[dst + j / 2] |= v << 4 }
        }
    }
}

/// Code `c` of a q4 / q4k row whose bytes start at byte `row` of `p`: the low nibble of byte c/2 when
/// c is even, the high one when odd.
@inline(__always) func q4Nibble(_ p: UnsafeRawBufferPointer, row: Int, _ c: Int) -> UInt8 {
    let byte = p[row + (c >> 1)]
    return c & 1 == 0 ? byte & 0x0F : byte >> 4
}

/// Byte offsets inside a q4 payload.
public struct Q4Layout: Equatable, Sendable {
    public let rows: Int, cols: Int, groupSize: Int, symmetric: Bool
    public init(rows: Int, cols: Int, groupSize: Int, symmetric: Bool) {
        self.rows = rows; self.cols = cols; self.groupSize = groupSize; self.symmetric = symmetric
    }
    public var groups: Int { (cols + groupSize - 1) / groupSize }
    public var rowBytes: Int { (cols + 1) / 2 }
    public var scaleOffset: Int { align64(rows * rowBytes) }
    public var zeroOffset: Int { align64(scaleOffset + rows * groups * 2) }
    public var totalBytes: Int { symmetric ? scaleOffset + rows * groups * 2 : zeroOffset + rows * groups }
    /// Largest code and zero point.
    public static let maxCode = 15
}

/// The `bits`-bit (1...8) field at bit `bit` of the little-endian bit stream starting at byte `start` of
/// `p` (bit i of the stream = bit i%8 of byte i/8), lowest bit first, as q4k and q3s store their
/// sub-codes; the next byte is read only when the field straddles it.
@inline(__always) func bitField(_ p: UnsafeRawBufferPointer, _ start: Int, _ bit: Int, _ bits: Int) -> Int {
    let byte = start + (bit >> 3), shift = bit & 7
    var v = Int(p[byte]) >> shift
    if shift + bits > 8 { v |= Int(p[byte + 1]) << (8 - shift) }
    return v & ((1 << bits) - 1)
}

/// ORs `value` (below 2^8) into the bit stream starting at byte `start` of `bytes` at bit `bit`, the
/// writing side of `bitField`.
func putBitField(_ value: UInt8, into bytes: inout [UInt8], _ start: Int, _ bit: Int) {
    let w = UInt16(value) << (bit & 7)
    bytes[start + (bit >> 3)] |= UInt8(w & 0xFF)
    if w > 0xFF { bytes[start + (bit >> 3) + 1] |= UInt8(w >> 8) }
}

/// The first row of `rows` rows of `rowBytes` bytes each, from byte `offset` of `p`, whose bits
/// `usedBits` ... `8 * rowBytes - 1` (a row's bits read little-endian, bit i = bit i%8 of byte i/8)
/// are not all 0, with that row's last byte; nil when none is. `rowBytes` is ceil(usedBits / 8).
func rowPaddingProblem(_ p: UnsafeRawBufferPointer, offset: Int, rows: Int, rowBytes: Int, usedBits: Int) -> (row: Int, last: UInt8)? {
    guard usedBits & 7 != 0 else { return nil }
    let mask = UInt8(0xFF) << (usedBits & 7)
    for r in 0 ..< rows where p[offset + r * rowBytes + rowBytes - 1] & mask != 0 {
        return (r, p[offset + r * rowBytes + rowBytes - 1])
    }
    return nil
}

/// The first rule a q4, q3, q4k or q3s payload (of the size its layout gives) breaks, as one line naming the
/// row, group and numbers; nil when it is valid: the padding bits after each row's last code 0 (q4
/// and q4k: the high nibble ending a row of odd cols; q3: bits 3 * cols onward), every scale finite (a
/// binary16 Inf or NaN is refused) and every zero point (asymmetric) at most the largest code
/// (15; 7); q4k: `Q4KLayout.payloadProblem` (sub-parameter padding bits 0, every D and M finite
/// with the sign bit clear); q3s: `Q3SLayout.payloadProblem` (likewise, D only).
public func groupedPayloadProblem(_ p: UnsafeRawBufferPointer, encoding: Encoding, shape: [Int], params: EncodingParams) -> String? {
    let rows, rowBytes, groups, scaleOffset, totalBytes, usedBits, maxZero: Int, zeroOffset: Int?
    switch PayloadLayout(encoding: encoding, shape: shape, params: params) {
    case let .q4k(l)?:
        guard p.count == l.totalBytes else { return "has \(p.count) bytes; \(encoding) \(shape) needs \(l.totalBytes)" }
        return l.payloadProblem(p)
    case let .q3s(l)?:
        guard p.count == l.totalBytes else { return "has \(p.count) bytes; \(encoding) \(shape) needs \(l.totalBytes)" }
        return l.payloadProblem(p)
    case let .q4(l)?:
        (rows, rowBytes, groups, scaleOffset, totalBytes) = (l.rows, l.rowBytes, l.groups, l.scaleOffset, l.totalBytes)
        (usedBits, maxZero, zeroOffset) = (4 * l.cols, Q4Layout.maxCode, l.symmetric ? nil : l.zeroOffset)
    case let .q3(l)?:
        (rows, rowBytes, groups, scaleOffset, totalBytes) = (l.rows, l.rowBytes, l.groups, l.scaleOffset, l.totalBytes)
        (usedBits, maxZero, zeroOffset) = (3 * l.cols, Q3Layout.maxCode, l.symmetric ? nil : l.zeroOffset)
    default:
        return "shape \(shape) with params \(params) is not valid for \(encoding)"
    }
    guard p.count == totalBytes else { return "has \(p.count) bytes; \(encoding) \(shape) needs \(totalBytes)" }
    if let (r, last) = rowPaddingProblem(p, offset: 0, rows: rows, rowBytes: rowBytes, usedBits: usedBits) {
        return "\(encoding) row \(r): padding bits \(usedBits)...\(8 * rowBytes - 1) of the row are not 0 (last byte 0x\(String(last, radix: 16)))"
    }
    for k in 0 ..< rows * groups {
        let h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: scaleOffset + 2 * k, as: UInt16.self))
        if h & 0x7C00 == 0x7C00 {
            return "\(encoding) row \(k / groups) group \(k % groups): scale 0x\(String(h, radix: 16)) is not finite (binary16 Inf or NaN)"
        }
        if let zeroOffset, p[zeroOffset + k] > UInt8(maxZero) {
            return "\(encoding) row \(k / groups) group \(k % groups): zero point \(p[zeroOffset + k]) is outside 0...\(maxZero)"
        }
    }
    return nil
}

/// Expected payload size for an encoding, or nil if the shape/params are not valid for it
/// (`PayloadLayout.init?` says what is valid).
/// - Parameter nnz: the number of stored values; required by the sparse encodings (nil gives nil for them).
public func expectedPayloadBytes(encoding: Encoding, shape: [Int], params: EncodingParams, nnz: Int? = nil) -> Int? {
    PayloadLayout(encoding: encoding, shape: shape, params: params, nnz: nnz)?.totalBytes
}

/// Decodes (dequantizes) a payload to float32 values, row-major, through its `PayloadLayout`. The
/// caller has validated the size with `expectedPayloadBytes` and, for the sparse encodings, the
/// structure with `payloadStructureProblem`.
/// - Parameter nnz: the stored values of a csr/bitmask payload; nil reads them from its last row pointer.
/// - Precondition: the shape and params are valid for the encoding.
public func decodePayload(_ p: UnsafeRawBufferPointer, encoding: Encoding, shape: [Int], params: EncodingParams, nnz: Int? = nil) -> [Float] {
    var stored = nnz
    if stored == nil, encoding.isSparse, shape.count == 2 { stored = SparseLayout.storedValues(p, encoding: encoding, rows: shape[0], cols: shape[1]) }
    guard let layout = PayloadLayout(encoding: encoding, shape: shape, params: params, nnz: stored) else {
        preconditionFailure("decodePayload: shape \(shape) with params \(params) is not valid for \(encoding.rawValue)")
    }
    return layout.decode(p)
}

/// The first structural rule the payload of a csr, bitmask, nm, q4, q3, q4k or q3s tensor breaks (`sparsePayloadProblem`,
/// `nmPayloadProblem`, `groupedPayloadProblem`), as one line; nil when it is valid or the encoding
/// has no structure to check.
public func payloadStructureProblem(_ p: UnsafeRawBufferPointer, encoding: Encoding, shape: [Int], params: EncodingParams, nnz: Int?) -> String? {
    if encoding.isSparse { return sparsePayloadProblem(p, encoding: encoding, shape: shape, params: params, nnz: nnz) }
    if encoding == .nm { return nmPayloadProblem(p, shape: shape, params: params) }
    if encoding == .q4 || encoding == .q3 || encoding == .q4k || encoding == .q3s { return groupedPayloadProblem(p, encoding: encoding, shape: shape, params: params) }
    return nil
}
