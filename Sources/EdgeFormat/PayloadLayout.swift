import EdgeKernels

/// A tensor payload's layout with every encoding parameter resolved: the one place where the
/// optional `EncodingParams` of the tensor table become concrete values (or are refused), so no
/// reader guesses a default. Built once per tensor where it is validated (`EdgeFile`, `Linear`);
/// both the format's decode to float32 (`decode`, `decodeRow`) and the runtime's products over the
/// stored bytes read the payload through it.
///
/// Matrices are [rows, cols] row-major; a dense f32/f16 tensor of another rank is viewed as
/// [shape[0], product of the rest] (a scalar as [1, 1]).
public enum PayloadLayout: Equatable, Sendable {
    /// IEEE binary32, `rows * cols` values.
    case f32(rows: Int, cols: Int)
    /// IEEE binary16, `rows * cols` values.
    case f16(rows: Int, cols: Int)
    /// int8 per output channel (`Q8Layout`).
    case q8(Q8Layout)
    /// int4 in groups along the input dimension (`Q4Layout`).
    case q4(Q4Layout)
    /// 3-bit codes in groups along the input dimension (`Q3Layout`).
    case q3(Q3Layout)
    /// 4-bit codes with sub-coded group scales and mins under per-row super-scales (`Q4KLayout`).
    case q4k(Q4KLayout)
    /// 3-bit codes as q3's with sub-coded group scales and 3-bit zero points under per-row super-scales (`Q3SLayout`).
    case q3s(Q3SLayout)
    /// csr or bitmask (`SparseLayout`).
    case sparse(SparseLayout)
    /// packed N:M (`NMLayout`).
    case nm(NMLayout)

    /// Resolves the layout of a tensor, or nil if the shape, params and nnz are not valid for the
    /// encoding: q8, q4 and q3 need a 2-D shape and `symmetric`; q4 an even `group_size` in 2...2^40,
    /// q3 a multiple of 8 in 8...2^40; q4k a 2-D shape, an even `group_size` in 2...2^24 and `sub_bits`
    /// 6 or 8 (no `symmetric`: a present one is refused by `TensorEntry.payloadLength`, ignored here);
    /// q3s as q4k but a `group_size` that is a multiple of 8 in 8...2^24;
    /// csr/bitmask and nm as `SparseLayout.init?` and `NMLayout.init?` say (sparse ones need `nnz`
    /// in 0...count). Shapes beyond 2^40 per dimension or 2^48 elements give nil, so the layout
    /// arithmetic cannot overflow on hostile input.
    public init?(encoding: Encoding, shape: [Int], params: EncodingParams, nnz: Int? = nil) {
        guard let count = Checked.product(shape), count <= 1 << 48, shape.allSatisfy({ $0 <= 1 << 40 }) else { return nil }
        switch encoding {
        case .f32, .f16:
            let rows = shape.first ?? 1, cols = shape.dropFirst().reduce(1, *)
            self = encoding == .f32 ? .f32(rows: rows, cols: cols) : .f16(rows: rows, cols: cols)
        case .q8:
            guard shape.count == 2, let sym = params.symmetric else { return nil }
            self = .q8(Q8Layout(rows: shape[0], cols: shape[1], symmetric: sym))
        case .q4:
            guard shape.count == 2, let sym = params.symmetric, let g = params.groupSize, g > 0, g <= 1 << 40, g % 2 == 0 else { return nil }
            self = .q4(Q4Layout(rows: shape[0], cols: shape[1], groupSize: g, symmetric: sym))
        case .q3:
            guard shape.count == 2, let sym = params.symmetric, let g = params.groupSize, g > 0, g <= 1 << 40, g % 8 == 0 else { return nil }
            self = .q3(Q3Layout(rows: shape[0], cols: shape[1], groupSize: g, symmetric: sym))
        case .q4k:
            guard shape.count == 2, let g = params.groupSize, g >= 2, g <= TensorEntry.maxGroupSize, g % 2 == 0,
                  let b = params.subBits, Q4KLayout.allowedSubBits.contains(b) else { return nil }
            self = .q4k(Q4KLayout(rows: shape[0], cols: shape[1], groupSize: g, subBits: b))
        case .q3s:
            guard shape.count == 2, let g = params.groupSize, g >= 8, g <= TensorEntry.maxGroupSize, g % 8 == 0,
                  let b = params.subBits, Q3SLayout.allowedSubBits.contains(b) else { return nil }
            self = .q3s(Q3SLayout(rows: shape[0], cols: shape[1], groupSize: g, subBits: b))
        case .csr, .bitmask:
            guard shape.count == 2, let nnz, nnz >= 0, nnz <= count,
                  let l = SparseLayout(encoding: encoding, rows: shape[0], cols: shape[1], params: params, nnz: nnz) else { return nil }
            self = .sparse(l)
        case .nm:
            guard shape.count == 2, let l = NMLayout(rows: shape[0], cols: shape[1], params: params) else { return nil }
            self = .nm(l)
        }
    }

    /// The encoding this layout stores.
    public var encoding: Encoding {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .q8: return .q8
        case .q4: return .q4
        case .q3: return .q3
        case .q4k: return .q4k
        case .q3s: return .q3s
        case let .sparse(l): return l.encoding
        case .nm: return .nm
        }
    }

    /// Output rows (the matrix view's first dimension).
    public var rows: Int { matrix.rows }

    /// Columns (values per row).
    public var cols: Int { matrix.cols }

    /// The matrix view's [rows, cols].
    private var matrix: (rows: Int, cols: Int) {
        switch self {
        case let .f32(rows, cols), let .f16(rows, cols): return (rows, cols)
        case let .q8(l): return (l.rows, l.cols)
        case let .q4(l): return (l.rows, l.cols)
        case let .q3(l): return (l.rows, l.cols)
        case let .q4k(l): return (l.rows, l.cols)
        case let .q3s(l): return (l.rows, l.cols)
        case let .sparse(l): return (l.rows, l.cols)
        case let .nm(l): return (l.rows, l.cols)
        }
    }

    /// Payload size in bytes.
    public var totalBytes: Int {
        switch self {
        case let .f32(rows, cols): return rows * cols * 4
        case let .f16(rows, cols): return rows * cols * 2
        case let .q8(l): return l.totalBytes
        case let .q4(l): return l.totalBytes
        case let .q3(l): return l.totalBytes
        case let .q4k(l): return l.totalBytes
        case let .q3s(l): return l.totalBytes
        case let .sparse(l): return l.totalBytes
        case let .nm(l): return l.totalBytes
        }
    }

    /// Writes row `r` as float32 to `out` (`cols` values), decoding only that row. The payload
    /// must be valid for the layout (its size checked and, for csr/bitmask/nm/q4/q3/q4k/q3s, its structure:
    /// `payloadStructureProblem` returned nil).
    /// - Precondition: `0 <= r < rows`.
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case let .f32(_, cols):
            for j in 0 ..< cols {
                out[j] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * (r * cols + j), as: UInt32.self)))
            }
        case let .f16(_, cols): edge_f16_to_f32_row(p.baseAddress! + 2 * r * cols, out, cols)
        case let .q8(l): l.decodeRow(r, p, into: out)
        case let .q4(l): l.decodeRow(r, p, into: out)
        case let .q3(l): l.decodeRow(r, p, into: out)
        case let .q4k(l): l.decodeRow(r, p, into: out)
        case let .q3s(l): l.decodeRow(r, p, into: out)
        case let .sparse(l): l.decodeRow(r, p, into: out)
        case let .nm(l): l.decodeRow(r, p, into: out)
        }
    }

    /// All values as float32, row-major (`rows * cols`). The payload must be valid (see `decodeRow`).
    public func decode(_ p: UnsafeRawBufferPointer) -> [Float] {
        let rows = self.rows, cols = self.cols
        var out = [Float](repeating: 0, count: rows * cols)
        switch self {
        case .f32:
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[0 ..< rows * cols * 4])) }
        case .f16:
            out.withUnsafeMutableBufferPointer { edge_f16_to_f32_row(p.baseAddress, $0.baseAddress, rows * cols) }
        default:
            out.withUnsafeMutableBufferPointer { o in
                for r in 0 ..< rows { decodeRow(r, p, into: o.baseAddress! + r * cols) }
            }
        }
        return out
    }
}

/// The stored values of a csr, bitmask or nm payload: f32, f16, or q8 (symmetric int8, or uint8
/// with a zero point) with one f32 scale (and u8 zero) per row. Shared by `SparseLayout` and `NMLayout`.
struct _StoredValues {
    let encoding: Encoding, symmetric: Bool
    let valueOffset: Int, scaleOffset: Int, zeroOffset: Int

    /// `value_encoding` and `symmetric` of `params` resolved: f32 or f16 without `symmetric`
    /// (symmetric is then false), q8 with it; nil for anything else.
    static func resolve(_ params: EncodingParams) -> (encoding: Encoding, symmetric: Bool)? {
        switch params.valueEncoding {
        case .f32?, .f16?: return params.symmetric == nil ? (params.valueEncoding!, false) : nil
        case .q8?: return params.symmetric.map { (.q8, $0) }
        default: return nil
        }
    }

    /// Scale and zero point of row `r` (1 and 0 unless q8).
    @inline(__always) func row(_ r: Int, _ p: UnsafeRawBufferPointer) -> (scale: Float, zero: Float) {
        let s: Float = encoding == .q8 ? Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: scaleOffset + 4 * r, as: UInt32.self))) : 1
        let z: Float = encoding == .q8 && !symmetric ? Float(p[zeroOffset + r]) : 0
        return (s, z)
    }

    /// Stored value `k`, with its row's `scale` and `zero`.
    @inline(__always) func value(_ k: Int, _ p: UnsafeRawBufferPointer, scale s: Float, zero z: Float) -> Float {
        switch encoding {
        case .f32: return Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: valueOffset + 4 * k, as: UInt32.self)))
        case .f16: return edge_f16_to_f32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: valueOffset + 2 * k, as: UInt16.self)))
        default:
            let b = p[valueOffset + k]
            return symmetric ? s * Float(Int8(bitPattern: b)) : s * (Float(b) - z)
        }
    }
}

extension Q8Layout {
    /// Writes row `r` of payload `p` as float32 to `out` (`cols` values): w = s*q (symmetric, int8)
    /// or s*(q - z) (asymmetric, uint8).
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        let s = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: scaleOffset + 4 * r, as: UInt32.self)))
        let q = r * cols
        if symmetric {
            for j in 0 ..< cols { out[j] = s * Float(Int8(bitPattern: p[q + j])) }
        } else {
            let z = Float(p[zeroOffset + r])
            for j in 0 ..< cols { out[j] = s * (Float(p[q + j]) - z) }
        }
    }
}

extension Q4Layout {
    /// Writes row `r` of payload `p` as float32 to `out` (`cols` values): w = s*(u - 8) (symmetric)
    /// or s*(u - z) (asymmetric), s and z those of the element's group.
    public func decodeRow(_ r: Int, _ p: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        let q = r * rowBytes
        for gi in 0 ..< groups {
            let k = r * groups + gi
            let s = edge_f16_to_f32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: scaleOffset + 2 * k, as: UInt16.self)))
            let z: Float = symmetric ? 8 : Float(p[zeroOffset + k])
            for j in gi * groupSize ..< min(cols, gi * groupSize + groupSize) {
                out[j] = s * (Float(q4Nibble(p, row: q, j)) - z)
            }
        }
    }
}

extension EncodedTensor {
    /// This tensor's resolved layout, or nil if its shape, params and nnz are not valid for its encoding.
    public var layout: PayloadLayout? { PayloadLayout(encoding: encoding, shape: shape, params: params, nnz: nnz) }
}

extension PayloadLayout {
    /// The first stored float of payload `p` that is NaN or infinite, described in one line
    /// ("value 12 is nan", "row 3 scale is inf"); nil when every stored value and scale is finite.
    /// Reads the float regions only (f32/f16 values, q8 and sparse per-row scales, sparse and N:M
    /// stored values), at memory speed: a runtime that computed with such a weight would print nan.
    /// q4 and q3 scales and q4k/q3s super-scales are checked by `groupedPayloadProblem`.
    public func nonFiniteProblem(_ p: UnsafeRawBufferPointer) -> String? {
        func f32(_ offset: Int, _ count: Int, _ what: String) -> String? {
            let words = UnsafeRawBufferPointer(rebasing: p[offset ..< offset + 4 * count])
            guard let i = firstNonFinite32(words, count) else { return nil }
            let v = Float(bitPattern: UInt32(littleEndian: words.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            return "\(what) \(i) is \(v)"
        }
        func f16(_ offset: Int, _ count: Int, _ what: String) -> String? {
            for i in 0 ..< count {
                let h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self))
                if h & 0x7C00 == 0x7C00 { return "\(what) \(i) is \(h & 0x3FF == 0 ? "inf" : "nan") (binary16 0x\(String(h, radix: 16)))" }
            }
            return nil
        }
        switch self {
        case let .f32(rows, cols): return f32(0, rows * cols, "value")
        case let .f16(rows, cols): return f16(0, rows * cols, "value")
        case let .q8(l): return f32(l.scaleOffset, l.rows, "row scale")
        case .q4, .q3, .q4k, .q3s: return nil
        case let .sparse(l):
            let values: String?
            switch l.valueEncoding {
            case .f32: values = f32(l.valueOffset, l.nnz, "stored value")
            case .f16: values = f16(l.valueOffset, l.nnz, "stored value")
            default: values = nil
            }
            return values ?? (l.valueEncoding == .q8 ? f32(l.scaleOffset, l.rows, "row scale") : nil)
        case let .nm(l):
            let count = l.rows * l.slotsPerRow
            let values: String?
            switch l.valueEncoding {
            case .f32: values = f32(l.valueOffset, count, "stored value")
            case .f16: values = f16(l.valueOffset, count, "stored value")
            default: values = nil
            }
            return values ?? (l.valueEncoding == .q8 ? f32(l.scaleOffset, l.rows, "row scale") : nil)
        }
    }
}

/// Index of the first binary32 in `words` (`count` little-endian values) whose exponent is all
/// ones (Inf or NaN), or nil. Checks 8 words per step before looking closer.
private func firstNonFinite32(_ words: UnsafeRawBufferPointer, _ count: Int) -> Int? {
    let exp: UInt32 = 0x7F80_0000
    var i = 0
    while i + 8 <= count {
        var any = false
        for k in 0 ..< 8 {
            let w = UInt32(littleEndian: words.loadUnaligned(fromByteOffset: 4 * (i + k), as: UInt32.self))
            any = any || (w & exp == exp)
        }
        if any { break }
        i += 8
    }
    while i < count {
        let w = UInt32(littleEndian: words.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        if w & exp == exp { return i }
        i += 1
    }
    return nil
}
