import EdgeKernels

/// Byte offsets inside a q3s payload (docs/edge-format.md, "q3s"): 3-bit codes u laid out exactly as
/// q3's, groups of `groupSize` inputs (a multiple of 8; the last group of a row may be shorter), and per
/// (row, group) a scale code sc of `subBits` bits (6 or 8) and a zero point z of 3 bits under the row's
/// binary16 super-scale D:
///
///     s = D[r] * sc[r][k],  w[r][c] = s * (u[r][c] - z[r][k])   (k = c / groupSize)
///
/// exact in binary32 (s has at most 19 significant bits, u - z is an integer in -7...7).
///
/// ```
/// 0            rows * rowBytes      codes as q3's: row r a little-endian bit stream, element c in bits 3c...3c+2
/// subOffset    rows * subRowBytes   per row a little-endian bit stream: group k's sc in bits (b+3)k...(b+3)k+b-1,
///                                   its z in the next 3 bits; bits (b+3)*groups onward are 0
/// superOffset  2 * rows             per row D (binary16), finite with the sign bit clear
/// ```
public struct Q3SLayout: Equatable, Sendable {
    public let rows: Int, cols: Int, groupSize: Int, subBits: Int
    public init(rows: Int, cols: Int, groupSize: Int, subBits: Int) {
        self.rows = rows; self.cols = cols; self.groupSize = groupSize; self.subBits = subBits
    }
    /// Largest code and zero point.
    public static let maxCode = 7
    /// The scale-code widths a q3s tensor may use.
    public static let allowedSubBits = [6, 8]

    /// Groups per row (the last may be shorter).
    public var groups: Int { (cols + groupSize - 1) / groupSize }
    /// Code bytes per row, as q3's: ceil(3 * cols / 8).
    public var rowBytes: Int { (3 * cols + 7) / 8 }
    /// Bits per group in the sub-parameter stream: the scale code and the 3-bit zero point.
    public var fieldBits: Int { subBits + 3 }
    /// Sub-parameter bytes per row: ceil((subBits + 3) * groups / 8).
    public var subRowBytes: Int { (fieldBits * groups + 7) / 8 }
    /// Where the sub-parameters start: after the codes, 64-byte aligned.
    public var subOffset: Int { align64(rows * rowBytes) }
    /// Where the per-row super-scales start: after the sub-parameters, 64-byte aligned.
    public var superOffset: Int { align64(subOffset + rows * subRowBytes) }
    /// Payload size in bytes.
    public var totalBytes: Int { superOffset + 2 * rows }

    /// Scale code and zero point of group `k` of row `r`.
    public func subCodes(_ p: UnsafeRawBufferPointer, row r: Int, group k: Int) -> (sc: Int, z: Int) {
        let start = subOffset + r * subRowBytes, bit = fieldBits * k
        return (bitField(p, start, bit, subBits), bitField(p, start, bit + subBits, 3))
    }

    /// Super-scale D of row `r` (binary16 bit pattern).
    public func superBits(_ p: UnsafeRawBufferPointer, row r: Int) -> UInt16 {
        UInt16(littleEndian: p.loadUnaligned(fromByteOffset: superOffset + 2 * r, as: UInt16.self))
    }

    /// Writes row `r` of payload `p` as float32 to `out` (`cols` values): w = (D[r]*sc) * (u - z).
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        let D = edge_f16_to_f32(superBits(p, row: r)), q = r * rowBytes
        for k in 0 ..< groups {
            let (sc, z) = subCodes(p, row: r, group: k)
            let s = D * Float(sc)
            for c in k * groupSize ..< min(cols, k * groupSize + groupSize) {
                out[c] = s * Float(Q3Layout.code(p, row: q, c) - z)
            }
        }
    }

    /// The first structural rule payload `p` (of `totalBytes` bytes) breaks, as one line naming the
    /// row; nil when it is valid: the code padding bits ending each row 0 (bits 3 * cols onward), the
    /// sub-parameter bits after each row's last group 0, every D finite with the sign bit clear.
    func payloadProblem(_ p: UnsafeRawBufferPointer) -> String? {
        if let e = rowPaddingProblem(p, offset: 0, rows: rows, rowBytes: rowBytes, usedBits: 3 * cols) {
            return "q3s row \(e.row): code padding bits \(3 * cols)...\(8 * rowBytes - 1) of the row are not 0 (last byte 0x\(String(e.last, radix: 16)))"
        }
        let used = fieldBits * groups
        if let e = rowPaddingProblem(p, offset: subOffset, rows: rows, rowBytes: subRowBytes, usedBits: used) {
            return "q3s row \(e.row): sub-parameter padding bits \(used)...\(8 * subRowBytes - 1) are not 0 (last byte 0x\(String(e.last, radix: 16)))"
        }
        for r in 0 ..< rows {
            let h = superBits(p, row: r)
            if h & 0x7C00 == 0x7C00 { return "q3s row \(r): super-scale D 0x\(String(h, radix: 16)) is not finite (binary16 Inf or NaN)" }
            if h & 0x8000 != 0 { return "q3s row \(r): super-scale D 0x\(String(h, radix: 16)) is negative (sign bit set)" }
        }
        return nil
    }
}

extension EncodedTensor {
    /// q3s layout for a [rows, cols] tensor with groups of `groupSize` inputs (a positive multiple of 8;
    /// the last group of a row may be shorter) and `subBits`-bit (6 or 8) scale codes: codes as q3's, pad
    /// to 64, per row the (sc, z) pairs of its groups as a little-endian bit stream, pad to 64, per row D
    /// (binary16). w = (D*sc)*(u - z).
    /// - Parameters:
    ///   - u: one code 0...7 per weight, row-major.
    ///   - sc, z: one scale code (below 2^subBits) and one zero point (0...7) per (row, group), row-major.
    ///   - superScale: one D per row, finite, >= 0 (sign bit clear) and exactly a binary16.
    public static func q3s(name: String, rows: Int, cols: Int, groupSize: Int, subBits: Int, u: [UInt8], sc: [UInt8],
                           z: [UInt8], superScale: [Float]) -> EncodedTensor {
        let layout = Q3SLayout(rows: rows, cols: cols, groupSize: groupSize, subBits: subBits)
        precondition(groupSize > 0 && groupSize % 8 == 0, "q3s group size \(groupSize) is not a positive multiple of 8")
        precondition(Q3SLayout.allowedSubBits.contains(subBits), "q3s sub_bits \(subBits) is not 6 or 8")
        precondition(u.count == rows * cols && sc.count == rows * layout.groups && z.count == rows * layout.groups && superScale.count == rows)
        precondition((u + z).allSatisfy { $0 <= 7 }, "q3s codes and zero points are 0...7")
        precondition(sc.allSatisfy { Int($0) < 1 << subBits }, "q3s scale codes are below 2^\(subBits)")
        var bytes = [UInt8](repeating: 0, count: layout.totalBytes)
        packQ3Codes(u, rows: rows, cols: cols, into: &bytes)
        for r in 0 ..< rows {
            let start = layout.subOffset + r * layout.subRowBytes
            for k in 0 ..< layout.groups {
                putBitField(sc[r * layout.groups + k], into: &bytes, start, layout.fieldBits * k)
                putBitField(z[r * layout.groups + k], into: &bytes, start, layout.fieldBits * k + subBits)
            }
        }
        for r in 0 ..< rows {
            let v = superScale[r], h = edge_f32_to_f16(v)
            precondition(v.isFinite && v.sign == .plus && edge_f16_to_f32(h) == v, "q3s super-scale \(v) of row \(r) is not a finite binary16 >= 0")
            bytes[layout.superOffset + 2 * r] = UInt8(h & 0xFF)
            bytes[layout.superOffset + 2 * r + 1] = UInt8(h >> 8)
        }
        return EncodedTensor(name: name, shape: [rows, cols], encoding: .q3s, params: .init(groupSize: groupSize, subBits: subBits),
                             payload: bytes)
    }
}
