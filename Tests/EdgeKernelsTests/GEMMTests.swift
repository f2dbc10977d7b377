import EdgeKernels
import XCTest

/// Every matrix product at every level this CPU runs, against its `_ref` kernel and against a dense
/// double-precision product of the weights decoded in Swift, over odd shapes, inner row ranges and
/// misaligned pointers.
final class GEMMTests: XCTestCase {
    /// Calls `body(T, rows, cols, r0, r1)` for the whole sweep.
    private func sweep(cols: [Int] = Sweep.cols, rows rowCounts: [Int] = Sweep.rows, tokens: [Int] = Sweep.tokens,
                       _ body: (Int, Int, Int, Int, Int) -> Void) {
        for c in cols {
            for rows in rowCounts {
                for T in tokens {
                    for (r0, r1) in Sweep.rowRanges(rows) { body(T, rows, c, r0, r1) }
                }
            }
        }
    }

    func testMatvecF32() {
        var rng = TestRNG(seed: 1)
        let ran = forEachKernelLevel { level in
            for cols in Sweep.cols {
                for rows in Sweep.rows {
                    let wv = rng.floats(rows * cols), xv = rng.floats(cols)
                    let w = Misaligned(wv), x = Misaligned(xv)
                    for (r0, r1) in Sweep.rowRanges(rows) {
                        checkGEMM("matvec_f32", level: level, T: 1, rows: rows, cols: cols, r0: r0, r1: r1,
                                  expected: denseProduct(wv, xv, T: 1, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                                  run: { edge_matvec_f32(w.pointer, x.pointer, $0, rows, cols, r0, r1) },
                                  ref: { edge_matvec_f32_ref(w.pointer, x.pointer, $0, rows, cols, r0, r1) })
                    }
                }
            }
        }
        XCTAssertTrue(ran.contains("ref"))
    }

    func testMatmulF32() {
        var rng = TestRNG(seed: 2)
        forEachKernelLevel { level in
            sweep { T, rows, cols, r0, r1 in
                let wv = rng.floats(rows * cols), xv = rng.floats(T * cols)
                let w = Misaligned(wv), x = Misaligned(xv)
                checkGEMM("matmul_f32", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(wv, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_f32(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_matmul_f32_ref(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
            }
        }
    }

    /// Columns past one cache block (the drivers split at 1024) and uneven splits.
    func testMatmulAcrossColumnBlocks() {
        var rng = TestRNG(seed: 3)
        forEachKernelLevel { level in
            for cols in [1025, 2100] {
                let T = 6, rows = 5
                let wv = rng.floats(rows * cols), xv = rng.floats(T * cols)
                let w = Misaligned(wv), x = Misaligned(xv)
                checkGEMM("matmul_f32", level: level, T: T, rows: rows, cols: cols, r0: 1, r1: 5,
                          expected: denseProduct(wv, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_f32(w.pointer, x.pointer, $0, T, rows, cols, 1, 5) },
                          ref: { edge_matmul_f32_ref(w.pointer, x.pointer, $0, T, rows, cols, 1, 5) })
                let q = (0 ..< rows * cols).map { _ in UInt8(truncatingIfNeeded: rng.int(-127 ... 127)) }
                let scales = rng.floats(rows, 0.001, 0.02)
                let dense = (0 ..< rows * cols).map { scales[$0 / cols] * Float(Int8(bitPattern: q[$0])) }
                let wq = Misaligned(q.map { Int8(bitPattern: $0) }), s = Misaligned(scales)
                checkGEMM("matmul_q8_f32", level: level, T: T, rows: rows, cols: cols, r0: 0, r1: rows,
                          expected: denseProduct(dense, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_q8_f32(wq.pointer, s.pointer, nil, x.pointer, $0, T, rows, cols, 0, rows) },
                          ref: { edge_matmul_q8_f32_ref(wq.pointer, s.pointer, nil, x.pointer, $0, T, rows, cols, 0, rows) })
            }
        }
    }

    func testMatmulF16() {
        var rng = TestRNG(seed: 4)
        forEachKernelLevel { level in
            sweep { T, rows, cols, r0, r1 in
                let bits = (0 ..< rows * cols).map { _ in f16Bits(rng.float(-2, 2)) }
                let xv = rng.floats(T * cols)
                let w = Misaligned(bits), x = Misaligned(xv)
                checkGEMM("matmul_f16", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(bits.map(f16Value), xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_f16(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_matmul_f16_ref(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
            }
        }
    }

    func testMatmulQ8F32SymmetricAndAsymmetric() {
        var rng = TestRNG(seed: 5)
        forEachKernelLevel { level in
            sweep { T, rows, cols, r0, r1 in
                let bytes = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 255)) }
                let scales = rng.floats(rows, 0.001, 0.05), zeros = (0 ..< rows).map { _ in UInt8(rng.int(0 ... 255)) }
                let xv = rng.floats(T * cols)
                let wq = Misaligned(bytes.map { Int8(bitPattern: $0) }), s = Misaligned(scales), z = Misaligned(zeros)
                let x = Misaligned(xv)
                let sym = (0 ..< rows * cols).map { scales[$0 / cols] * Float(Int8(bitPattern: bytes[$0])) }
                checkGEMM("matmul_q8_f32 sym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(sym, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_q8_f32(wq.pointer, s.pointer, nil, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_matmul_q8_f32_ref(wq.pointer, s.pointer, nil, x.pointer, $0, T, rows, cols, r0, r1) })
                let asym = (0 ..< rows * cols).map { scales[$0 / cols] * Float(Int(bytes[$0]) - Int(zeros[$0 / cols])) }
                checkGEMM("matmul_q8_f32 asym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(asym, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_matmul_q8_f32(wq.pointer, s.pointer, z.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_matmul_q8_f32_ref(wq.pointer, s.pointer, z.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
            }
        }
    }

    /// Every level's quantizer is bit-identical to the reference, and the reference follows its spec:
    /// scale = max|x| / 127, q = round-half-even(x / scale).
    func testQuantizeRowQ8() {
        var rng = TestRNG(seed: 6)
        var inputs: [[Float]] = Sweep.cols.map { rng.floats($0, -3, 3) }
        inputs.append([0, 0, 0, 0, 0])                   // all zero: scale 0, q 0
        inputs.append([127, 0.5, -0.5, 1.5, 2.5, -127])  // exact ties at scale 1: half-even
        forEachKernelLevel { level in
            for x in inputs {
                let n = x.count
                let xb = Misaligned(x), q = Misaligned(repeating: Int8(99), count: n), qRef = Misaligned(repeating: Int8(99), count: n)
                var s: Float = -1, sRef: Float = -1
                edge_quantize_row_q8(xb.pointer, q.pointer, &s, n)
                edge_quantize_row_q8_ref(xb.pointer, qRef.pointer, &sRef, n)
                XCTAssertEqual(s, sRef, "[\(level)] n=\(n)")
                XCTAssertEqual(q.array, qRef.array, "[\(level)] n=\(n)")
                let amax = x.map(abs).max() ?? 0
                XCTAssertEqual(sRef, amax / 127, "n=\(n)")
                let inv: Float = sRef == 0 ? 0 : 1 / sRef
                let want = x.map { Int8(($0 * inv).rounded(.toNearestOrEven)) }
                XCTAssertEqual(qRef.array, want, "n=\(n)")
            }
        }
        let ties = Misaligned([Float](arrayLiteral: 127, 0.5, -0.5, 1.5, 2.5, -127)), q = Misaligned(repeating: Int8(0), count: 6)
        var s: Float = 0
        edge_quantize_row_q8_ref(ties.pointer, q.pointer, &s, 6)
        XCTAssertEqual(q.array, [127, 0, 0, 2, 2, -127])
    }

    func testMatmulQ8Q8IsExact() {
        var rng = TestRNG(seed: 7)
        forEachIntegerKernelForm { level in
            sweep { T, rows, cols, r0, r1 in
                let wq = (0 ..< rows * cols).map { _ in Int8(rng.int(-127 ... 127)) }
                let ws = rng.floats(rows, 0.001, 0.05)
                let xv = rng.floats(T * cols, -4, 4)
                var xq = [Int8](repeating: 0, count: T * cols), xs = [Float](repeating: 0, count: T)
                for t in 0 ..< T {
                    xv.withUnsafeBufferPointer { src in
                        xq.withUnsafeMutableBufferPointer { dst in
                            edge_quantize_row_q8_ref(src.baseAddress! + t * cols, dst.baseAddress! + t * cols, &xs[t], cols)
                        }
                    }
                }
                // Exact: ((float)isum * ws) * xs, as the header specifies.
                var exact = [Double](repeating: 0, count: T * rows), scale = exact
                for t in 0 ..< T {
                    for r in 0 ..< rows {
                        var isum: Int32 = 0
                        for k in 0 ..< cols { isum += Int32(wq[r * cols + k]) * Int32(xq[t * cols + k]) }
                        exact[t * rows + r] = Double((Float(isum) * ws[r]) * xs[t])
                        scale[t * rows + r] = max(abs(exact[t * rows + r]), 1e-20)
                    }
                }
                let w = Misaligned(wq), s = Misaligned(ws), x = Misaligned(xq), sx = Misaligned(xs)
                checkGEMM("matmul_q8_q8", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: (exact, scale), tolerance: Double(Tolerance.q8q8),
                          run: { edge_matmul_q8_q8(w.pointer, s.pointer, x.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_matmul_q8_q8_ref(w.pointer, s.pointer, x.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
            }
        }
    }

    /// Extreme int8 values: -127 * -127 everywhere (the largest products) stays exact.
    func testMatmulQ8Q8Extremes() {
        forEachKernelLevel { level in
            for cols in [1, 63, 64, 65, 257, 1000] {
                let rows = 5, T = 3
                let w = Misaligned([Int8](repeating: -127, count: rows * cols)), x = Misaligned([Int8](repeating: -127, count: T * cols))
                let s = Misaligned([Float](repeating: 1, count: rows)), sx = Misaligned([Float](repeating: 1, count: T))
                let y = Misaligned(repeating: Float(0), count: T * rows)
                edge_matmul_q8_q8(w.pointer, s.pointer, x.pointer, sx.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [Float](repeating: Float(127 * 127 * cols), count: T * rows), "[\(level)] cols=\(cols)")
            }
        }
    }

    func testMatmulQ4F32AllGroupSizes() {
        var rng = TestRNG(seed: 8)
        forEachKernelLevel { level in
            // The full sweep for the usual group size, a sample for the others (odd ones included:
            // the kernels accept any group size, the format only even ones).
            for groupSize in [32, 2, 8, 16, 64, 128, 3, 6] {
                let full = groupSize == 32
                sweep(cols: full ? Sweep.cols : [1, 3, 16, 17, 33, 65, 200, 257], rows: full ? Sweep.rows : [3, 13],
                      tokens: full ? Sweep.tokens : [1, 5]) { T, rows, cols, r0, r1 in
                    let groups = (cols + groupSize - 1) / groupSize, rowBytes = (cols + 1) / 2
                    let u = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 15)) }
                    var packed = [UInt8](repeating: 0, count: rows * rowBytes)
                    for r in 0 ..< rows {
                        for j in 0 ..< cols { packed[r * rowBytes + j / 2] |= j % 2 == 0 ? u[r * cols + j] : u[r * cols + j] << 4 }
                    }
                    let scales = (0 ..< rows * groups).map { _ in f16Bits(rng.float(0.001, 0.1)) }
                    let zeros = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 15)) }
                    let xv = rng.floats(T * cols)
                    let wq = Misaligned(packed), s = Misaligned(scales), z = Misaligned(zeros), x = Misaligned(xv)
                    for symmetric in [true, false] {
                        let dense = (0 ..< rows * cols).map { i -> Float in
                            let gi = (i / cols) * groups + (i % cols) / groupSize
                            return f16Value(scales[gi]) * Float(Int(u[i]) - (symmetric ? 8 : Int(zeros[gi])))
                        }
                        let zp = symmetric ? nil : UnsafePointer(z.pointer)
                        checkGEMM("matmul_q4_f32 g=\(groupSize) sym=\(symmetric)", level: level, T: T, rows: rows, cols: cols,
                                  r0: r0, r1: r1, expected: denseProduct(dense, xv, T: T, rows: rows, cols: cols),
                                  tolerance: Tolerance.gemm,
                                  run: { edge_matmul_q4_f32(wq.pointer, s.pointer, zp, groupSize, x.pointer, $0, T, rows, cols, r0, r1) },
                                  ref: { edge_matmul_q4_f32_ref(wq.pointer, s.pointer, zp, groupSize, x.pointer, $0, T, rows, cols, r0, r1) })
                    }
                }
            }
        }
    }

    /// Rows of 3-bit codes `u` ([rows, cols]) as the q3 payload packs them: each row a little-endian bit
    /// stream of ceil(3*cols/8) bytes, code j at bits 3j...3j+2.
    static func packQ3(_ u: [UInt8], rows: Int, cols: Int) -> [UInt8] {
        let rowBytes = (3 * cols + 7) / 8
        var packed = [UInt8](repeating: 0, count: rows * rowBytes)
        for r in 0 ..< rows {
            for j in 0 ..< cols {
                for b in 0 ..< 3 where u[r * cols + j] >> b & 1 == 1 {
                    let bit = 3 * j + b
                    packed[r * rowBytes + bit / 8] |= 1 << (bit % 8)
                }
            }
        }
        return packed
    }

    func testMatmulQ3F32AllGroupSizes() {
        var rng = TestRNG(seed: 10)
        forEachKernelLevel { level in
            // The full sweep for the usual group size, a sample for the others (every multiple of 8
            // the format allows up to 128, so groups start and end inside a 16-column block too).
            for groupSize in [32, 8, 16, 24, 64, 128] {
                let full = groupSize == 32
                sweep(cols: full ? Sweep.cols : [1, 3, 7, 8, 9, 16, 17, 33, 65, 200, 257], rows: full ? Sweep.rows : [1, 3, 13],
                      tokens: full ? Sweep.tokens : [1, 5]) { T, rows, cols, r0, r1 in
                    let groups = (cols + groupSize - 1) / groupSize
                    let u = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 7)) }
                    let packed = Self.packQ3(u, rows: rows, cols: cols)
                    let scales = (0 ..< rows * groups).map { _ in f16Bits(rng.float(0.001, 0.1)) }
                    let zeros = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 7)) }
                    let xv = rng.floats(T * cols)
                    let wq = Misaligned(packed), s = Misaligned(scales), z = Misaligned(zeros), x = Misaligned(xv)
                    for symmetric in [true, false] {
                        let dense = (0 ..< rows * cols).map { i -> Float in
                            let gi = (i / cols) * groups + (i % cols) / groupSize
                            return f16Value(scales[gi]) * Float(Int(u[i]) - (symmetric ? 4 : Int(zeros[gi])))
                        }
                        let zp = symmetric ? nil : UnsafePointer(z.pointer)
                        checkGEMM("matmul_q3_f32 g=\(groupSize) sym=\(symmetric)", level: level, T: T, rows: rows, cols: cols,
                                  r0: r0, r1: r1, expected: denseProduct(dense, xv, T: T, rows: rows, cols: cols),
                                  tolerance: Tolerance.gemm,
                                  run: { edge_matmul_q3_f32(wq.pointer, s.pointer, zp, groupSize, x.pointer, $0, T, rows, cols, r0, r1) },
                                  ref: { edge_matmul_q3_f32_ref(wq.pointer, s.pointer, zp, groupSize, x.pointer, $0, T, rows, cols, r0, r1) })
                    }
                }
            }
        }
    }

    /// A q3 group size that is not a positive multiple of 8 writes nothing (the format refuses it).
    func testMatmulQ3F32RefusesBadGroupSizes() {
        forEachKernelLevel { level in
            let rows = 2, cols = 16, T = 1
            let w = Misaligned([UInt8](repeating: 0xFF, count: rows * 6)), s = Misaligned([UInt16](repeating: f16Bits(1), count: rows * 4))
            let x = Misaligned([Float](repeating: 1, count: cols))
            for g in [0, 4, 12] {
                let y = Misaligned([Float](repeating: 7, count: rows))
                edge_matmul_q3_f32(w.pointer, s.pointer, nil, g, x.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [7, 7], "[\(level)] group \(g)")
                edge_matmul_q3_f32_ref(w.pointer, s.pointer, nil, g, x.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [7, 7], "ref group \(g)")
            }
        }
    }

    /// Token counts from the packed kernels' threshold (12) up, over rows that fill panels partly
    /// (16 rows on AVX2, 32 on AVX-512) and span packed row blocks (128), for every float-activation
    /// weight encoding, in both GEMM modes (packed and dot-product).
    func testPackedKernelShapes() {
        var rng = TestRNG(seed: 9)
        defer { _ = edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO) }
        for mode in [EDGE_GEMM_AUTO, EDGE_GEMM_DOT] {
            XCTAssertTrue(edge_kernels_set_gemm_mode(mode))
            let m = String(cString: edge_gemm_mode_name(mode))
            forEachKernelLevel { level in
                sweep(cols: [1, 17, 65, 300], rows: [1, 17, 33, 130], tokens: [12, 25]) { T, rows, cols, r0, r1 in
                    let xv = rng.floats(T * cols), wv = rng.floats(rows * cols)
                    let x = Misaligned(xv), w = Misaligned(wv)
                    checkGEMM("matmul_f32 \(m)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(wv, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_matmul_f32(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_matmul_f32_ref(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                    let bits = wv.map(f16Bits), wh = Misaligned(bits)
                    checkGEMM("matmul_f16 \(m)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(bits.map(f16Value), xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_matmul_f16(wh.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_matmul_f16_ref(wh.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                    let bytes = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 255)) }
                    let scales = rng.floats(rows, 0.001, 0.05), zeros = (0 ..< rows).map { _ in UInt8(rng.int(0 ... 255)) }
                    let wq = Misaligned(bytes.map { Int8(bitPattern: $0) }), s = Misaligned(scales), z = Misaligned(zeros)
                    let q8 = (0 ..< rows * cols).map { scales[$0 / cols] * Float(Int(bytes[$0]) - Int(zeros[$0 / cols])) }
                    checkGEMM("matmul_q8_f32 asym \(m)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(q8, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_matmul_q8_f32(wq.pointer, s.pointer, z.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_matmul_q8_f32_ref(wq.pointer, s.pointer, z.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                    let group = 32, groups = (cols + group - 1) / group, rowBytes = (cols + 1) / 2
                    let packed = (0 ..< rows * rowBytes).map { _ in UInt8(rng.int(0 ... 255)) }
                    let s4 = (0 ..< rows * groups).map { _ in f16Bits(rng.float(0.001, 0.1)) }
                    let q4 = (0 ..< rows * cols).map { i -> Float in
                        let r = i / cols, j = i % cols, b = packed[r * rowBytes + j / 2]
                        return f16Value(s4[r * groups + j / group]) * Float(Int(j % 2 == 0 ? b & 15 : b >> 4) - 8)
                    }
                    let w4 = Misaligned(packed), sc4 = Misaligned(s4)
                    checkGEMM("matmul_q4_f32 sym \(m)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(q4, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_matmul_q4_f32(w4.pointer, sc4.pointer, nil, group, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_matmul_q4_f32_ref(w4.pointer, sc4.pointer, nil, group, x.pointer, $0, T, rows, cols, r0, r1) })
                    let u3 = (0 ..< rows * cols).map { _ in UInt8(rng.int(0 ... 7)) }
                    let z3 = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 7)) }
                    let q3 = (0 ..< rows * cols).map { i -> Float in
                        let gi = (i / cols) * groups + (i % cols) / group
                        return f16Value(s4[gi]) * Float(Int(u3[i]) - Int(z3[gi]))
                    }
                    let w3 = Misaligned(Self.packQ3(u3, rows: rows, cols: cols)), zp3 = Misaligned(z3)
                    checkGEMM("matmul_q3_f32 asym \(m)", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(q3, xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_matmul_q3_f32(w3.pointer, sc4.pointer, zp3.pointer, group, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_matmul_q3_f32_ref(w3.pointer, sc4.pointer, zp3.pointer, group, x.pointer, $0, T, rows, cols, r0, r1) })
                }
            }
        }
    }

    /// cols == 0 gives zeros; an empty row range or T == 0 writes nothing.
    func testDegenerateShapes() {
        forEachKernelLevel { level in
            let w = Misaligned([Float](repeating: 1, count: 4)), x = Misaligned([Float](repeating: 1, count: 4))
            let y = Misaligned(repeating: Float(7), count: 6)
            edge_matmul_f32(w.pointer, x.pointer, y.pointer, 2, 3, 0, 0, 3)
            XCTAssertEqual(y.array, [0, 0, 0, 0, 0, 0], "[\(level)] cols=0")
            let y2 = Misaligned(repeating: Float(7), count: 6)
            edge_matmul_f32(w.pointer, x.pointer, y2.pointer, 2, 3, 1, 2, 2)
            edge_matmul_f32(w.pointer, x.pointer, y2.pointer, 0, 3, 1, 0, 3)
            XCTAssertEqual(y2.array, [7, 7, 7, 7, 7, 7], "[\(level)] empty range / T=0")
        }
    }
}
