@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

/// N:M semi-structured magnitude pruning (`MagnitudePrune` with a pattern) and `NMPattern.detect`.
final class NMPruneTests: XCTestCase {
    private let ctx = toyPassContext()

    /// Random values in -0.1...0.1 with every `zeroEvery`-th value exactly zero.
    private func values(_ n: Int, seed: UInt64, zeroEvery: Int = 5) -> [Float] {
        var g = SplitMix(seed)
        return (0 ..< n).map { i in i % zeroEvery == 3 ? 0 : Float(g.nextDouble() * 2 - 1) * 0.1 }
    }

    func testEveryGroupKeepsItsLargestAndAtMostN() throws {
        let patterns = [(2, 4), (1, 4), (4, 8), (1, 2), (3, 7), (8, 16), (5, 64)].map { NMPattern(n: $0.0, m: $0.1)! }
        for p in patterns {
            for (rows, cols) in [(1, 1), (1, 3), (2, 4), (3, 5), (4, 17), (5, 33), (2, 64), (3, 130)] {
                let orig = values(rows * cols, seed: UInt64(rows * 1000 + cols))
                var prune = MagnitudePrune(pattern: p)
                var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: orig)
                try prune.apply(&t, context: ctx)
                let label = "\(p) rows \(rows) cols \(cols)"
                for r in 0 ..< rows {
                    for start in stride(from: 0, to: cols, by: p.m) {
                        let idx = (r * cols + start) ..< (r * cols + min(cols, start + p.m))
                        let k = p.keep(inGroupOf: idx.count)
                        let before = idx.filter { orig[$0] != 0 }.count, after = idx.filter { t.values[$0] != 0 }.count
                        XCTAssertLessThanOrEqual(after, k, label)
                        XCTAssertEqual(after, min(before, k), "exactly keep(len) non-zeros when the group had that many: \(label)")
                        for i in idx where t.values[i] != 0 { XCTAssertEqual(t.values[i], orig[i], "kept weights are untouched") }
                        let keptMin = idx.filter { t.values[$0] != 0 }.map { orig[$0].magnitude }.min() ?? .infinity
                        let droppedMax = idx.filter { t.values[$0] == 0 }.map { orig[$0].magnitude }.max() ?? 0
                        XCTAssertLessThanOrEqual(droppedMax, keptMin, label)
                    }
                }
                XCTAssertTrue(p.isSatisfied(by: t.values, rows: rows, cols: cols), label)
            }
        }
    }

    func testPartialGroupKeepsRoundedShare() {
        let p = NMPattern(n: 2, m: 4)!
        XCTAssertEqual((1 ... 4).map { p.keep(inGroupOf: $0) }, [1, 1, 2, 2])  // round(0.5)=1, round(1)=1, round(1.5)=2, N
        let q = NMPattern(n: 1, m: 8)!
        XCTAssertEqual((1 ... 8).map { q.keep(inGroupOf: $0) }, [0, 0, 0, 1, 1, 1, 1, 1])
        // 2:4 on 7 columns: a full group keeps 2, the partial group of 3 keeps 2.
        var v: [Float] = [1, 2, 3, 4, 5, 6, 7]
        let dropped = p.apply(to: &v, rows: 1, cols: 7)
        XCTAssertEqual(v, [0, 0, 3, 4, 0, 6, 7])
        XCTAssertEqual(dropped, 3)
    }

    func testTiesKeepTheLowerColumn() {
        var v = [Float](repeating: 0.5, count: 8)
        NMPattern(n: 2, m: 4)!.apply(to: &v, rows: 2, cols: 4)
        XCTAssertEqual(v, [0.5, 0.5, 0, 0, 0.5, 0.5, 0, 0])
    }

    func testRecordNamesThePattern() throws {
        var p = MagnitudePrune(pattern: NMPattern(n: 2, m: 4)!)
        var t = WorkTensor(name: "blk.0.attn_q.weight", shape: [4, 16], values: values(64, seed: 3))
        try p.apply(&t, context: ctx)
        guard case let .object(o) = p.record() else { return XCTFail("record is not an object") }
        XCTAssertEqual(o["pattern"], .string("2:4"))
        XCTAssertEqual(o["sparsity"], .number(0.5))
        XCTAssertEqual(o["achieved_sparsity"], .number(0.5))
        XCTAssertEqual(t.values.filter { $0 == 0 }.count, 32)
    }

    func testDetect() throws {
        let rows = 6, cols = 40
        for (n, m) in [(2, 4), (1, 4), (4, 8), (1, 8), (2, 8)] {
            var v = values(rows * cols, seed: 11, zeroEvery: 1000)
            NMPattern(n: n, m: m)!.apply(to: &v, rows: rows, cols: cols)
            let d = NMPattern.detect(values: v, rows: rows, cols: cols)
            XCTAssertEqual(d?.n, n, "\(n):\(m)")
            XCTAssertEqual(d?.m, m, "\(n):\(m)")
        }
        let dense = values(rows * cols, seed: 12, zeroEvery: 1000)
        XCTAssertNil(NMPattern.detect(values: dense, rows: rows, cols: cols))
        XCTAssertNil(NMPattern.detect(values: [Float](repeating: 0, count: 16), rows: 2, cols: 8), "all zero: no pattern")
        XCTAssertNil(NMPattern.detect(values: [1, 0, 0, 0, 0], rows: 5, cols: 1), "no full group")
        XCTAssertNil(NMPattern.detect(values: [1, 0], rows: 1, cols: 4), "count disagrees with shape")
        // 3 non-zeros in a group of 4 but 4 in each 8: 4:8 and not 2:4.
        XCTAssertEqual(NMPattern.detect(values: [1, 1, 1, 0, 1, 0, 0, 0], rows: 1, cols: 8).map { [$0.n, $0.m] }, [4, 8])
        // Half of the row zero, but all in one half: 4:8, not 2:4.
        XCTAssertEqual(NMPattern.detect(values: [0, 0, 0, 0, 1, 1, 1, 1], rows: 1, cols: 8).map { [$0.n, $0.m] }, [4, 8])
        // 5 of 8 non-zero, a full group of 4: nothing.
        XCTAssertNil(NMPattern.detect(values: [1, 1, 1, 1, 1, 0, 0, 0], rows: 1, cols: 8))
    }

    func testParsing() {
        XCTAssertEqual(NMPattern(parsing: "2:4"), NMPattern(n: 2, m: 4))
        XCTAssertEqual(NMPattern(parsing: "63:64"), NMPattern(n: 63, m: 64))
        for bad in ["", "2", "2:", ":4", "4:2", "4:4", "0:4", "2:65", "-1:4", "2:4:8", "a:b", " 2:4", "2.0:4", "٢:٤"] {
            XCTAssertNil(NMPattern(parsing: bad), bad)
        }
    }

    private func parse(_ pass: String) throws -> Recipe {
        try Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json")
    }

    private func assertRecipeError(_ pass: String, field: String, mentions: String, line: UInt = #line) {
        XCTAssertThrowsError(try parse(pass), line: line) { e in
            guard let r = e as? RecipeError else { return XCTFail("\(e)", line: line) }
            XCTAssertEqual(r.field, field, "\(r)", line: line)
            XCTAssertTrue(r.description.contains(mentions), "\(r)", line: line)
            XCTAssertFalse(r.description.contains("\n"), line: line)
        }
    }

    func testRecipeFields() throws {
        let r = try parse(#"{"pass": "magnitude_prune", "pattern": "2:4", "include": ["blk.*"]}"#)
        let p = try XCTUnwrap(r.passes.first as? MagnitudePrune)
        XCTAssertEqual(p.pattern, NMPattern(n: 2, m: 4))
        XCTAssertEqual(p.sparsity, 0.5)
        assertRecipeError(#"{"pass": "magnitude_prune", "pattern": "2:4", "sparsity": 0.5}"#, field: "passes[0].sparsity", mentions: "pattern")
        assertRecipeError(#"{"pass": "magnitude_prune", "pattern": "2:4", "scope": "global"}"#, field: "passes[0].scope", mentions: "pattern")
        assertRecipeError(#"{"pass": "magnitude_prune", "pattern": "4:2"}"#, field: "passes[0].pattern", mentions: "1 <= N < M <= 64")
        assertRecipeError(#"{"pass": "magnitude_prune", "pattern": "1:128"}"#, field: "passes[0].pattern", mentions: "'1:128'")
        assertRecipeError(#"{"pass": "magnitude_prune", "pattern": 24}"#, field: "passes[0].pattern", mentions: "string")
        assertRecipeError(#"{"pass": "magnitude_prune"}"#, field: "passes[0].sparsity", mentions: "pattern")
        assertRecipeError(#"{"pass": "magnitude_prune", "sparsity": 1.5}"#, field: "passes[0].sparsity", mentions: "1.5")
    }
}
