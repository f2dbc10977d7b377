import EdgeKernels
import XCTest

/// edge_matmul_q3s_f32 (the q3s payload: 3-bit codes as q3's, per (row, group) a b-bit scale code and a
/// 3-bit zero point in a little-endian bit stream per row, per row a binary16 super-scale D; w = (D*sc)*(u - z))
/// at every level: against its `_ref` kernel and a dense double product of the weights decoded here in Swift
/// over odd shapes, inner row ranges and misaligned pointers; the weights every level unpacks bit-identical
/// to the decoded ones; the spec's worked example; the payload read in place; refused parameters; the kernel
/// names (no fused one-token kernel: the dot path, as q3's).
final class Q3SKernelTests: XCTestCase {
    /// The parts of a q3s weight, packed as the payload stores them (built here bit by bit), and the weights
    /// they stand for.
    struct Q3S {
        let rows: Int, cols: Int, group: Int, bits: Int
        /// Codes, rows of ceil(3*cols/8) bytes, each a little-endian bit stream (code j at bits 3j...3j+2).
        let codes: [UInt8]
        /// Per row ceil((b+3)*groups/8) bytes: group k's sc at bits (b+3)k..., its z at bits (b+3)k+b...
        let sub: [UInt8]
        /// Per row D (binary16).
        let superBits: [UInt16]
        /// w[r][j] = s * (u - z), s = D * sc (binary32; s and the product exact).
        let decoded: [Float]

        var groups: Int { (cols + group - 1) / group }
        var rowBytes: Int { (3 * cols + 7) / 8 }
        var subRowBytes: Int { ((bits + 3) * groups + 7) / 8 }

        init(rows: Int, cols: Int, group: Int, bits: Int, u: [UInt8], sc: [Int], z: [Int], D: [UInt16]) {
            self.rows = rows; self.cols = cols; self.group = group; self.bits = bits
            let groups = (cols + group - 1) / group, rowBytes = (3 * cols + 7) / 8, subRowBytes = ((bits + 3) * groups + 7) / 8
            /// Sets `width` bits of v at bit `bit` of a little-endian bit stream starting at stream[start].
            func put(_ stream: inout [UInt8], _ start: Int, _ bit: Int, _ width: Int, _ v: Int) {
                for b in 0 ..< width where v >> b & 1 == 1 { stream[start + (bit + b) / 8] |= 1 << ((bit + b) % 8) }
            }
            var codes = [UInt8](repeating: 0, count: rows * rowBytes)
            for r in 0 ..< rows {
                for j in 0 ..< cols { put(&codes, r * rowBytes, 3 * j, 3, Int(u[r * cols + j])) }
            }
            var sub = [UInt8](repeating: 0, count: rows * subRowBytes)
            for r in 0 ..< rows {
                for k in 0 ..< groups {
                    put(&sub, r * subRowBytes, (bits + 3) * k, bits, sc[r * groups + k])
                    put(&sub, r * subRowBytes, (bits + 3) * k + bits, 3, z[r * groups + k])
                }
            }
            var decoded = [Float](repeating: 0, count: rows * cols)
            for r in 0 ..< rows {
                for j in 0 ..< cols {
                    let k = r * groups + j / group
                    let s = f16Value(D[r]) * Float(sc[k])
                    decoded[r * cols + j] = s * Float(Int(u[r * cols + j]) - z[k])
                }
            }
            self.codes = codes; self.sub = sub; self.superBits = D; self.decoded = decoded
        }

        /// Random codes, scale codes below 2^bits, zero points and D in [0.0005, 0.01).
        static func random(rows: Int, cols: Int, group: Int, bits: Int, _ rng: inout TestRNG) -> Q3S {
            let groups = (cols + group - 1) / group, top = (1 << bits) - 1
            let u = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 7)) }
            let sc = (0 ..< rows * groups).map { _ in rng.int(0 ... top) }, z = (0 ..< rows * groups).map { _ in rng.int(0 ... 7) }
            let D = (0 ..< rows).map { _ in f16Bits(rng.float(0.0005, 0.01)) }
            return Q3S(rows: rows, cols: cols, group: group, bits: bits, u: u, sc: sc, z: z, D: D)
        }
    }

    /// Calls `body(T, rows, cols, r0, r1)` for the sweep.
    private func sweep(cols: [Int], rows rowCounts: [Int], tokens: [Int], _ body: (Int, Int, Int, Int, Int) -> Void) {
        for c in cols {
            for rows in rowCounts {
                for T in tokens {
                    for (r0, r1) in Sweep.rowRanges(rows) { body(T, rows, c, r0, r1) }
                }
            }
        }
    }

    /// The reference against the double product of the decoded weights (within Tolerance.gemm of the
    /// absolute sum), every level against the reference, for every group size the kernels see differently.
    func testMatmulQ3SF32AllGroupSizes() {
        var rng = TestRNG(seed: 61)
        forEachKernelLevel { level in
            // The full sweep for the usual group size, a sample for the others (8 and 24 start groups inside
            // a 16-column block; most do not divide cols, so the last group is short).
            for groupSize in [32, 8, 16, 24, 64] {
                for bits in [6, 8] {
                    let full = groupSize == 32
                    sweep(cols: full ? Sweep.cols : [1, 3, 7, 8, 9, 17, 33, 65, 200, 257], rows: full ? Sweep.rows : [1, 3, 13],
                          tokens: full ? Sweep.tokens : [1, 5, 12]) { T, rows, cols, r0, r1 in
                        let w = Q3S.random(rows: rows, cols: cols, group: groupSize, bits: bits, &rng)
                        let xv = rng.floats(T * cols)
                        let wq = Misaligned(w.codes), sub = Misaligned(w.sub), sup = Misaligned(w.superBits), x = Misaligned(xv)
                        checkGEMM("matmul_q3s_f32 g=\(groupSize) b=\(bits)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                  expected: denseProduct(w.decoded, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                                  run: { edge_matmul_q3s_f32(wq.pointer, sub.pointer, sup.pointer, groupSize, bits, x.pointer, $0, T, rows, cols, r0, r1) },
                                  ref: { edge_matmul_q3s_f32_ref(wq.pointer, sub.pointer, sup.pointer, groupSize, bits, x.pointer, $0, T, rows, cols, r0, r1) })
                    }
                }
            }
        }
    }

    /// The weights every level unpacks are the decoded ones, bit for bit: with X the identity (T = cols
    /// one-hot tokens) each output is one weight exactly, whatever the summation order; in both GEMM modes
    /// (the packed kernel from 12 tokens, the dot one below), across column blocks, with extreme values (D
    /// from +0 and subnormal to 65504, scale codes at 0 and the top, zero points 0 and 7, codes 0 and 7).
    func testUnpackedWeightsAreBitIdentical() {
        var rng = TestRNG(seed: 62)
        defer { _ = edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO) }
        let extremes: [UInt16] = [0x0000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF]  // +0, subnormals, min normal, 1, 65504
        for mode in [EDGE_GEMM_AUTO, EDGE_GEMM_DOT] {
            XCTAssertTrue(edge_kernels_set_gemm_mode(mode))
            forEachKernelLevel { level in
                for (cols, group) in [(1, 8), (3, 8), (16, 16), (17, 8), (33, 24), (65, 16), (200, 32), (257, 64), (300, 24), (1100, 32)] {
                    for bits in [6, 8] {
                        let rows = 9, groups = (cols + group - 1) / group, top = (1 << bits) - 1
                        // Random rows 0...5; rows 6...8: extreme D, codes and sub-codes at their ends.
                        var u = (0 ..< rows * cols).map { i in i % 7 == 0 ? UInt8(7) : UInt8(rng.int(0 ... 7)) }
                        var sc = (0 ..< rows * groups).map { _ in rng.int(0 ... top) }, z = (0 ..< rows * groups).map { _ in rng.int(0 ... 7) }
                        for i in 6 * groups ..< rows * groups where i % 2 == 0 { sc[i] = top; z[i] = i % 4 == 0 ? 7 : 0 }
                        for i in 6 * cols ..< 7 * cols { u[i] = i % 2 == 0 ? 7 : 0 }
                        var D = (0 ..< rows).map { _ in f16Bits(rng.float(0.0005, 0.01)) }
                        D[6] = extremes[rng.int(0 ... 5)]; D[7] = 0x7BFF; D[8] = 0x0001
                        let w = Q3S(rows: rows, cols: cols, group: group, bits: bits, u: u, sc: sc, z: z, D: D)
                        var eye = [Float](repeating: 0, count: cols * cols)
                        for t in 0 ..< cols { eye[t * cols + t] = 1 }
                        let wq = Misaligned(w.codes), sub = Misaligned(w.sub), sup = Misaligned(w.superBits), x = Misaligned(eye)
                        for (r0, r1) in [(0, rows), (1, rows - 1)] {
                            for ref in [false, true] {
                                let y = Misaligned(repeating: Float(12345.5), count: cols * rows)
                                (ref ? edge_matmul_q3s_f32_ref : edge_matmul_q3s_f32)(wq.pointer, sub.pointer, sup.pointer, group, bits,
                                                                                      x.pointer, y.pointer, cols, rows, cols, r0, r1)
                                let got = y.array
                                var bad = 0
                                for t in 0 ..< cols {
                                    for r in 0 ..< rows {
                                        let want = r >= r0 && r < r1 ? w.decoded[r * cols + t] : 12345.5
                                        if got[t * rows + r] != want && bad < 3 {
                                            bad += 1
                                            XCTFail("q3s unpacked [\(ref ? "ref" : level) \(String(cString: edge_gemm_mode_name(mode)))] cols=\(cols) g=\(group) b=\(bits) r=\(r) j=\(t): \(got[t * rows + r]) vs \(want)")
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The spec's example: [1, 10], g = 8, b = 6, u = 0...7, 7, 5, sc = [2, 63], z = [3, 7], D = 0.5. The bytes
    /// built here are the spec's (codes 88 c6 fa 2f, sub row c2 fe 03, D 00 38), and every level gives the
    /// weights -3...4 (group 0: s = 1), 0 and -63 (group 1: s = 31.5), and their sum against ones.
    func testSpecExample() {
        let w = Q3S(rows: 1, cols: 10, group: 8, bits: 6, u: [0, 1, 2, 3, 4, 5, 6, 7, 7, 5], sc: [2, 63], z: [3, 7], D: [f16Bits(0.5)])
        XCTAssertEqual(w.codes, [0x88, 0xC6, 0xFA, 0x2F])
        XCTAssertEqual(w.sub, [0xC2, 0xFE, 0x03])
        XCTAssertEqual(w.superBits, [0x3800])
        let weights: [Float] = [-3, -2, -1, 0, 1, 2, 3, 4, 0, -63]
        XCTAssertEqual(w.decoded, weights)
        // The spec's bytes as given, not the builder's.
        let wq = Misaligned([UInt8]([0x88, 0xC6, 0xFA, 0x2F])), sub = Misaligned([UInt8]([0xC2, 0xFE, 0x03]))
        let sup = Misaligned([UInt16(0x3800)])
        var eye = [Float](repeating: 0, count: 100)
        for t in 0 ..< 10 { eye[t * 10 + t] = 1 }
        let x = Misaligned(eye + [Float](repeating: 1, count: 10))  // 10 one-hot tokens, then all ones
        let ran = forEachKernelLevel { level in
            for ref in [false, true] {
                let y = Misaligned(repeating: Float(12345.5), count: 11)
                (ref ? edge_matmul_q3s_f32_ref : edge_matmul_q3s_f32)(wq.pointer, sub.pointer, sup.pointer, 8, 6, x.pointer, y.pointer,
                                                                      11, 1, 10, 0, 1)
                XCTAssertEqual(y.array, weights + [-59], "[\(ref ? "ref" : level)]")
            }
        }
        XCTAssertTrue(ran.contains("ref"))
    }

    /// The payload read in place: codes, sub-code streams, D per row in one buffer (sub and super at the
    /// 64-byte-aligned offsets after the previous part), the kernel given base + offset.
    func testPayloadInPlace() {
        var rng = TestRNG(seed: 63)
        func align64(_ n: Int) -> Int { (n + 63) & ~63 }
        forEachKernelLevel { level in
            for (rows, cols, group, bits) in [(6, 77, 32, 6), (5, 45, 8, 8), (3, 257, 24, 6), (4, 2100, 64, 8)] {
                let w = Q3S.random(rows: rows, cols: cols, group: group, bits: bits, &rng)
                let subOffset = align64(rows * w.rowBytes), superOffset = align64(subOffset + rows * w.subRowBytes)
                var bytes = [UInt8](repeating: 0, count: superOffset + 2 * rows)
                bytes.replaceSubrange(0 ..< w.codes.count, with: w.codes)
                bytes.replaceSubrange(subOffset ..< subOffset + w.sub.count, with: w.sub)
                for (i, h) in w.superBits.enumerated() {
                    bytes[superOffset + 2 * i] = UInt8(h & 0xFF)
                    bytes[superOffset + 2 * i + 1] = UInt8(h >> 8)
                }
                let base = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
                defer { base.deallocate() }
                base.copyMemory(from: bytes, byteCount: bytes.count)
                let T = 5, xv = rng.floats(T * cols), x = Misaligned(xv)
                let wq = base.assumingMemoryBound(to: UInt8.self), sub = (base + subOffset).assumingMemoryBound(to: UInt8.self)
                let sup = (base + superOffset).assumingMemoryBound(to: UInt16.self)
                checkGEMM("q3s in place g=\(group) b=\(bits)", level: level, T: T, rows: rows, cols: cols, r0: 0, r1: rows,
                          expected: denseProduct(w.decoded, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_q3s_f32(wq, sub, sup, group, bits, x.pointer, $0, T, rows, cols, 0, rows) },
                          ref: { edge_matmul_q3s_f32_ref(wq, sub, sup, group, bits, x.pointer, $0, T, rows, cols, 0, rows) })
            }
        }
    }

    /// A group size of 0 or not a multiple of 8, or sub_bits other than 6 or 8, writes nothing.
    func testRefusesBadParameters() {
        forEachKernelLevel { level in
            let rows = 2, cols = 16, T = 1
            let w = Misaligned([UInt8](repeating: 0x77, count: rows * 6)), sub = Misaligned([UInt8](repeating: 0xFF, count: rows * 8))
            let sup = Misaligned([UInt16](repeating: f16Bits(1), count: rows)), x = Misaligned([Float](repeating: 1, count: cols))
            for (g, b) in [(0, 6), (0, 8), (4, 6), (12, 8), (7, 6), (20, 8), (8, 0), (8, 4), (16, 5), (16, 7), (32, 9), (32, 16)] {
                let y = Misaligned([Float](repeating: 7, count: rows))
                edge_matmul_q3s_f32(w.pointer, sub.pointer, sup.pointer, g, b, x.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [7, 7], "[\(level)] group \(g) bits \(b)")
                edge_matmul_q3s_f32_ref(w.pointer, sub.pointer, sup.pointer, g, b, x.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [7, 7], "ref group \(g) bits \(b)")
            }
        }
    }

    /// EDGE_GEMM_OP_Q3S_F32 names q3's kernels: the dot one for one token (no fused kernel), the packed one
    /// from the level's threshold; "ref" for the scalar level.
    func testKernelNames() {
        defer { _ = edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO) }
        for mode in [EDGE_GEMM_AUTO, EDGE_GEMM_DOT] {
            XCTAssertTrue(edge_kernels_set_gemm_mode(mode))
            for level in allKernelLevels where edge_kernels_available(level) {
                for T in [1, 2, 11, 12, 1000] {
                    guard let q3s = edge_kernels_gemm_name(level, EDGE_GEMM_OP_Q3S_F32, T),
                          let q3 = edge_kernels_gemm_name(level, EDGE_GEMM_OP_Q3_F32, T),
                          let f32 = edge_kernels_gemm_name(level, EDGE_GEMM_OP_F32, 2) else {
                        XCTFail("[\(levelName(level))] T=\(T): no name"); continue
                    }
                    XCTAssertEqual(String(cString: q3s), String(cString: q3), "[\(levelName(level))] T=\(T)")
                    if T == 1 { XCTAssertEqual(String(cString: q3s), String(cString: f32), "[\(levelName(level))] one token: the dot kernel") }
                }
            }
            XCTAssertEqual(String(cString: edge_kernels_gemm_name(EDGE_KERNELS_REF, EDGE_GEMM_OP_Q3S_F32, 1)), "ref")
        }
    }
}
