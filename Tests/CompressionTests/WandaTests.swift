@testable import Compression
import TestSupport
import XCTest

final class WandaTests: XCTestCase {
    func testPrunesLowestScorePerRowNotLowestMagnitude() throws {
        // Row 0: |w| favours column 0, but column 0's input norm is tiny, so Wanda removes it.
        var w: [Float] = [0.9, 0.5, -0.4, 0.3,
                          0.1, -0.2, 0.3, -0.4]
        let norms: [Float] = [0.01, 1, 1, 2]
        try WandaPrune.prune(&w, rows: 2, cols: 4, norms: norms, sparsity: 0.5)
        // scores row 0: 0.009, 0.5, 0.4, 0.6 -> remove columns 0 and 2
        XCTAssertEqual(w[0 ..< 4].map { $0 }, [0, 0.5, 0, 0.3])
        // scores row 1: 0.001, 0.2, 0.3, 0.8 -> remove columns 0 and 1
        XCTAssertEqual(w[4 ..< 8].map { $0 }, [0, 0, 0.3, -0.4])
    }

    func testExactPerRowSparsityOverOddShapes() throws {
        var g = SplitMix(9)
        for (rows, cols) in [(1, 1), (3, 7), (5, 33), (4, 64)] {
            for s in [0.0, 0.3, 0.5, 0.9] {
                var w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() - 0.5) }
                let norms = (0 ..< cols).map { _ in Float(g.nextDouble()) }
                try WandaPrune.prune(&w, rows: rows, cols: cols, norms: norms, sparsity: s)
                for r in 0 ..< rows {
                    XCTAssertEqual(w[r * cols ..< (r + 1) * cols].filter { $0 == 0 }.count, Int(Double(cols) * s), "\(rows)x\(cols) s \(s)")
                }
            }
        }
    }
}
