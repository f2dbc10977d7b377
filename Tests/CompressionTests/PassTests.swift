@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

final class PassTests: XCTestCase {
    private let ctx = toyPassContext()

    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var g = SplitMix(seed)
        return (0 ..< n).map { _ in Float(g.nextDouble() * 2 - 1) * 0.1 }
    }

    func testMagnitudePruneHitsExactSparsityAndRemovesSmallest() throws {
        for (rows, cols) in [(1, 1), (3, 5), (7, 33), (16, 64)] {
            for s in [0.0, 0.25, 0.5, 0.9] {
                var p = MagnitudePrune(sparsity: s)
                let orig = random(rows * cols, seed: UInt64(rows * 100 + cols))
                var t = WorkTensor(name: "blk.0.attn_q.weight", shape: [rows, cols], values: orig)
                try p.apply(&t, context: ctx)
                let zeros = t.values.filter { $0 == 0 }.count
                XCTAssertEqual(zeros, Int(Double(rows * cols) * s), "rows \(rows) cols \(cols) s \(s)")
                // every kept weight is at least as large as every pruned one
                let keptMin = zip(orig, t.values).filter { $0.1 != 0 }.map { $0.0.magnitude }.min() ?? .infinity
                let prunedMax = zip(orig, t.values).filter { $0.1 == 0 }.map { $0.0.magnitude }.max() ?? 0
                XCTAssertLessThanOrEqual(prunedMax, keptMin)
                // kept weights are untouched
                for (a, b) in zip(orig, t.values) where b != 0 { XCTAssertEqual(a, b) }
            }
        }
    }

    func testMagnitudePruneTiesStillGiveExactCount() throws {
        var p = MagnitudePrune(sparsity: 0.5)
        var t = WorkTensor(name: "x", shape: [2, 5], values: [Float](repeating: 0.3, count: 10))
        try p.apply(&t, context: ctx)
        XCTAssertEqual(t.values.filter { $0 == 0 }.count, 5)
    }

    func testQ8SymmetricErrorBoundAndZerosStayZero() throws {
        for (rows, cols) in [(1, 3), (5, 17), (8, 64)] {
            var v = random(rows * cols, seed: 7)
            for i in stride(from: 0, to: v.count, by: 3) { v[i] = 0 }
            for sym in [true, false] {
                var q = Quantize(bits: 8, symmetric: sym)
                var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
                try q.apply(&t, context: ctx)
                let enc = try XCTUnwrap(t.encoded)
                XCTAssertEqual(enc.encoding, .q8)
                let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q8, shape: enc.shape, params: enc.params) }
                XCTAssertEqual(back, t.values, "pass reports exactly what the file decodes to")
                for r in 0 ..< rows {
                    let row = v[r * cols ..< (r + 1) * cols]
                    let range = sym ? 2 * (row.map(\.magnitude).max() ?? 0) : ((row.max() ?? 0) - min(0, row.min() ?? 0))
                    let step = range / (sym ? 254 : 255)
                    for j in 0 ..< cols {
                        let i = r * cols + j
                        XCTAssertLessThanOrEqual((back[i] - v[i]).magnitude, step / 2 * 1.0001 + 1e-9, "sym \(sym) r \(r) j \(j)")
                        if v[i] == 0 { XCTAssertEqual(back[i], 0, "pruned weight must stay exactly zero") }
                    }
                }
            }
        }
    }

    func testQ4GroupErrorBoundOddColumns() throws {
        for (rows, cols, g) in [(2, 64, 32), (3, 70, 32), (1, 129, 64), (4, 7, 16)] {
            var v = random(rows * cols, seed: UInt64(cols))
            v[1] = 0
            for sym in [true, false] {
                var q = Quantize(bits: 4, symmetric: sym, groupSize: g)
                var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
                try q.apply(&t, context: ctx)
                let enc = try XCTUnwrap(t.encoded)
                let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q4, shape: enc.shape, params: enc.params) }
                XCTAssertEqual(back, t.values)
                XCTAssertEqual(back[1], 0)
                for r in 0 ..< rows {
                    for start in stride(from: 0, to: cols, by: g) {
                        let idx = (r * cols + start) ..< (r * cols + min(cols, start + g))
                        let grp = v[idx]
                        let hi = grp.max()!, lo = grp.min()!
                        // symmetric: step = max|w|/7 (codes -8...7); asymmetric: step = (max(hi,0)-min(lo,0))/15
                        let step = sym ? max(hi, -lo) / 7 : (max(hi, 0) - min(lo, 0)) / 15
                        for i in idx { XCTAssertLessThanOrEqual((back[i] - v[i]).magnitude, step * 0.5005 + 1e-7) }
                    }
                }
            }
        }
    }

    func testQuantizeRefusesVectors() {
        var q = Quantize(bits: 8, symmetric: true)
        var t = WorkTensor(name: "blk.0.attn_norm.weight", shape: [8], values: [Float](repeating: 1, count: 8))
        XCTAssertThrowsError(try q.apply(&t, context: ctx)) { XCTAssertTrue("\($0)".contains("blk.0.attn_norm.weight")) }
    }

    func testCastF16RoundTripsAndSkipsQuantized() throws {
        var c = Cast(dtype: .f16)
        var t = WorkTensor(name: "a", shape: [3], values: [1, 0.1, -2.5])
        try c.apply(&t, context: ctx)
        XCTAssertEqual(t.encoded?.encoding, .f16)
        XCTAssertEqual(t.values[0], 1)
        XCTAssertEqual(t.values[1], 0.0999755859375)
        var big = WorkTensor(name: "b", shape: [1], values: [70000])
        XCTAssertThrowsError(try c.apply(&big, context: ctx))
        var q = Quantize(bits: 8, symmetric: true)
        var m = WorkTensor(name: "blk.0.ffn_up.weight", shape: [2, 2], values: [1, 2, 3, 4])
        try q.apply(&m, context: ctx)
        try c.apply(&m, context: ctx)
        XCTAssertEqual(m.encoded?.encoding, .q8, "cast leaves quantized tensors alone")
    }
}
