import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// `Linear` over csr and bitmask payloads gives the outputs and rows of the same values stored dense.
final class SparseLinearTests: XCTestCase {
    /// Deterministic values in -1...1 with about `sparsity` zeros; row 1 empty when there are 3+ rows.
    private func values(rows: Int, cols: Int, sparsity: Double, seed: UInt64) -> [Float] {
        var r = XorShiftRandom(seed)
        return (0 ..< rows * cols).map { i in
            let zero = Double(r.next() % 1000) / 1000 < sparsity || (rows >= 3 && i / cols == 1)
            let v = r.float(-1, 1)
            return zero ? 0 : v
        }
    }

    private func q8(_ w: [Float], rows: Int, cols: Int, symmetric: Bool) -> EncodedTensor {
        var q = [UInt8](repeating: 0, count: rows * cols), scales = [Float](), zeros = [UInt8]()
        for r in 0 ..< rows {
            let row = w[r * cols ..< (r + 1) * cols]
            let s = (row.map(abs).max() ?? 0) / 127
            scales.append(s)
            zeros.append(symmetric ? 0 : 128)
            for j in 0 ..< cols {
                let c = s > 0 ? Int((w[r * cols + j] / s).rounded()) : 0
                q[r * cols + j] = symmetric ? UInt8(bitPattern: Int8(c)) : UInt8(c + 128)
            }
        }
        return .q8(name: "w", rows: rows, cols: cols, q: q, scales: scales, zeros: symmetric ? nil : zeros)
    }

    func testSparseLinearMatchesDense() throws {
        var seed: UInt64 = 5
        for (rows, cols) in [(1, 1), (5, 17), (13, 64), (40, 300), (33, 1100)] {
            for sparsity in [0.0, 0.5, 0.9, 1.0] {
                seed += 1
                let w = values(rows: rows, cols: cols, sparsity: sparsity, seed: seed)
                let dense: [EncodedTensor] = [.f32(name: "w", shape: [rows, cols], values: w), .f16(name: "w", shape: [rows, cols], values: w),
                                              q8(w, rows: rows, cols: cols, symmetric: true), q8(w, rows: rows, cols: cols, symmetric: false)]
                for d in dense {
                    let base = try Linear(name: "w", source: .encoded(d))
                    // Dense symmetric q8 multiplies int8-quantized activations; the sparse kernels take f32
                    // ones, so their outputs are compared with the dequantized weights run as f32.
                    let decoded = d.payload.withUnsafeBytes { decodePayload($0, encoding: d.encoding, shape: d.shape, params: d.params) }
                    let reference = d.encoding == .q8 && d.params.symmetric == true
                        ? try Linear(name: "w", source: .floats(decoded, shape: [rows, cols])) : base
                    for target in [Encoding.csr, .bitmask] {
                        let p = try XCTUnwrap(d.packedSparse(as: target))
                        let sparse = try Linear(name: "w", source: .encoded(p))
                        XCTAssertEqual(sparse.encoding, target)
                        let tag = "\(target) of \(d.encoding) sym \(String(describing: d.params.symmetric)) [\(rows), \(cols)] s \(sparsity)"
                        // f32 activations: the reference runs the dequantized weights as f32 (the default
                        // int16 decoding path of bitmask q8 is checked against dense q8 below).
                        assertSameLinear(sparse, products: reference, rows: base, tag: tag, activations: .f32) { T in
                            values(rows: T, cols: cols, sparsity: 0, seed: seed + 1000)
                        }
                    }
                }
            }
        }
    }

    /// Under the default `.i16` a bitmask of symmetric q8 values multiplies int16 activations
    /// (`edge_spmm_bitmask_q8_i16`: rows streamed up to 4 tokens, tiles expanded to dense int8 for the
    /// packed GEMM above) and gives exactly the dense symmetric q8 product of the same weights, at
    /// every token count and thread count.
    func testBitmaskQ8DecodingEqualsDenseQ8I16() throws {
        for (rows, cols) in [(5, 17), (40, 300), (33, 1100)] {
            for sparsity in [0.0, 0.5, 0.9] {
                let w = values(rows: rows, cols: cols, sparsity: sparsity, seed: UInt64(rows * cols) + 7)
                let dense = q8(w, rows: rows, cols: cols, symmetric: true)
                let sparse = try Linear(name: "w", source: .encoded(XCTUnwrap(dense.packedSparse(as: .bitmask))))
                let base = try Linear(name: "w", source: .encoded(dense))
                for T in Array(1 ... Linear.q4I16MaxTokens) + [5, 13, 40] {
                    let x = values(rows: T, cols: cols, sparsity: 0, seed: 99)
                    for threads in [1, 3] {
                        XCTAssertEqual(sparse.matmul(x, tokens: T, threads: threads).map(\.bitPattern),
                                       base.matmul(x, tokens: T, threads: threads).map(\.bitPattern),
                                       "[\(rows), \(cols)] sparsity \(sparsity) T \(T) threads \(threads)")
                    }
                }
            }
        }
    }

    /// `denseQ8Copy` of a bitmask of symmetric q8 values is the dense symmetric q8 matrix it was packed
    /// from: the same rows, the same products to the bit at every token count; other layouts have none.
    func testDenseQ8CopyOfABitmaskIsTheDenseMatrix() throws {
        for (rows, cols) in [(5, 17), (40, 300), (33, 1100)] {
            for sparsity in [0.0, 0.5, 0.9] {
                let w = values(rows: rows, cols: cols, sparsity: sparsity, seed: UInt64(rows + cols) + 11)
                let dense = q8(w, rows: rows, cols: cols, symmetric: true)
                let base = try Linear(name: "w", source: .encoded(dense))
                let sparse = try Linear(name: "w", source: .encoded(XCTUnwrap(dense.packedSparse(as: .bitmask))))
                let copy = try XCTUnwrap(sparse.denseQ8Copy())
                let tag = "[\(rows), \(cols)] sparsity \(sparsity)"
                XCTAssertEqual(copy.encoding, .q8, tag)
                XCTAssertEqual(copy.params.symmetric, true, tag)
                XCTAssertEqual(sparse.denseQ8CopyBytes, dense.payload.count, tag)
                var a = [Float](repeating: 0, count: cols), b = a
                for r in 0 ..< rows {
                    copy.row(r, into: &a)
                    base.row(r, into: &b)
                    XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(tag) row \(r)")
                }
                for T in [1, 3, 5, 13] {
                    let x = values(rows: T, cols: cols, sparsity: 0, seed: 77)
                    XCTAssertEqual(copy.matmul(x, tokens: T, threads: 2).map(\.bitPattern),
                                   sparse.matmul(x, tokens: T, threads: 2).map(\.bitPattern), "\(tag) T \(T)")
                }
            }
        }
        let w = values(rows: 6, cols: 40, sparsity: 0.5, seed: 4)
        for t in [q8(w, rows: 6, cols: 40, symmetric: true), q8(w, rows: 6, cols: 40, symmetric: false),
                  try XCTUnwrap(q8(w, rows: 6, cols: 40, symmetric: false).packedSparse(as: .bitmask)),
                  try XCTUnwrap(q8(w, rows: 6, cols: 40, symmetric: true).packedSparse(as: .csr)),
                  try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [6, 40], values: w).packedSparse(as: .bitmask))] {
            let l = try Linear(name: "w", source: .encoded(t))
            XCTAssertNil(l.denseQ8CopyBytes, "\(t.encoding) \(t.params)")
            XCTAssertNil(l.denseQ8Copy(), "\(t.encoding) \(t.params)")
        }
    }

    func testLyingSparsePayloadIsRefusedAtInit() throws {
        let w = values(rows: 4, cols: 9, sparsity: 0.5, seed: 3)
        var p = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [4, 9], values: w).packedSparse(as: .bitmask))
        p.payload[0] ^= 0x01  // mask popcount no longer matches the row pointers
        XCTAssertThrowsError(try Linear(name: "blk.0.ffn_up.weight", source: .encoded(p), origin: "m.edge")) {
            let d = "\($0)"
            XCTAssertTrue(d.contains("blk.0.ffn_up.weight") && d.contains("bits set") && !d.contains("\n"), d)
        }
        var q = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [4, 9], values: w).packedSparse(as: .csr))
        q.nnz = nil
        XCTAssertThrowsError(try Linear(name: "w", source: .encoded(q))) { XCTAssertTrue("\($0)".contains("nnz"), "\($0)") }
    }
}
