import EdgeKernels
import XCTest

/// bitmask payloads of symmetric q8 values x int16 activations (`edge_spmm_bitmask_q8_i16`, the
/// decoding kernel of the pruned int8 files): every level bit-identical to the reference, and the
/// reference bit-identical to the dense `edge_matmul_q8_i16_ref` of the same weights (zeros where a
/// mask bit is clear), over odd shapes and densities from empty to full.
final class BitmaskI16Tests: XCTestCase {
    static let cols = [1, 7, 16, 17, 33, 255, 256, 257, 576, 1001]
    static let rows = [1, 3, 8, 37]
    static let tokens = [1, 2, 4, 5, 9]

    func testBitmaskQ8I16() {
        var rng = TestRNG(seed: 45)
        let levels = forEachKernelLevel { level in
            for density in [0.0, 0.3, 0.5, 1.0] {
                for cols in Self.cols {
                    for rows in Self.rows {
                        for T in Self.tokens where rows * cols * T < 150_000 {
                            let mb = (cols + 7) / 8, ld = edge_i16_stride(cols), nb = (cols + 255) / 256
                            var mask = [UInt8](repeating: 0, count: rows * mb), rowPtr: [UInt32] = [0]
                            var values: [Int8] = [], dense = [Int8](repeating: 0, count: rows * cols)
                            for r in 0 ..< rows {
                                for k in 0 ..< cols where Double(rng.int(0 ... 999)) < density * 1000 {
                                    mask[r * mb + k / 8] |= UInt8(1 << (k % 8))
                                    let w = Int8(rng.int(-127 ... 127))
                                    values.append(w)
                                    dense[r * cols + k] = w
                                }
                                rowPtr.append(UInt32(values.count))
                            }
                            let scale = rng.floats(rows, 0.001, 0.05)
                            let x = (0 ..< T * cols).map { k in rng.float(-1, 1) * Float(1 + (k / 256) % 3 * 9) }
                            var xq = [Int16](repeating: 0, count: T * ld), xs = [Float](repeating: 0, count: T * nb)
                            edge_quantize_rows_i16_ref(x, &xq, &xs, T, cols)
                            // Exactly the dense product of the same weights.
                            var want = [Float](repeating: 0, count: T * rows), got = want
                            edge_matmul_q8_i16_ref(dense, scale, xq, xs, &want, T, rows, cols, 0, rows)
                            edge_spmm_bitmask_q8_i16_ref(mask, rowPtr, values, scale, xq, xs, &got, T, rows, cols, 0, rows)
                            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "ref vs dense: density \(density) rows \(rows) cols \(cols) T \(T)")
                            let wf = (0 ..< rows * cols).map { Float(dense[$0]) * scale[$0 / cols] }
                            let xf = (0 ..< T * cols).map { i in Float(xq[(i / cols) * ld + i % cols]) * xs[(i / cols) * nb + (i % cols) / 256] }
                            let expected = denseProduct(wf, xf, T: T, rows: rows, cols: cols)
                            let m = Misaligned(mask), p = Misaligned(rowPtr), v = Misaligned(values.isEmpty ? [0] : values)
                            let s = Misaligned(scale), xb = Misaligned(xq), sx = Misaligned(xs)
                            for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                                checkGEMM("spmm_bitmask_q8_i16 d\(density)", level: level, T: T, rows: rows, cols: cols,
                                          r0: r0, r1: r1, expected: expected, tolerance: 0,
                                          run: { edge_spmm_bitmask_q8_i16(m.pointer, p.pointer, v.pointer, s.pointer, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                          ref: { edge_spmm_bitmask_q8_i16_ref(m.pointer, p.pointer, v.pointer, s.pointer, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                            }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }

    /// The AVX-512 level runs the vpexpandb kernel where the CPU has AVX512_VBMI2 (and its vpdpwssd
    /// form with VNNI), AVX2's kernel otherwise.
    func testKernelNames() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        defer { edge_kernels_force(EDGE_KERNELS_AUTO) }
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_REF))
        XCTAssertEqual(String(cString: edge_kernels_bitmask_q8_i16_name()), "ref")
        if edge_kernels_force(EDGE_KERNELS_AVX2) {
            XCTAssertEqual(String(cString: edge_kernels_bitmask_q8_i16_name()), "avx2-bitmask-i16")
        }
        if edge_kernels_force(EDGE_KERNELS_AVX512) {
            let name = String(cString: edge_kernels_bitmask_q8_i16_name())
            if flags.contains("avx512_vbmi2") {
                XCTAssertEqual(name, edge_kernels_uses_vnni() ? "avx512-vbmi2-vnni-bitmask-i16" : "avx512-vbmi2-bitmask-i16")
            } else {
                XCTAssertEqual(name, "avx2-bitmask-i16")
            }
        }
    }
}
