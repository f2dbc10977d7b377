@testable import Compression
import EdgeFormat
import EdgeKernels
import TestSupport
import XCTest

/// `rounding: mse` (the grid search) against min/max round-to-nearest, and `magnitude_prune`'s `per_row` scope.
final class QuantSearchTests: XCTestCase {
    private let ctx = toyPassContext()

    /// Weight-like data: mostly Gaussian-ish, some heavy outliers, some all-positive / all-negative
    /// groups, exact zeros (pruned weights) and the Q4_1-style grids real GGUF inputs come on.
    private func sample(_ n: Int, kind: Int, seed: UInt64) -> [Float] {
        var g = SplitMix(seed)
        func gauss() -> Float { Float((0 ..< 4).map { _ in g.nextDouble() - 0.5 }.reduce(0, +)) }
        return (0 ..< n).map { i in
            switch kind {
            case 0: return gauss() * 0.05
            case 1: return gauss() * 0.05 * (g.nextDouble() < 0.03 ? 12 : 1)
            case 2: return Float(g.nextDouble()) * 0.3 + 0.01
            case 3: return -Float(g.nextDouble()) * 0.2
            case 4: return i % 2 == 0 ? 0 : gauss() * 0.1
            default: return 0.013 * Float(Int(g.nextDouble() * 16)) - 0.09 + (i / 32 % 2 == 0 ? 0 : 0.02)
            }
        }
    }

    func testSearchNeverWorseThanMinMax() {
        var improved = 0, groups = 0
        for kind in 0 ..< 6 {
            for (bits, sym) in [(4, false), (4, true), (8, true), (8, false)] {
                for n in [7, 32, 64, 128] {
                    for seed in 0 ..< 5 {
                        let x = sample(n, kind: kind, seed: UInt64(seed * 100 + kind * 10 + n))
                        let w = sample(n, kind: 2, seed: UInt64(seed + 7))  // positive weights
                        x.withUnsafeBufferPointer { xb in
                            w.withUnsafeBufferPointer { wb in
                                var lo: Float = 0, hi: Float = 0
                                for e in x { lo = min(lo, e); hi = max(hi, e) }
                                let base = QuantGrid.fit(lo: lo, hi: hi, bits: bits, symmetric: sym, f16Scale: bits == 4)
                                for weights in [nil, wb] {
                                    let s = QuantGrid.search(xb, weights: weights, bits: bits, symmetric: sym, f16Scale: bits == 4)
                                    let es = s.squaredError(xb, weights: weights), eb = base.squaredError(xb, weights: weights)
                                    XCTAssertLessThanOrEqual(es, eb, "kind \(kind) bits \(bits) sym \(sym) n \(n) seed \(seed)")
                                    // a valid grid: integer zero point in the code range, so 0 stays exactly 0
                                    XCTAssertEqual(s.zero, s.zero.rounded())
                                    XCTAssertTrue(s.qmin <= s.zero && s.zero <= s.qmax)
                                    XCTAssertEqual(s.value(s.code(0)), 0)
                                    if bits == 4 { XCTAssertEqual(s.scale, edge_f16_to_f32(edge_f32_to_f16(s.scale)), "f16 scale") }
                                    if es < eb * 0.999 { improved += 1 }
                                    groups += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(improved, groups / 2, "the search finds a better grid for most groups")
    }

    func testQ4AndQ8MSEPassKeepsBoundsAndZeros() throws {
        for (rows, cols, bits, g) in [(3, 70, 4, 32), (4, 128, 4, 64), (2, 7, 4, 16), (5, 33, 8, 0), (4, 64, 8, 0)] {
            var v = sample(rows * cols, kind: 1, seed: UInt64(cols))
            for i in stride(from: 0, to: v.count, by: 3) { v[i] = 0 }
            for sym in [true, false] {
                var minmaxError = 0.0, mseError = 0.0
                for rounding in [Rounding.minmax, .mse] {
                    var q = Quantize(bits: bits, symmetric: sym, groupSize: bits == 4 ? g : nil, rounding: rounding)
                    var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
                    try q.apply(&t, context: ctx)
                    let enc = try XCTUnwrap(t.encoded)
                    let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: enc.encoding, shape: enc.shape, params: enc.params) }
                    XCTAssertEqual(back, t.values, "the pass reports exactly what the file decodes to")
                    var e = 0.0
                    for i in v.indices {
                        if v[i] == 0 { XCTAssertEqual(back[i], 0, "pruned weight must stay exactly zero") }
                        e += Double(back[i] - v[i]) * Double(back[i] - v[i])
                    }
                    if rounding == .minmax { minmaxError = e } else { mseError = e }
                    // Each value the grid can reach is rounded to its nearest level: |error| <= step / 2.
                    let layout = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: bits == 4 ? g : nil, symmetric: sym)
                    let grids = layout.fitGrids(v, rounding: rounding)
                    for r in 0 ..< rows {
                        for j in 0 ..< cols {
                            let grid = grids[r * layout.groups + j / layout.group], x = v[r * cols + j]
                            if x >= grid.value(grid.qmin), x <= grid.value(grid.qmax) {
                                XCTAssertLessThanOrEqual((back[r * cols + j] - x).magnitude, grid.scale * 0.5001 + 1e-9)
                            }
                        }
                    }
                }
                XCTAssertLessThanOrEqual(mseError, minmaxError, "\(rows)x\(cols) bits \(bits) sym \(sym)")
            }
        }
    }

    func testWeightedSearchKeepsZerosAndLowersWeightedError() throws {
        let rows = 6, cols = 128
        var v = sample(rows * cols, kind: 1, seed: 3)
        for i in stride(from: 1, to: v.count, by: 2) { v[i] = 0 }
        let layout = GroupLayout(rows: rows, cols: cols, bits: 4, groupSize: 64, symmetric: false)
        let colWeights = Quantize.errorWeights(norms: (0 ..< cols).map { Float(($0 * 37) % 11) + 0.1 })
        let minmax = layout.fitGrids(v)
        for (mag, cw) in [(true, nil), (false, colWeights), (true, colWeights)] as [(Bool, [Float]?)] {
            let grids = layout.fitGrids(v, rounding: .mse, magnitudeWeighted: mag, columnWeights: cw)
            var eSearch = 0.0, eMinmax = 0.0
            for r in 0 ..< rows {
                for j in 0 ..< cols {
                    let x = v[r * cols + j], gi = r * layout.groups + j / 64
                    let wt = Double(cw?[j] ?? 1) * (mag ? Double(x) * Double(x) + 1e-30 : 1)
                    let a = grids[gi], b = minmax[gi]
                    if x == 0 { XCTAssertEqual(a.value(a.code(x)), 0) }
                    eSearch += wt * Double(x - a.value(a.code(x))) * Double(x - a.value(a.code(x)))
                    eMinmax += wt * Double(x - b.value(b.code(x))) * Double(x - b.value(b.code(x)))
                }
            }
            XCTAssertLessThanOrEqual(eSearch, eMinmax * 1.000001, "magnitude \(mag) activation \(cw != nil)")
        }
    }

    func testActivationWeightingUsesCalibrationNorms() throws {
        let rows = 4, cols = 64, name = "blk.0.ffn_down.weight"
        let v = sample(rows * cols, kind: 1, seed: 5)
        let stats = CalibrationStats(wanted: [name: .columnNorms])
        let x = (0 ..< 8 * cols).map { Float(($0 % cols) % 5) + 0.5 }
        x.withUnsafeBufferPointer { stats.observe(weight: name, x: $0.baseAddress!, rows: 8, cols: cols) }
        stats.endForward(tokens: 8)
        var c = ctx
        c.calibration = stats
        var recipe = try Recipe.parse(Data(#"{"passes": [{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false, "rounding": "mse", "weighting": "activation"}]}"#.utf8), file: "r.json")
        var q = try XCTUnwrap(recipe.passes[0] as? Quantize)
        XCTAssertTrue(q.calibrationNeeds.contains(.columnNorms))
        var t = WorkTensor(name: name, shape: [rows, cols], values: v)
        try q.apply(&t, context: c)
        XCTAssertEqual(q.record()["activation_weighted_tensors"]?.doubleValue, 1)
        XCTAssertEqual(q.record()["weighting"]?.stringValue, "activation")
        recipe = try Recipe.parse(Data(#"{"passes": [{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false, "rounding": "mse", "weighting": "magnitude"}]}"#.utf8), file: "r.json")
        XCTAssertTrue(try XCTUnwrap(recipe.passes[0] as? Quantize).calibrationNeeds.isEmpty, "magnitude weighting needs no data")
    }

    func testRecipeFields() {
        func err(_ pass: String) -> RecipeError? {
            do { _ = try Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json"); return nil } catch { return error as? RecipeError }
        }
        XCTAssertEqual(err(#"{"pass": "quantize", "bits": 8, "weighting": "magnitude"}"#)?.field, "passes[0].weighting")
        XCTAssertEqual(err(#"{"pass": "quantize", "bits": 8, "rounding": "best"}"#)?.field, "passes[0].rounding")
        XCTAssertEqual(err(#"{"pass": "quantize", "bits": 8, "rounding": "mse", "weighting": "x"}"#)?.field, "passes[0].weighting")
        XCTAssertNil(err(#"{"pass": "quantize", "bits": 8, "rounding": "mse", "weighting": "activation_magnitude"}"#))
        XCTAssertEqual(err(#"{"pass": "magnitude_prune", "sparsity": 0.5, "scope": "rows"}"#)?.field, "passes[0].scope")
    }

    func testPerRowMagnitudePruning() throws {
        var g = SplitMix(4)
        for (rows, cols) in [(1, 1), (3, 7), (5, 33), (4, 64)] {
            for s in [0.0, 0.3, 0.5, 0.9] {
                let orig = (0 ..< rows * cols).map { _ in Float(g.nextDouble() - 0.5) }
                var p = MagnitudePrune(sparsity: s, scope: .perRow)
                var t = WorkTensor(name: "token_embd.weight", shape: [rows, cols], values: orig)
                try p.apply(&t, context: ctx)
                for r in 0 ..< rows {
                    let before = orig[r * cols ..< (r + 1) * cols], after = t.values[r * cols ..< (r + 1) * cols]
                    XCTAssertEqual(after.filter { $0 == 0 }.count, Int(Double(cols) * s), "\(rows)x\(cols) s \(s)")
                    let kept = zip(before, after).filter { $0.1 != 0 }
                    let keptMin = kept.map { $0.0.magnitude }.min() ?? .infinity
                    let prunedMax = zip(before, after).filter { $0.1 == 0 }.map { $0.0.magnitude }.max() ?? 0
                    XCTAssertLessThanOrEqual(prunedMax, keptMin)
                    for (a, b) in kept { XCTAssertEqual(a, b) }
                }
                XCTAssertEqual(p.record()["achieved_sparsity"]?.doubleValue ?? -1, Double(Int(Double(cols) * s)) / Double(cols), accuracy: 1e-12)
            }
        }
    }
}
