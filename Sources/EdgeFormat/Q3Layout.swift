import EdgeKernels

/// Byte offsets inside a q3 payload (docs/edge-format.md, "q3"): 3-bit codes, groups of
/// `groupSize` inputs (a multiple of 8, the last group of a row may be shorter), one binary16
/// scale per (row, group), and when asymmetric one u8 zero point per (row, group).
///
/// Each row is a little-endian bit stream of `rowBytes = ceil(3 * cols / 8)` bytes: code c occupies
/// bits 3c ... 3c + 2 (bit i of the row is bit i mod 8 of byte i / 8), so every 8 codes fill exactly
/// 3 bytes and a group (a multiple of 8 codes) starts on a byte boundary.
public struct Q3Layout: Equatable, Sendable {
    public let rows: Int, cols: Int, groupSize: Int, symmetric: Bool
    public init(rows: Int, cols: Int, groupSize: Int, symmetric: Bool) {
        self.rows = rows; self.cols = cols; self.groupSize = groupSize; self.symmetric = symmetric
    }
    /// Symmetric codes store u = q + 4 (q in -4...3) and decode as s * (u - 4).
    public static let symmetricZero = 4
    /// Largest code and zero point.
    public static let maxCode = 7

    public var groups: Int { (cols + groupSize - 1) / groupSize }
    public var rowBytes: Int { (3 * cols + 7) / 8 }
    public var scaleOffset: Int { align64(rows * rowBytes) }
    public var zeroOffset: Int { align64(scaleOffset + rows * groups * 2) }
    public var totalBytes: Int { symmetric ? scaleOffset + rows * groups * 2 : zeroOffset + rows * groups }

    /// Code `c` (0...7) of a row whose bit stream starts at byte `row` of `p`.
    @inline(__always) static func code(_ p: UnsafeRawBufferPointer, row: Int, _ c: Int) -> Int {
        let bit = 3 * c, byte = row + (bit >> 3), shift = bit & 7
        var v = Int(p[byte]) >> shift
        if shift > 5 { v |= Int(p[byte + 1]) << (8 - shift) }
        return v & 7
    }

    /// Writes row `r` of payload `p` as float32 to `out` (`cols` values): w = s*(u - 4) (symmetric)
    /// or s*(u - z) (asymmetric), s and z those of the element's group.
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        let q = r * rowBytes
        for gi in 0 ..< groups {
            let k = r * groups + gi
            let s = edge_f16_to_f32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: scaleOffset + 2 * k, as: UInt16.self)))
            let z = symmetric ? Self.symmetricZero : Int(p[zeroOffset + k])
            for j in gi * groupSize ..< min(cols, gi * groupSize + groupSize) {
                out[j] = s * Float(Self.code(p, row: q, j) - z)
            }
        }
    }
}

extension EncodedTensor {
    /// q3 layout for a [rows, cols] tensor with groups of `groupSize` inputs (a multiple of 8; the
    /// last group of a row may be shorter): codes (rows * ceil(3*cols/8) bytes, code j of a row at
    /// bits 3j...3j+2 of the row's little-endian bit stream), pad to 64, `scale` (rows * groups f16),
    /// and if asymmetric: pad to 64, `zero` (rows * groups u8, each 0...7). Symmetric stores
    /// u = q + 4 and w = s*(u - 4).
    /// - Parameter u: one unsigned code 0...7 per weight, row-major.
    public static func q3(name: String, rows: Int, cols: Int, groupSize: Int, u: [UInt8], scales: [Float], zeros: [UInt8]?) -> EncodedTensor {
        let layout = Q3Layout(rows: rows, cols: cols, groupSize: groupSize, symmetric: zeros == nil)
        precondition(groupSize > 0 && groupSize % 8 == 0, "q3 group size \(groupSize) is not a positive multiple of 8")
        precondition(u.count == rows * cols && scales.count == rows * layout.groups && (zeros == nil || zeros!.count == rows * layout.groups))
        precondition(u.allSatisfy { $0 <= 7 } && (zeros ?? []).allSatisfy { $0 <= 7 }, "q3 codes and zero points are 0...7")
        var bytes = [UInt8](repeating: 0, count: layout.totalBytes)
        packQ3Codes(u, rows: rows, cols: cols, into: &bytes)
        bytes.withUnsafeMutableBytes { dst in
            scales.withUnsafeBufferPointer { edge_f32_to_f16_row($0.baseAddress, dst.baseAddress! + layout.scaleOffset, scales.count) }
        }
        if let zeros { bytes.replaceSubrange(layout.zeroOffset ..< layout.zeroOffset + zeros.count, with: zeros) }
        return EncodedTensor(name: name, shape: [rows, cols], encoding: .q3,
                             params: .init(symmetric: zeros == nil, groupSize: groupSize), payload: bytes)
    }
}

/// Packs `rows * cols` 3-bit codes (row-major) into the first `rows * ceil(3*cols/8)` bytes of `bytes`
/// (zeroed by the caller) as q3 and q3s store them: each row a little-endian bit stream, code j in bits
/// 3j...3j+2, the bits after the row's last code 0.
func packQ3Codes(_ u: [UInt8], rows: Int, cols: Int, into bytes: inout [UInt8]) {
    let rowBytes = (3 * cols + 7) / 8
    for r in 0 ..< rows {
        let src = r * cols, dst = r * rowBytes
        for j in 0 ..< cols {
            let bit = 3 * j, v = UInt16(u[src + j]) << (bit & 7)
            bytes[dst + (bit >> 3)] |= UInt8(v & 0xFF)
            if v > 0xFF { bytes[dst + (bit >> 3) + 1] |= UInt8(v >> 8) }
        }
    }
}
