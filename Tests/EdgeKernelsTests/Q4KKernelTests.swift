import EdgeKernels
import XCTest

/// edge_matmul_q4k_f32 (the q4k payload: 4-bit codes as q4's, per (row, group) b-bit scale and min codes
/// in a little-endian bit stream per row, per row binary16 D and M; w = (D*sc)*u - M*mn) at every level:
/// against its `_ref` kernel and a dense double product of the weights decoded here in Swift over odd
/// shapes, inner row ranges and misaligned pointers; the weights every level unpacks bit-identical to the
/// decoded ones; the payload read in place at the spec's offsets; refused parameters.
final class Q4KKernelTests: XCTestCase {
    /// The parts of a q4k weight, packed as the payload stores them, and the weights they stand for.
    struct Q4K {
        let rows: Int, cols: Int, group: Int, bits: Int
        /// Codes, rows of ceil(cols/2) bytes (element j in byte j/2, low nibble for even j).
        let codes: [UInt8]
        /// Per row ceil(2*b*groups/8) bytes: group k's sc at bits 2bk..., its mn at bits 2bk+b...
        let sub: [UInt8]
        /// Per row D then M (binary16).
        let superBits: [UInt16]
        /// w[r][j] = d * u - m, d = D * sc, m = M * mn (binary32; d, m and d * u exact).
        let decoded: [Float]

        var groups: Int { (cols + group - 1) / group }
        var rowBytes: Int { (cols + 1) / 2 }
        var subRowBytes: Int { (2 * bits * groups + 7) / 8 }

        init(rows: Int, cols: Int, group: Int, bits: Int, u: [UInt8], sc: [Int], mn: [Int], D: [UInt16], M: [UInt16]) {
            self.rows = rows; self.cols = cols; self.group = group; self.bits = bits
            let groups = (cols + group - 1) / group, rowBytes = (cols + 1) / 2, subRowBytes = (2 * bits * groups + 7) / 8
            var codes = [UInt8](repeating: 0, count: rows * rowBytes)
            for r in 0 ..< rows {
                for j in 0 ..< cols { codes[r * rowBytes + j / 2] |= j % 2 == 0 ? u[r * cols + j] : u[r * cols + j] << 4 }
            }
            var sub = [UInt8](repeating: 0, count: rows * subRowBytes)
            func put(_ r: Int, _ bit: Int, _ v: Int) {
                for b in 0 ..< bits where v >> b & 1 == 1 { sub[r * subRowBytes + (bit + b) / 8] |= 1 << ((bit + b) % 8) }
            }
            for r in 0 ..< rows {
                for k in 0 ..< groups {
                    put(r, 2 * bits * k, sc[r * groups + k])
                    put(r, 2 * bits * k + bits, mn[r * groups + k])
                }
            }
            var superBits = [UInt16]()
            for r in 0 ..< rows { superBits += [D[r], M[r]] }
            var decoded = [Float](repeating: 0, count: rows * cols)
            for r in 0 ..< rows {
                for j in 0 ..< cols {
                    let k = j / group
                    let d = f16Value(D[r]) * Float(sc[r * groups + k]), m = f16Value(M[r]) * Float(mn[r * groups + k])
                    decoded[r * cols + j] = d * Float(u[r * cols + j]) - m
                }
            }
            self.codes = codes; self.sub = sub; self.superBits = superBits; self.decoded = decoded
        }

        /// Random codes, sub-codes below 2^bits and super values (D in [0.0005, 0.01), M in [0, 0.05),
        /// M = +0 on every fifth row).
        static func random(rows: Int, cols: Int, group: Int, bits: Int, _ rng: inout TestRNG) -> Q4K {
            let groups = (cols + group - 1) / group, top = (1 << bits) - 1
            let u = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 15)) }
            let sc = (0 ..< rows * groups).map { _ in rng.int(0 ... top) }, mn = (0 ..< rows * groups).map { _ in rng.int(0 ... top) }
            let D = (0 ..< rows).map { _ in f16Bits(rng.float(0.0005, 0.01)) }
            let M = (0 ..< rows).map { r in r % 5 == 4 ? 0 : f16Bits(rng.float(0, 0.05)) }
            return Q4K(rows: rows, cols: cols, group: group, bits: bits, u: u, sc: sc, mn: mn, D: D, M: M)
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

    func testMatmulQ4KF32AllGroupSizes() {
        var rng = TestRNG(seed: 41)
        forEachKernelLevel { level in
            // The full sweep for the usual group size, a sample for the others (odd ones included: the
            // kernels accept any group size > 0, the format only even ones; 6 and 10 start groups inside
            // vectors, so the unpackers get short runs).
            for groupSize in [32, 2, 6, 10, 16, 64, 128, 3, 7] {
                for bits in [6, 8] {
                    let full = groupSize == 32
                    sweep(cols: full ? Sweep.cols : [1, 3, 16, 17, 33, 65, 200, 257], rows: full ? Sweep.rows : [3, 13],
                          tokens: full ? Sweep.tokens : [1, 5, 12]) { T, rows, cols, r0, r1 in
                        let w = Q4K.random(rows: rows, cols: cols, group: groupSize, bits: bits, &rng)
                        let xv = rng.floats(T * cols)
                        let wq = Misaligned(w.codes), sub = Misaligned(w.sub), sup = Misaligned(w.superBits), x = Misaligned(xv)
                        checkGEMM("matmul_q4k_f32 g=\(groupSize) b=\(bits)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                  expected: denseProduct(w.decoded, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                                  run: { edge_matmul_q4k_f32(wq.pointer, sub.pointer, sup.pointer, groupSize, bits, x.pointer, $0, T, rows, cols, r0, r1) },
                                  ref: { edge_matmul_q4k_f32_ref(wq.pointer, sub.pointer, sup.pointer, groupSize, bits, x.pointer, $0, T, rows, cols, r0, r1) })
                    }
                }
            }
        }
    }

    /// The weights every level unpacks are the decoded ones, bit for bit: with X the identity (T = cols
    /// one-hot tokens) each output is one weight exactly, whatever the summation order (every other
    /// term is an exact zero); in both GEMM modes (the packed kernel from 12 tokens, the dot one below),
    /// across column blocks, with extreme super values (D, M from +0 and subnormal to 65504, codes at 0
    /// and the top).
    func testUnpackedWeightsAreBitIdentical() {
        var rng = TestRNG(seed: 42)
        defer { _ = edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO) }
        let extremes: [UInt16] = [0x0000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF]  // +0, subnormals, min normal, 1, 65504
        for mode in [EDGE_GEMM_AUTO, EDGE_GEMM_DOT] {
            XCTAssertTrue(edge_kernels_set_gemm_mode(mode))
            forEachKernelLevel { level in
                for (cols, group) in [(1, 32), (3, 2), (16, 32), (17, 6), (33, 10), (65, 16), (200, 32), (257, 64), (300, 7), (1100, 32)] {
                    for bits in [6, 8] {
                        let rows = 9, groups = (cols + group - 1) / group, top = (1 << bits) - 1
                        // Random rows 0...5; rows 6...8: extreme super values, codes and sub-codes at their ends.
                        var u = (0 ..< rows * cols).map { i in i % 7 == 0 ? UInt8(15) : UInt8(rng.int(0 ... 15)) }
                        var sc = (0 ..< rows * groups).map { _ in rng.int(0 ... top) }, mn = (0 ..< rows * groups).map { _ in rng.int(0 ... top) }
                        for i in 6 * groups ..< rows * groups where i % 2 == 0 { sc[i] = top; mn[i] = i % 4 == 0 ? top : 0 }
                        for i in 6 * cols ..< 7 * cols { u[i] = i % 2 == 0 ? 15 : 0 }
                        var D = (0 ..< rows).map { _ in f16Bits(rng.float(0.0005, 0.01)) }, M = (0 ..< rows).map { _ in f16Bits(rng.float(0, 0.05)) }
                        D[6] = extremes[rng.int(0 ... 5)]; M[6] = 0x7BFF
                        D[7] = 0x7BFF; M[7] = extremes[rng.int(0 ... 5)]
                        D[8] = 0x0001; M[8] = 0x0001
                        let w = Q4K(rows: rows, cols: cols, group: group, bits: bits, u: u, sc: sc, mn: mn, D: D, M: M)
                        var eye = [Float](repeating: 0, count: cols * cols)
                        for t in 0 ..< cols { eye[t * cols + t] = 1 }
                        let wq = Misaligned(w.codes), sub = Misaligned(w.sub), sup = Misaligned(w.superBits), x = Misaligned(eye)
                        for (r0, r1) in [(0, rows), (1, rows - 1)] {
                            for ref in [false, true] {
                                let y = Misaligned(repeating: Float(12345.5), count: cols * rows)
                                (ref ? edge_matmul_q4k_f32_ref : edge_matmul_q4k_f32)(wq.pointer, sub.pointer, sup.pointer, group, bits,
                                                                                      x.pointer, y.pointer, cols, rows, cols, r0, r1)
                                let got = y.array
                                var bad = 0
                                for t in 0 ..< cols {
                                    for r in 0 ..< rows {
                                        let want = r >= r0 && r < r1 ? w.decoded[r * cols + t] : 12345.5
                                        if got[t * rows + r] != want && bad < 3 {
                                            bad += 1
                                            XCTFail("q4k unpacked [\(ref ? "ref" : level) \(String(cString: edge_gemm_mode_name(mode)))] cols=\(cols) g=\(group) b=\(bits) r=\(r) j=\(t): \(got[t * rows + r]) vs \(want)")
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

    /// The payload read in place: codes, pad to 64, the sub-code streams, pad to 64, (D, M) per row, in one
    /// 64-byte-aligned buffer as the reader maps it, the kernel given the spec's offsets.
    func testPayloadInPlace() {
        var rng = TestRNG(seed: 43)
        func align64(_ n: Int) -> Int { (n + 63) & ~63 }
        forEachKernelLevel { level in
            for (rows, cols, group, bits) in [(6, 77, 32, 6), (5, 45, 10, 8), (3, 257, 32, 6), (4, 2100, 64, 8)] {
                let w = Q4K.random(rows: rows, cols: cols, group: group, bits: bits, &rng)
                let subOffset = align64(rows * w.rowBytes), superOffset = align64(subOffset + rows * w.subRowBytes)
                var bytes = [UInt8](repeating: 0, count: superOffset + 4 * rows)
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
                checkGEMM("q4k in place g=\(group) b=\(bits)", level: level, T: T, rows: rows, cols: cols, r0: 0, r1: rows,
                          expected: denseProduct(w.decoded, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_q4k_f32(wq, sub, sup, group, bits, x.pointer, $0, T, rows, cols, 0, rows) },
                          ref: { edge_matmul_q4k_f32_ref(wq, sub, sup, group, bits, x.pointer, $0, T, rows, cols, 0, rows) })
            }
        }
    }

    /// A group size of 0, or sub_bits other than 6 or 8, writes nothing.
    func testRefusesBadParameters() {
        forEachKernelLevel { level in
            let rows = 2, cols = 16, T = 1
            let w = Misaligned([UInt8](repeating: 0x77, count: rows * 8)), sub = Misaligned([UInt8](repeating: 0xFF, count: rows * 16))
            let sup = Misaligned([UInt16](repeating: f16Bits(1), count: rows * 2)), x = Misaligned([Float](repeating: 1, count: cols))
            for (g, b) in [(0, 6), (0, 8), (32, 0), (32, 4), (32, 7), (32, 9), (32, 16)] {
                let y = Misaligned([Float](repeating: 7, count: rows))
                edge_matmul_q4k_f32(w.pointer, sub.pointer, sup.pointer, g, b, x.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [7, 7], "[\(level)] group \(g) bits \(b)")
                edge_matmul_q4k_f32_ref(w.pointer, sub.pointer, sup.pointer, g, b, x.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [7, 7], "ref group \(g) bits \(b)")
            }
        }
    }
}
