import EdgeKernels
import XCTest

/// `edge_round_to_grid`, the compressor's round-to-nearest: every level bit-identical to the
/// reference (values, stored bytes and error sums), and the reference equal to the formula written
/// out here (the one `QuantGrid.code` / `.value` document), on odd lengths and every grid kind.
final class RoundToGridTests: XCTestCase {
    struct Grid { let scale, zero, qmin, qmax: Float; let offset: Int32 }

    static let grids = [
        Grid(scale: 0.0123, zero: 0, qmin: -127, qmax: 127, offset: 0),   // int8 symmetric
        Grid(scale: 0.05, zero: 9, qmin: 0, qmax: 15, offset: 0),         // int4 asymmetric
        Grid(scale: 0.07, zero: 0, qmin: -8, qmax: 7, offset: 8),         // int4 symmetric, stored + 8
        Grid(scale: 0.3, zero: 0, qmin: -4, qmax: 3, offset: 4),          // 3-bit symmetric: clamps often
        Grid(scale: 0, zero: 0, qmin: -127, qmax: 127, offset: 0),        // an all-zero row
    ]

    func testEveryLevelMatchesTheFormula() {
        var rng = TestRNG(seed: 91)
        for n in [0, 1, 7, 8, 9, 31, 64, 100, 576, 1537] {
            let x = (0 ..< n).map { i in rng.float(-1, 1) * Float(1 + i % 5) }
            for g in Self.grids {
                // The formula, in Swift.
                var want = x, wantStored = [UInt8](repeating: 0, count: n)
                var se = [Double](repeating: 0, count: 8), sq = se
                for i in 0 ..< n {
                    var c = g.zero
                    if g.scale > 0 {
                        c = (x[i] / g.scale).rounded(.toNearestOrEven) + g.zero
                        c = c < g.qmax ? c : g.qmax
                        c = c > g.qmin ? c : g.qmin
                    }
                    let y = g.scale * (c - g.zero)
                    wantStored[i] = UInt8(truncatingIfNeeded: Int(c) + Int(g.offset))
                    want[i] = y
                    let e = Double(x[i] - y)
                    se[i % 8] += e * e
                    sq[i % 8] += Double(x[i]) * Double(x[i])
                }
                func reduce(_ l: [Double]) -> Double { ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])) }
                let wantSums = [0.5 + reduce(se), 2 + reduce(sq)]
                let levels = forEachKernelLevel { level in
                    var v = x, stored = [UInt8](repeating: 0xAA, count: n), sums: [Double] = [0.5, 2]
                    edge_round_to_grid(&v, n, g.scale, g.zero, g.qmin, g.qmax, g.offset, &stored, &sums)
                    XCTAssertEqual(v.map(\.bitPattern), want.map(\.bitPattern), "\(level) n \(n) grid \(g)")
                    XCTAssertEqual(stored, wantStored, "\(level) n \(n) grid \(g)")
                    XCTAssertEqual(sums.map(\.bitPattern), wantSums.map(\.bitPattern), "\(level) n \(n) grid \(g): \(sums) vs \(wantSums)")
                }
                XCTAssertTrue(levels.contains("ref"))
            }
        }
    }
}

/// `edge_minmax` (the min/max grid fit) and `edge_count_nonzero` (the writer's nnz): every level equal
/// to the value-by-value formula on odd lengths, starting bounds kept when no value passes them.
final class MinMaxCountTests: XCTestCase {
    func testMinMaxAndNonzeroCount() {
        var rng = TestRNG(seed: 92)
        for n in [0, 1, 7, 8, 9, 63, 576, 1537] {
            var x = (0 ..< n).map { i in rng.float(-1, 1) * Float(1 + i % 7) }
            for i in stride(from: 0, to: n, by: 3) { x[i] = i % 2 == 0 ? 0 : -0.0 }
            var wantLo: Float = 0, wantHi: Float = 0
            for v in x {
                wantLo = v < wantLo ? v : wantLo
                wantHi = v > wantHi ? v : wantHi
            }
            let levels = forEachKernelLevel { level in
                var lo: Float = 0, hi: Float = 0
                x.withUnsafeBufferPointer { edge_minmax($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, n, &lo, &hi) }
                XCTAssertEqual(lo, wantLo, "\(level) n \(n)")
                XCTAssertEqual(hi, wantHi, "\(level) n \(n)")
                var big: Float = -1000, small: Float = 1000  // bounds no value passes stay
                x.withUnsafeBufferPointer { edge_minmax($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, n, &big, &small) }
                XCTAssertEqual(big, -1000, "\(level) n \(n)")
                XCTAssertEqual(small, 1000, "\(level) n \(n)")
            }
            XCTAssertTrue(levels.contains("ref"))
            let nz = x.withUnsafeBufferPointer { edge_count_nonzero($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, n) }
            XCTAssertEqual(nz, x.filter { $0 != 0 }.count, "n \(n)")
            XCTAssertEqual(edge_count_nonzero([.nan, 0, -0.0, 1], 4), 2)
        }
    }
}
