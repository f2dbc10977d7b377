import EdgeKernels
import Foundation

/// Dequantizers from ggml block formats to float32, following ggml's reference
/// `dequantize_row_*` (ggml-quants.c) block layouts and arithmetic order exactly, so results are
/// bit-identical to gguf-py's `gguf.quants.dequantize`. All multi-byte fields are little-endian.
///
/// Supported: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
public enum GGUFDequant {
    /// Whether `type` has a dequantizer here.
    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .f32, .f16, .bf16, .f64, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K:
            return true
        default:
            return false
        }
    }

    /// Dequantizes whole blocks of `type` from `src` into `dst`.
    /// - Precondition: `supports(type)`, `dst.count` is a multiple of `type.blockSize` and
    ///   `src.count == dst.count / type.blockSize * type.typeSize` (the GGUF parser guarantees both).
    /// - Complexity: O(n), no allocation.
    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) {
        precondition(dst.count % type.blockSize == 0, "value count is not a whole number of blocks")
        let nb = dst.count / type.blockSize
        precondition(src.count == nb * type.typeSize, "byte count does not match the value count")
        guard nb > 0, let s = src.baseAddress, let y = dst.baseAddress else { return }
        switch type {
        case .f32:
            for i in 0 ..< nb { y[i] = Float(bitPattern: UInt32(littleEndian: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f64:
            for i in 0 ..< nb { y[i] = Float(Double(bitPattern: UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .f16: edge_f16_to_f32_row(s, y, nb)
        case .bf16: edge_bf16_to_f32_row(s, y, nb)
        case .q4_0: q4_0(s, y, nb)
        case .q4_1: q4_1(s, y, nb)
        case .q5_0: q5_0(s, y, nb)
        case .q5_1: q5_1(s, y, nb)
        case .q8_0: q8_0(s, y, nb)
        case .q2_K: q2_K(s, y, nb)
        case .q3_K: q3_K(s, y, nb)
        case .q4_K: q4_K(s, y, nb)
        case .q5_K: q5_K(s, y, nb)
        case .q6_K: q6_K(s, y, nb)
        case .q8_K: q8_K(s, y, nb)
        default: preconditionFailure("no dequantizer for \(type.name)")
        }
    }

    // MARK: - Field readers

    @inline(__always) private static func half(_ p: UnsafeRawPointer, _ off: Int) -> Float {
        edge_f16_to_f32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self)))
    }

    @inline(__always) private static func byte(_ p: UnsafeRawPointer, _ off: Int) -> UInt8 {
        p.load(fromByteOffset: off, as: UInt8.self)
    }

    @inline(__always) private static func sbyte(_ p: UnsafeRawPointer, _ off: Int) -> Int8 {
        p.load(fromByteOffset: off, as: Int8.self)
    }

    // MARK: - 32-value blocks

    /// block_q4_0 (18 bytes): f16 d, u8 qs[16]; x[j] = (lo4(qs[j]) - 8) * d, x[j+16] = (hi4(qs[j]) - 8) * d.
    private static func q4_0(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 18, o = y + i * 32
            let d = half(b, 0)
            for j in 0 ..< 16 {
                let q = byte(b, 2 + j)
                o[j] = Float(Int(q & 0x0F) - 8) * d
                o[j + 16] = Float(Int(q >> 4) - 8) * d
            }
        }
    }

    /// block_q4_1 (20 bytes): f16 d, f16 m, u8 qs[16]; x = q * d + m.
    private static func q4_1(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 20, o = y + i * 32
            let d = half(b, 0), m = half(b, 2)
            for j in 0 ..< 16 {
                let q = byte(b, 4 + j)
                o[j] = Float(q & 0x0F) * d + m
                o[j + 16] = Float(q >> 4) * d + m
            }
        }
    }

    /// block_q5_0 (22 bytes): f16 d, u32 qh (bit j = 5th bit of value j), u8 qs[16]; x = (q - 16) * d.
    private static func q5_0(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 22, o = y + i * 32
            let d = half(b, 0)
            let qh = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            for j in 0 ..< 16 {
                let q = byte(b, 6 + j)
                let h0 = Int((qh >> UInt32(j)) << 4 & 0x10), h1 = Int((qh >> UInt32(j + 12)) & 0x10)
                o[j] = Float((Int(q & 0x0F) | h0) - 16) * d
                o[j + 16] = Float((Int(q >> 4) | h1) - 16) * d
            }
        }
    }

    /// block_q5_1 (24 bytes): f16 d, f16 m, u32 qh, u8 qs[16]; x = q * d + m.
    private static func q5_1(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 24, o = y + i * 32
            let d = half(b, 0), m = half(b, 2)
            let qh = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            for j in 0 ..< 16 {
                let q = byte(b, 8 + j)
                let h0 = Int((qh >> UInt32(j)) << 4 & 0x10), h1 = Int((qh >> UInt32(j + 12)) & 0x10)
                o[j] = Float(Int(q & 0x0F) | h0) * d + m
                o[j + 16] = Float(Int(q >> 4) | h1) * d + m
            }
        }
    }

    /// block_q8_0 (34 bytes): f16 d, i8 qs[32]; x = q * d.
    private static func q8_0(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 34, o = y + i * 32
            let d = half(b, 0)
            for j in 0 ..< 32 { o[j] = Float(sbyte(b, 2 + j)) * d }
        }
    }

    // MARK: - 256-value super-blocks (K-quants)

    /// The 6-bit scale and min of sub-block `j` (0..<8) from the 12 packed bytes at `q`
    /// (ggml's `get_scale_min_k4`): bytes 0-3 hold scales 0-3 (low 6 bits) and the top 2 bits of
    /// scales 4-7; bytes 4-7 likewise for the mins; bytes 8-11 the low 4 bits of scale/min 4-7.
    @inline(__always) private static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (Float, Float) {
        if j < 4 {
            return (Float(byte(q, j) & 63), Float(byte(q, j + 4) & 63))
        }
        let sc = (byte(q, j + 4) & 0x0F) | ((byte(q, j - 4) >> 6) << 4)
        let m = (byte(q, j + 4) >> 4) | ((byte(q, j) >> 6) << 4)
        return (Float(sc), Float(m))
    }

    /// block_q2_K (84 bytes): u8 scales[16] (lo4 scale, hi4 min), u8 qs[64] (2-bit), f16 d, f16 dmin.
    /// 16 sub-blocks of 16; x = d * sc * q - dmin * m.
    private static func q2_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 84
            var o = y + i * 256
            let d = half(b, 80), dmin = half(b, 82)
            var isc = 0
            for n in 0 ..< 2 {
                let q = b + 16 + 32 * n
                for shift in stride(from: 0, to: 8, by: 2) {
                    for half16 in 0 ..< 2 {
                        let sc = byte(b, isc)
                        isc += 1
                        let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                        for l in 0 ..< 16 {
                            o[l] = dl * Float((byte(q, l + 16 * half16) >> UInt8(shift)) & 3) - ml
                        }
                        o += 16
                    }
                }
            }
        }
    }

    /// block_q3_K (110 bytes): u8 hmask[32], u8 qs[64] (low 2 bits), u8 scales[12] (16 6-bit
    /// scales, offset 32), f16 d. x = d * (sc - 32) * (q2 - (hbit ? 0 : 4)).
    private static func q3_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        var scales = [Float](repeating: 0, count: 16)
        for i in 0 ..< nb {
            let b = s + i * 110
            let o = y + i * 256
            let d = half(b, 108)
            let sp = b + 96
            for k in 0 ..< 16 {
                let lo = k < 8 ? byte(sp, k) & 0x0F : byte(sp, k - 8) >> 4
                let hi = (byte(sp, 8 + k % 4) >> UInt8(2 * (k / 4))) & 3
                scales[k] = d * Float(Int(lo | hi << 4) - 32)
            }
            // Value e = 128 * n + 32 * shift + l: low bits (qs[32 n + l] >> 2 shift) & 3,
            // high bit (hmask[l] >> (4 n + shift)) & 1.
            for n in 0 ..< 2 {
                for shift in 0 ..< 4 {
                    let base = 128 * n + 32 * shift
                    let bit = UInt8(4 * n + shift)
                    for l in 0 ..< 32 {
                        let low = Int((byte(b, 32 + 32 * n + l) >> UInt8(2 * shift)) & 3)
                        let h = (byte(b, l) >> bit) & 1
                        let q = low - (h == 0 ? 4 : 0)
                        o[base + l] = scales[(base + l) / 16] * Float(q)
                    }
                }
            }
        }
    }

    /// block_q4_K (144 bytes): f16 d, f16 dmin, u8 scales[12] (8 6-bit scale/min pairs), u8 qs[128].
    /// 8 sub-blocks of 32; each 64 values share 32 bytes of qs (low nibbles first, then high).
    /// x = (d * sc) * q - (dmin * m).
    private static func q4_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 144
            let o = y + i * 256
            let d = half(b, 0), dmin = half(b, 2)
            let sc = b + 4
            for j in 0 ..< 4 {
                let (s1, m1) = scaleMin(2 * j, sc), (s2, m2) = scaleMin(2 * j + 1, sc)
                let d1 = d * s1, dm1 = dmin * m1, d2 = d * s2, dm2 = dmin * m2
                let q = b + 16 + 32 * j, oj = o + 64 * j
                for l in 0 ..< 32 {
                    let v = byte(q, l)
                    oj[l] = d1 * Float(v & 0x0F) - dm1
                    oj[l + 32] = d2 * Float(v >> 4) - dm2
                }
            }
        }
    }

    /// block_q5_K (176 bytes): f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128].
    /// Like Q4_K with a 5th bit per value from qh (bit 2j for the low nibbles of chunk j, 2j+1 for the high).
    private static func q5_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 176
            let o = y + i * 256
            let d = half(b, 0), dmin = half(b, 2)
            let sc = b + 4, qh = b + 16
            for j in 0 ..< 4 {
                let (s1, m1) = scaleMin(2 * j, sc), (s2, m2) = scaleMin(2 * j + 1, sc)
                let d1 = d * s1, dm1 = dmin * m1, d2 = d * s2, dm2 = dmin * m2
                let u1 = UInt8(1) << UInt8(2 * j), u2 = UInt8(2) << UInt8(2 * j)
                let q = b + 48 + 32 * j, oj = o + 64 * j
                for l in 0 ..< 32 {
                    let v = byte(q, l), h = byte(qh, l)
                    oj[l] = d1 * Float((v & 0x0F) + (h & u1 != 0 ? 16 : 0)) - dm1
                    oj[l + 32] = d2 * Float((v >> 4) + (h & u2 != 0 ? 16 : 0)) - dm2
                }
            }
        }
    }

    /// block_q6_K (210 bytes): u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), i8 scales[16], f16 d.
    /// Two halves of 128; in each, value 32 k + l takes ql[l + 32 (k & 1)] nibble k >> 1 and
    /// qh[l] bits 2k..2k+1; x = (d * scale[value / 16]) * (q - 32).
    private static func q6_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 210
            let d = half(b, 208)
            for n in 0 ..< 2 {
                let ql = b + 64 * n, qh = b + 128 + 32 * n, sc = b + 192 + 8 * n
                let o = y + i * 256 + 128 * n
                for l in 0 ..< 32 {
                    let isc = l / 16
                    let a = byte(ql, l), c = byte(ql, l + 32), h = byte(qh, l)
                    let q1 = Int((a & 0x0F) | ((h & 3) << 4)) - 32
                    let q2 = Int((c & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                    let q3 = Int((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                    let q4 = Int((c >> 4) | (((h >> 6) & 3) << 4)) - 32
                    o[l] = d * Float(sbyte(sc, isc)) * Float(q1)
                    o[l + 32] = d * Float(sbyte(sc, isc + 2)) * Float(q2)
                    o[l + 64] = d * Float(sbyte(sc, isc + 4)) * Float(q3)
                    o[l + 96] = d * Float(sbyte(sc, isc + 6)) * Float(q4)
                }
            }
        }
    }

    /// block_q8_K (292 bytes): f32 d, i8 qs[256], i16 bsums[16] (unused here); x = d * q.
    private static func q8_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ nb: Int) {
        for i in 0 ..< nb {
            let b = s + i * 292, o = y + i * 256
            let d = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(as: UInt32.self)))
            for j in 0 ..< 256 { o[j] = d * Float(sbyte(b, 4 + j)) }
        }
    }
}
