@testable import Compression
import EdgeFormat
import EdgeKernels
import Foundation
import TestSupport
import XCTest

/// `quantize` with `sub_bits` (the q4k encoding): recipe fields, the payload it writes (decoding to
/// exactly what the pass reports), the fit (exact on a 16-level grid with a real min, which an
/// integer zero point misses), the constrained codes, and GPTQ on q4k grids.
final class Q4KQuantizeTests: XCTestCase {
    private let ctx = toyPassContext()

    /// A Q4_1-style matrix: per group of `g` a random step d and min lo < 0, codes 0...15 with both
    /// ends present, w = lo + d * u.
    private func gridMatrix(rows: Int, cols: Int, g: Int, seed: UInt64) -> [Float] {
        var r = SplitMix(seed)
        var v = [Float](repeating: 0, count: rows * cols)
        for row in 0 ..< rows {
            for j0 in stride(from: 0, to: cols, by: g) {
                let d = Float(0.002 + 0.01 * r.nextDouble()), lo = -d * Float(3 + 9 * r.nextDouble())
                for j in j0 ..< min(cols, j0 + g) {
                    let u: Float = j == j0 ? 0 : j == j0 + 1 ? 15 : Float(Int(r.nextDouble() * 16) % 16)
                    v[row * cols + j] = lo + d * u
                }
            }
        }
        return v
    }

    private func relativeRMSE(_ a: [Float], _ b: [Float]) -> Double {
        var e = 0.0, s = 0.0
        for i in a.indices { e += Double(a[i] - b[i]) * Double(a[i] - b[i]); s += Double(a[i]) * Double(a[i]) }
        return (e / s).squareRoot()
    }

    private func parse(_ pass: String) throws -> Quantize {
        try XCTUnwrap(Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json").passes[0] as? Quantize)
    }

    private func fieldError(_ pass: String) -> String? {
        do { _ = try Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json"); return nil } catch { return (error as? RecipeError)?.field }
    }

    func testRecipeFields() throws {
        let q = try parse(#"{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false, "sub_bits": 6}"#)
        XCTAssertEqual(q.subBits, 6)
        XCTAssertNil(try parse(#"{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false}"#).subBits)
        XCTAssertEqual(fieldError(#"{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false, "sub_bits": 7}"#), "passes[0].sub_bits")
        XCTAssertEqual(fieldError(#"{"pass": "quantize", "bits": 4, "group_size": 32, "sub_bits": 8}"#), "passes[0].sub_bits",
                       "symmetric defaults to true, which q4k cannot be")
        XCTAssertEqual(try parse(#"{"pass": "quantize", "bits": 3, "group_size": 32, "symmetric": false, "sub_bits": 8}"#).subBits, 8,
                       "bits 3: the q3s encoding")
        XCTAssertEqual(fieldError(#"{"pass": "quantize", "bits": 3, "group_size": 64, "sub_bits": 6}"#), "passes[0].sub_bits",
                       "q3s cannot be symmetric either")
        XCTAssertEqual(fieldError(#"{"pass": "quantize", "bits": 8, "symmetric": false, "sub_bits": 8}"#), "passes[0].sub_bits")
    }

    /// The unconstrained fit lands on a 16-level grid with a real min exactly; the integer zero
    /// point of q4's best (searched) grid cannot.
    func testFitIsExactOnARealMinGrid() {
        let v = gridMatrix(rows: 1, cols: 32, g: 32, seed: 7)
        v.withUnsafeBufferPointer { x in
            let f = Q4KFit.fit(x, nil)
            XCTAssertLessThan(Q4KFit.error(x, nil, d: f.d, m: f.m), 1e-12)
            let q4 = QuantGrid.search(x, weights: nil, bits: 4, symmetric: false, f16Scale: true)
            XCTAssertGreaterThan(q4.squaredError(x, weights: nil), 100 * max(1e-14, Q4KFit.error(x, nil, d: f.d, m: f.m)))
        }
    }

    /// The pass writes q4k with the requested sub_bits; the payload decodes to exactly the values the
    /// pass reports; on a Q4_1-style matrix the error is a small fraction of q4's (integer zero points).
    func testPayloadDecodesToReportedValuesAndBeatsIntegerZeroPoints() throws {
        for (rows, cols, g) in [(3, 96, 32), (2, 70, 32), (4, 33, 16), (1, 128, 64)] {
            let v = gridMatrix(rows: rows, cols: cols, g: g, seed: UInt64(rows * 1000 + cols))
            var q4 = Quantize(bits: 4, symmetric: false, groupSize: g, rounding: .mse)
            var base = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
            try q4.apply(&base, context: ctx)
            let q4Error = relativeRMSE(v, base.values)
            for b in [6, 8] {
                var q = try parse(#"{"pass": "quantize", "bits": 4, "group_size": \#(g), "symmetric": false, "sub_bits": \#(b)}"#)
                var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
                try q.apply(&t, context: ctx)
                let enc = try XCTUnwrap(t.encoded)
                XCTAssertEqual(enc.encoding, .q4k)
                XCTAssertEqual(enc.params.subBits, b)
                XCTAssertEqual(enc.params.groupSize, g)
                let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q4k, shape: enc.shape, params: enc.params) }
                XCTAssertEqual(back, t.values, "\(rows)x\(cols) g\(g) b\(b): the pass reports what the file decodes to")
                let e = relativeRMSE(v, t.values)
                XCTAssertLessThan(e, q4Error / (b == 8 ? 8 : 3), "\(rows)x\(cols) g\(g) b\(b): q4k \(e) against q4 \(q4Error)")
            }
        }
    }

    /// Constant rows (every weight equal: zero, a tiny subnormal as a bfloat16 0x0001 checkpoint
    /// value decodes to, or an ordinary value) encode without trapping and decode to what the pass
    /// reports: a group of equal values can fit a min of -0.0, and the row's super-min must still be
    /// +0 (the format refuses a binary16 with its sign bit set). The fuzzer's case sharded-2897
    /// (Fixtures/fuzz-regressions) crashed here.
    func testConstantRowsEncode() throws {
        // Float(bitPattern: 0x0001_0000) is the subnormal 9.1835e-41 (a literal would warn that it underflows).
        for c: Float in [0, -0.0, Float(bitPattern: 0x0001_0000), Float(bitPattern: 0x8001_0000), 0.5, -0.5, 1e-30] {
            for b in [6, 8] {
                var q = try parse(#"{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false, "sub_bits": \#(b)}"#)
                var t = WorkTensor(name: "blk.0.attn_v.weight", shape: [2, 64], values: [Float](repeating: c, count: 128))
                try q.apply(&t, context: ctx)
                let enc = try XCTUnwrap(t.encoded)
                let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q4k, shape: enc.shape, params: enc.params) }
                XCTAssertEqual(back, t.values, "value \(c) b\(b)")
                for v in t.values { XCTAssertEqual(v, c, accuracy: max(1e-6, abs(c) * 0.01), "value \(c) b\(b)") }
            }
        }
        let s = Q4KFit.supers([(d: 0, m: -0.0), (d: -0.0, m: 0)], subBits: 8)
        XCTAssertEqual(s.d.sign, .plus)
        XCTAssertEqual(s.m.sign, .plus)
    }

    /// bits 3 with `sub_bits` (q3s): the payload decodes to exactly what the pass reports, every
    /// group's scale is a code times its row's super-scale, the zero points keep 0 on the grid (a zero
    /// weight stays exactly 0), and the 6-bit scale codes cost little against q3's binary16 scales.
    func testQ3SPayloadDecodesToReportedValuesAndStaysCloseToQ3() throws {
        for (rows, cols, g) in [(3, 96, 32), (2, 70, 16), (4, 128, 64)] {
            var r = SplitMix(UInt64(rows * 100 + cols))
            var v = (0 ..< rows * cols).map { _ in Float(r.nextDouble() * 2 - 1) * Float(0.01 + 0.05 * r.nextDouble()) }
            for i in stride(from: 0, to: v.count, by: 7) { v[i] = 0 }
            var q3 = Quantize(bits: 3, symmetric: false, groupSize: g, rounding: .mse)
            var base = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
            try q3.apply(&base, context: ctx)
            let q3Error = relativeRMSE(v, base.values)
            for b in [6, 8] {
                var q = try parse(#"{"pass": "quantize", "bits": 3, "group_size": \#(g), "symmetric": false, "sub_bits": \#(b)}"#)
                var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
                try q.apply(&t, context: ctx)
                let enc = try XCTUnwrap(t.encoded)
                XCTAssertEqual(enc.encoding, .q3s)
                XCTAssertEqual(enc.params, EncodingParams(groupSize: g, subBits: b))
                let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q3s, shape: enc.shape, params: enc.params) }
                XCTAssertEqual(back, t.values, "\(rows)x\(cols) g\(g) b\(b): the pass reports what the file decodes to")
                for i in stride(from: 0, to: v.count, by: 7) { XCTAssertEqual(t.values[i], 0, "a zero weight stays 0 (index \(i))") }
                let e = relativeRMSE(v, t.values)
                XCTAssertLessThan(e, q3Error * 1.1, "\(rows)x\(cols) g\(g) b\(b): q3s \(e) against q3 \(q3Error)")
                XCTAssertEqual(q.record()["encoding"], .string("q3s"))
            }
        }
    }

    /// Constrained codes never do worse than the nearest codes (they are a candidate), and the
    /// super-scales cover the largest group scale and min.
    func testConstrainedCodesAndSupers() {
        let v = gridMatrix(rows: 1, cols: 256, g: 32, seed: 11).map { $0 * 1.37 + 0.0001 }
        v.withUnsafeBufferPointer { all in
            let fits = (0 ..< 8).map { k in Q4KFit.fit(UnsafeBufferPointer(rebasing: all[k * 32 ..< k * 32 + 32]), nil) }
            for b in [6, 8] {
                let s = Q4KFit.supers(fits, subBits: b)
                let top = Float((1 << b) - 1)
                XCTAssertGreaterThanOrEqual(s.d * top * 1.001, fits.map(\.d).max()!)
                XCTAssertGreaterThanOrEqual(s.m * top * 1.001, fits.map(\.m).max()!)
                for k in 0 ..< 8 {
                    let x = UnsafeBufferPointer(rebasing: all[k * 32 ..< k * 32 + 32])
                    let grid = Q4KFit.constrained(x, nil, fit: fits[k], super: s, subBits: b)
                    let sc = Q4KFit.code(grid.scale, unit: s.d), mn = Q4KFit.code(grid.offset, unit: s.m)
                    XCTAssertEqual(grid.scale, s.d * Float(sc))
                    XCTAssertEqual(grid.offset, s.m * Float(mn))
                    let nearestD = s.d * min(top, (fits[k].d / s.d).rounded()), nearestM = s.m * min(top, (fits[k].m / s.m).rounded())
                    XCTAssertLessThanOrEqual(Q4KFit.error(x, nil, d: grid.scale, m: grid.offset),
                                             Q4KFit.error(x, nil, d: nearestD, m: nearestM) * (1 + 1e-9))
                }
            }
        }
    }

    /// GPTQ on q4k grids: the payload decodes to the reported values, every group's scale and min
    /// are codes under the row's super-scales, and the output error on the calibration inputs is
    /// no worse than round-to-nearest on the same grids' encoding.
    func testGPTQOnQ4KGrids() throws {
        let rows = 8, cols = 64, n = 256
        var r = SplitMix(5)
        let w = gridMatrix(rows: rows, cols: cols, g: 32, seed: 3).map { $0 + Float(r.nextDouble() - 0.5) * 0.004 }
        // Correlated inputs, so the error GPTQ spreads matters.
        var x = [Float](repeating: 0, count: n * cols)
        for t in 0 ..< n {
            let common = Float(r.nextDouble() * 2 - 1)
            for j in 0 ..< cols { x[t * cols + j] = common + Float(r.nextDouble() * 2 - 1) * 0.5 }
        }
        var h = [Double](repeating: 0, count: cols * cols)
        for t in 0 ..< n { for i in 0 ..< cols { for j in 0 ..< cols { h[i * cols + j] += Double(x[t * cols + i]) * Double(x[t * cols + j]) } } }
        let layout = GroupLayout(rows: rows, cols: cols, bits: 4, groupSize: 32, symmetric: false, subBits: 8)
        let supers = layout.q4kSupers(layout.fitGrids(w, rounding: .mse))
        let opts = GPTQ.Options(bits: 4, groupSize: 32, symmetric: false, rounding: .mse, subBits: 8, supers: supers)
        let g = try GPTQ.quantize(weights: w, rows: rows, cols: cols, hessian: h, options: opts)
        let enc = layout.encodeQ4K(name: "w", codes: g.codes.map { UInt8($0) }, grids: g.grids, supers: supers)
        let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q4k, shape: enc.shape, params: enc.params) }
        XCTAssertEqual(back, g.dequantized)
        let rtnGrids = layout.fitGrids(w, rounding: .mse, supers: supers)
        var rtn = w
        for i in 0 ..< rows * cols { let grid = rtnGrids[i / 32]; rtn[i] = grid.value(grid.code(w[i])) }
        func outputError(_ q: [Float]) -> Double {
            var e = 0.0
            for t in 0 ..< n { for o in 0 ..< rows {
                var d = 0.0
                for j in 0 ..< cols { d += Double(w[o * cols + j] - q[o * cols + j]) * Double(x[t * cols + j]) }
                e += d * d
            } }
            return e
        }
        XCTAssertLessThan(outputError(g.dequantized), outputError(rtn), "GPTQ lowers the output error against RTN on the same super-scales")
    }

    /// `fit` (the block-wise stage fitting GPTQ once per block): on the given Hessian it writes what
    /// GPTQ writes from calibration statistics, and from then on `apply` in the same run (the same
    /// `context.fitted`; the pass's and its copies') rounds on the fitted grids: values near the
    /// fitted ones come back exactly, where another run re-fits its grids and moves them; the
    /// payload still decodes to what is reported.
    func testFitFixesTheGridsThatApplyThenRoundsOn() throws {
        let rows = 6, cols = 64, n = 200
        var r = SplitMix(17)
        let w = (0 ..< rows * cols).map { _ in Float(r.nextDouble() * 2 - 1) * 0.05 }
        var x = [Float](repeating: 0, count: n * cols)
        for t in 0 ..< n {
            let common = Float(r.nextDouble() * 2 - 1)
            for j in 0 ..< cols { x[t * cols + j] = common + Float(r.nextDouble() * 2 - 1) * 0.5 }
        }
        var h = [Double](repeating: 0, count: cols * cols)
        for t in 0 ..< n { for i in 0 ..< cols { for j in 0 ..< cols { h[i * cols + j] += 2 * Double(x[t * cols + i]) * Double(x[t * cols + j]) / Double(n) } } }
        let recipe = #"{"pass": "quantize", "bits": 3, "group_size": 32, "symmetric": false, "sub_bits": 6, "method": "gptq", "damp": 0.01, "weighting": "activation_magnitude", "rounding": "mse"}"#
        let name = "blk.0.ffn_up.weight"
        var pass = try parse(recipe)
        var copy = pass  // as the pipeline's fitters and encoders run copies
        var fitted = WorkTensor(name: name, shape: [rows, cols], values: w)
        try copy.fit(&fitted, hessian: h, context: ctx)
        let enc = try XCTUnwrap(fitted.encoded)
        XCTAssertEqual(enc.encoding, .q3s)
        // GPTQ moved the values against RTN on the same grids (error compensation).
        var onGrid = WorkTensor(name: name, shape: [rows, cols], values: w)
        try pass.apply(&onGrid, context: ctx)
        XCTAssertNotEqual(onGrid.values, fitted.values, "GPTQ's codes differ from rounding the original weights to nearest")
        // Nudged by a fifth of the smallest step between the fitted values of a row: the same values back.
        var nudged = fitted.values
        for i in nudged.indices { nudged[i] += (i % 2 == 0 ? 1 : -1) * 1e-4 }
        var back = WorkTensor(name: name, shape: [rows, cols], values: nudged)
        try pass.apply(&back, context: ctx)
        XCTAssertEqual(back.values, fitted.values, "apply rounds on the fitted grids")
        XCTAssertEqual(back.encoded?.payload, enc.payload)
        let decoded = try XCTUnwrap(back.encoded).payload.withUnsafeBytes { decodePayload($0, encoding: .q3s, shape: enc.shape, params: enc.params) }
        XCTAssertEqual(decoded, back.values)
        // Another run (its own context) never fitted: it searches new grids for the nudged values, and they move.
        var fresh = try parse(recipe)
        var refit = WorkTensor(name: name, shape: [rows, cols], values: nudged)
        try fresh.apply(&refit, context: toyPassContext())
        XCTAssertNotEqual(refit.encoded?.payload, enc.payload, "without a fit the grids are searched again")
        // A large move changes codes but not the grids: every value stays on its group's fitted levels.
        var moved = fitted.values
        for i in stride(from: 0, to: moved.count, by: 5) { moved[i] += 0.03 }
        var m = WorkTensor(name: name, shape: [rows, cols], values: moved)
        try pass.apply(&m, context: ctx)
        XCTAssertNotEqual(m.values, fitted.values)
        for row in 0 ..< rows {
            for g0 in stride(from: 0, to: cols, by: 32) {
                let levels = Set((g0 ..< g0 + 32).map { fitted.values[row * cols + $0] })
                // The fitted group's levels are a subset of its grid; a moved value lands on the grid too,
                // so on one of the 8 levels spanned by the group's scale and zero point.
                let all = levels.union((g0 ..< g0 + 32).map { m.values[row * cols + $0] })
                XCTAssertLessThanOrEqual(all.count, 8, "row \(row) group \(g0 / 32): more than 8 levels")
            }
        }
        // The record counts the tensors `apply` rounded on fitted grids (here: three calls on one).
        XCTAssertEqual(pass.record()["fitted_before_training"], .number(3))
        XCTAssertNil(fresh.record()["fitted_before_training"])
    }
}
