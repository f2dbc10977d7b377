import EdgeKernels

/// Byte offsets inside a q4k payload (docs/edge-format.md, "q4k"): 4-bit codes u laid out exactly as
/// q4's, groups of `groupSize` inputs (even; the last group of a row may be shorter), and per (row,
/// group) a scale code sc and a min code mn of `subBits` bits (6 or 8) under the row's binary16
/// super-scale D and super-min M:
///
///     d = D[r] * sc[r][k],  m = M[r] * mn[r][k],  w[r][c] = d * u[r][c] - m   (k = c / groupSize)
///
/// all in binary32 (d, m and d * u are exact, so w has one rounding: the subtraction).
///
/// ```
/// 0            rows * rowBytes      codes, element c of row r in byte r*rowBytes + c/2 (low nibble when c is even)
/// subOffset    rows * subRowBytes   per row a little-endian bit stream: group k's sc in bits 2bk...2bk+b-1,
///                                   its mn in bits 2bk+b...2bk+2b-1; bits 2*b*groups onward are 0
/// superOffset  4 * rows             per row D (binary16) then M (binary16), each finite with the sign bit clear
/// ```
public struct Q4KLayout: Equatable, Sendable {
    public let rows: Int, cols: Int, groupSize: Int, subBits: Int
    public init(rows: Int, cols: Int, groupSize: Int, subBits: Int) {
        self.rows = rows; self.cols = cols; self.groupSize = groupSize; self.subBits = subBits
    }
    /// Largest code.
    public static let maxCode = 15
    /// The sub-parameter widths a q4k tensor may use.
    public static let allowedSubBits = [6, 8]

    /// Groups per row (the last may be shorter).
    public var groups: Int { (cols + groupSize - 1) / groupSize }
    /// Code bytes per row, as q4's: ceil(cols / 2).
    public var rowBytes: Int { (cols + 1) / 2 }
    /// Sub-parameter bytes per row: ceil(2 * subBits * groups / 8).
    public var subRowBytes: Int { (2 * subBits * groups + 7) / 8 }
    /// Where the sub-parameters start: after the codes, 64-byte aligned.
    public var subOffset: Int { align64(rows * rowBytes) }
    /// Where the per-row (D, M) pairs start: after the sub-parameters, 64-byte aligned.
    public var superOffset: Int { align64(subOffset + rows * subRowBytes) }
    /// Payload size in bytes.
    public var totalBytes: Int { superOffset + 4 * rows }

    /// Scale code and min code of group `k` of row `r` (each 0 ..< 2^subBits).
    public func subCodes(_ p: UnsafeRawBufferPointer, row r: Int, group k: Int) -> (sc: Int, mn: Int) {
        let start = subOffset + r * subRowBytes, bit = 2 * subBits * k
        return (bitField(p, start, bit, subBits), bitField(p, start, bit + subBits, subBits))
    }

    /// Super-scale D and super-min M of row `r` (binary16 bit patterns).
    public func superBits(_ p: UnsafeRawBufferPointer, row r: Int) -> (d: UInt16, m: UInt16) {
        (UInt16(littleEndian: p.loadUnaligned(fromByteOffset: superOffset + 4 * r, as: UInt16.self)),
         UInt16(littleEndian: p.loadUnaligned(fromByteOffset: superOffset + 4 * r + 2, as: UInt16.self)))
    }

    /// Writes row `r` of payload `p` as float32 to `out` (`cols` values): w = d*u - m with
    /// d = D[r]*sc and m = M[r]*mn of the element's group, in binary32.
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        let (hd, hm) = superBits(p, row: r)
        let D = edge_f16_to_f32(hd), M = edge_f16_to_f32(hm)
        let q = r * rowBytes
        for k in 0 ..< groups {
            let (sc, mn) = subCodes(p, row: r, group: k)
            let d = D * Float(sc), m = M * Float(mn)
            for c in k * groupSize ..< min(cols, k * groupSize + groupSize) {
                out[c] = d * Float(q4Nibble(p, row: q, c)) - m
            }
        }
    }

    /// The first structural rule payload `p` (of `totalBytes` bytes) breaks, as one line naming the
    /// row (and group); nil when it is valid: the code padding nibble ending each row 0 (odd cols),
    /// the sub-parameter bits after each row's last group 0, every D and M finite with the sign bit
    /// clear (+0 allowed).
    func payloadProblem(_ p: UnsafeRawBufferPointer) -> String? {
        if let e = rowPaddingProblem(p, offset: 0, rows: rows, rowBytes: rowBytes, usedBits: 4 * cols) {
            return "q4k row \(e.row): code padding bits \(4 * cols)...\(8 * rowBytes - 1) of the row are not 0 (last byte 0x\(String(e.last, radix: 16)))"
        }
        let subBitsUsed = 2 * subBits * groups
        if let e = rowPaddingProblem(p, offset: subOffset, rows: rows, rowBytes: subRowBytes, usedBits: subBitsUsed) {
            return "q4k row \(e.row): sub-parameter padding bits \(subBitsUsed)...\(8 * subRowBytes - 1) are not 0 (last byte 0x\(String(e.last, radix: 16)))"
        }
        for r in 0 ..< rows {
            let (d, m) = superBits(p, row: r)
            for (h, what) in [(d, "super-scale D"), (m, "super-min M")] {
                if h & 0x7C00 == 0x7C00 { return "q4k row \(r): \(what) 0x\(String(h, radix: 16)) is not finite (binary16 Inf or NaN)" }
                if h & 0x8000 != 0 { return "q4k row \(r): \(what) 0x\(String(h, radix: 16)) is negative (sign bit set)" }
            }
        }
        return nil
    }
}

extension EncodedTensor {
    /// q4k layout for a [rows, cols] tensor with groups of `groupSize` inputs (even; the last group of
    /// a row may be shorter) and `subBits`-bit (6 or 8) sub-parameters: codes as q4's, pad to 64, per
    /// row the (sc, mn) pairs of its groups as a little-endian bit stream, pad to 64, per row D and M
    /// (binary16). w = (D*sc)*u - M*mn.
    /// - Parameters:
    ///   - u: one code 0...15 per weight, row-major.
    ///   - sc, mn: one scale code / min code per (row, group), row-major, each below 2^subBits.
    ///   - superScale, superMin: one D / M per row, each finite, >= 0 (sign bit clear) and exactly a binary16.
    public static func q4k(name: String, rows: Int, cols: Int, groupSize: Int, subBits: Int, u: [UInt8],
                           sc: [UInt8], mn: [UInt8], superScale: [Float], superMin: [Float]) -> EncodedTensor {
        let layout = Q4KLayout(rows: rows, cols: cols, groupSize: groupSize, subBits: subBits)
        precondition(groupSize > 0 && groupSize % 2 == 0, "q4k group size \(groupSize) is not a positive even number")
        precondition(Q4KLayout.allowedSubBits.contains(subBits), "q4k sub_bits \(subBits) is not 6 or 8")
        precondition(u.count == rows * cols && sc.count == rows * layout.groups && mn.count == rows * layout.groups
            && superScale.count == rows && superMin.count == rows)
        precondition(u.allSatisfy { $0 <= 15 }, "q4k codes are 0...15")
        precondition((sc + mn).allSatisfy { Int($0) < 1 << subBits }, "q4k scale and min codes are below 2^\(subBits)")
        var bytes = [UInt8](repeating: 0, count: layout.totalBytes)
        packQ4Codes(u, rows: rows, cols: cols, into: &bytes)
        for r in 0 ..< rows {
            let start = layout.subOffset + r * layout.subRowBytes
            for k in 0 ..< layout.groups {
                putBitField(sc[r * layout.groups + k], into: &bytes, start, 2 * subBits * k)
                putBitField(mn[r * layout.groups + k], into: &bytes, start, 2 * subBits * k + subBits)
            }
        }
        for r in 0 ..< rows {
            for (i, v) in [superScale[r], superMin[r]].enumerated() {
                let h = edge_f32_to_f16(v)
                precondition(v.isFinite && v.sign == .plus && edge_f16_to_f32(h) == v,
                             "q4k super-scale/min \(v) of row \(r) is not a finite binary16 >= 0")
                bytes[layout.superOffset + 4 * r + 2 * i] = UInt8(h & 0xFF)
                bytes[layout.superOffset + 4 * r + 2 * i + 1] = UInt8(h >> 8)
            }
        }
        return EncodedTensor(name: name, shape: [rows, cols], encoding: .q4k,
                             params: .init(groupSize: groupSize, subBits: subBits), payload: bytes)
    }
}
