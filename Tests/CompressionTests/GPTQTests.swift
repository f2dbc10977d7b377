@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

final class GPTQTests: XCTestCase {
    func testCholeskyOfInverse() throws {
        // 300: the inverse's rows are split over two threads.
        for n in [5, 300] {
            var g = SplitMix(3)
            let b = (0 ..< n * n).map { _ in g.nextDouble() - 0.5 }
            var a = [Double](repeating: 0, count: n * n)
            for i in 0 ..< n { for j in 0 ..< n { for k in 0 ..< n { a[i * n + j] += b[i * n + k] * b[j * n + k] } }; a[i * n + i] += 0.5 }
            let u = try GPTQ.upperCholeskyOfInverse(a, n: n)
            // U^T U A = I
            var utu = [Double](repeating: 0, count: n * n)
            for i in 0 ..< n { for k in 0 ..< n { var s = 0.0; for m in 0 ..< n { s += u[m * n + i] * u[m * n + k] }; utu[i * n + k] = s } }
            for i in 0 ..< n {
                for j in 0 ..< n {
                    var s = 0.0
                    for k in 0 ..< n { s += utu[i * n + k] * a[k * n + j] }
                    XCTAssertEqual(s, i == j ? 1 : 0, accuracy: 1e-8, "n \(n) [\(i)][\(j)]")
                }
                for j in 0 ..< i { XCTAssertEqual(u[i * n + j], 0) }
            }
        }
        XCTAssertThrowsError(try GPTQ.cholesky([1, 2, 2, 1], n: 2))
    }

    /// The Cholesky factor (8 rows at a time, large columns split over two threads) is bit for bit
    /// the plain one-row-at-a-time factorization's, on sizes with a remainder of rows and one large
    /// enough for the threaded columns; and it fails on a matrix that is not positive definite.
    func testCholeskyIsThePlainFactorization() throws {
        func plain(_ a: [Double], n: Int) -> [Double] {
            var l = [Double](repeating: 0, count: n * n)
            for j in 0 ..< n {
                var s = a[j * n + j]
                for k in 0 ..< j { s -= l[j * n + k] * l[j * n + k] }
                let d = s.squareRoot()
                l[j * n + j] = d
                for i in (j + 1) ..< n {
                    var t = a[i * n + j]
                    for k in 0 ..< j { t -= l[i * n + k] * l[j * n + k] }
                    l[i * n + j] = t / d
                }
            }
            return l
        }
        var g = SplitMix(5)
        for n in [37, 600] {
            let m = 24
            let b = (0 ..< n * m).map { _ in g.nextDouble() - 0.5 }
            var a = [Double](repeating: 0, count: n * n)
            for i in 0 ..< n { for j in 0 ... i { var s = 0.0; for k in 0 ..< m { s += b[i * m + k] * b[j * m + k] }; a[i * n + j] = s; a[j * n + i] = s }; a[i * n + i] += 0.1 }
            let l = try GPTQ.cholesky(a, n: n)
            let p = plain(a, n: n)
            XCTAssertEqual(l.indices.filter { l[$0].bitPattern != p[$0].bitPattern }.count, 0, "n \(n)")
            var bad = a
            bad[(n - 1) * n + n - 1] = -1
            XCTAssertThrowsError(try GPTQ.cholesky(bad, n: n))
        }
    }

    func testLowerOutputErrorThanRoundToNearest() throws {
        let tokens = 256
        for (rows, cols, bits, group, sym, actOrder) in [(16, 64, 4, 32, true, false), (12, 96, 4, 32, false, true),
                                                        (8, 70, 4, 16, false, false), (16, 64, 8, 0, true, false),
                                                        (16, 64, 3, 32, false, false), (12, 96, 3, 32, true, true)] {
            let x = correlatedInputs(tokens: tokens, cols: cols, seed: UInt64(cols))
            var g = SplitMix(UInt64(rows * 7))
            let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
            var hess = GPTQ.Hessian(cols: cols)
            x.withUnsafeBufferPointer { hess.add($0, tokens: tokens) }
            let opts = GPTQ.Options(bits: bits, groupSize: group == 0 ? nil : group, symmetric: sym, actOrder: actOrder)
            let r = try GPTQ.quantize(weights: w, rows: rows, cols: cols, hessian: hess.matrix(), options: opts)
            var rtn = [Float](repeating: 0, count: w.count)
            if bits == 8 {
                _ = Quantize.quantizeQ8(name: "w", values: w, rows: rows, cols: cols, symmetric: sym, dequantized: &rtn)
            } else {
                _ = try Quantize.quantizeGrouped(name: "w", values: w, rows: rows, cols: cols, bits: bits, groupSize: group,
                                                 symmetric: sym, dequantized: &rtn)
            }
            let eg = outputError(w, r.dequantized, x, rows: rows, cols: cols, tokens: tokens)
            let er = outputError(w, rtn, x, rows: rows, cols: cols, tokens: tokens)
            XCTAssertLessThan(eg, er * 0.9, "bits \(bits) group \(group) sym \(sym) act \(actOrder): gptq \(eg) rtn \(er)")
            // the payload decodes to exactly what GPTQ reports
            let layout = GroupLayout(rows: rows, cols: cols, bits: bits, groupSize: group == 0 ? nil : group, symmetric: sym)
            let enc = layout.encode(name: "w", codes: r.codes, grids: r.grids)
            let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: enc.encoding, shape: enc.shape, params: enc.params) }
            XCTAssertEqual(back, r.dequantized)
        }
    }

    /// Outlier columns (the last input of every group, 40x the others) make their groups' grids
    /// coarse; the error GPTQ spreads from them onto the next group's small weights then runs off a
    /// grid fitted to the original weights (clipping), while a grid fitted when the sweep reaches
    /// the group covers the compensated values.
    func testLazyGroupGridsBeatStaticGrids() throws {
        let rows = 16, cols = 128, tokens = 256, group = 32
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 21)
        var g = SplitMix(9)
        let w = (0 ..< rows * cols).map { i in Float(g.nextDouble() * 2 - 1) * (i % cols % group == group - 1 ? 1 : 0.025) }
        var hess = GPTQ.Hessian(cols: cols)
        x.withUnsafeBufferPointer { hess.add($0, tokens: tokens) }
        for (rounding, magnitude) in [(Rounding.minmax, false), (.mse, true)] {
            var o = GPTQ.Options(bits: 4, groupSize: group, symmetric: false, rounding: rounding, magnitudeWeighted: magnitude)
            let lazy = try GPTQ.quantize(weights: w, rows: rows, cols: cols, hessian: hess.matrix(), options: o)
            o.staticGroups = true
            let fixed = try GPTQ.quantize(weights: w, rows: rows, cols: cols, hessian: hess.matrix(), options: o)
            let el = outputError(w, lazy.dequantized, x, rows: rows, cols: cols, tokens: tokens)
            let es = outputError(w, fixed.dequantized, x, rows: rows, cols: cols, tokens: tokens)
            XCTAssertLessThan(el, es * 0.8, "\(rounding): lazy \(el) static \(es)")
            print("lazy vs static grids (\(rounding)): \(el) vs \(es)")
            // still exactly what the payload decodes to
            let enc = GroupLayout(rows: rows, cols: cols, bits: 4, groupSize: group, symmetric: false)
                .encode(name: "w", codes: lazy.codes, grids: lazy.grids)
            let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: enc.encoding, shape: enc.shape, params: enc.params) }
            XCTAssertEqual(back, lazy.dequantized)
        }
    }

    /// shrink 1 leaves the Hessian diagonal: no error is spread, and GPTQ is round-to-nearest on its grids.
    func testFullShrinkIsRoundToNearest() throws {
        let rows = 8, cols = 64, tokens = 128
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 4)
        var g = SplitMix(6)
        let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
        var hess = GPTQ.Hessian(cols: cols)
        x.withUnsafeBufferPointer { hess.add($0, tokens: tokens) }
        var o = GPTQ.Options(bits: 4, groupSize: 32, symmetric: false, rounding: .mse, magnitudeWeighted: true)
        o.shrink = 1
        let r = try GPTQ.quantize(weights: w, rows: rows, cols: cols, hessian: hess.matrix(), options: o)
        var rtn = [Float](repeating: 0, count: w.count)
        _ = try Quantize.quantizeQ4(name: "w", values: w, rows: rows, cols: cols, groupSize: 32, symmetric: false,
                                    rounding: .mse, magnitudeWeighted: true, dequantized: &rtn)
        XCTAssertEqual(r.dequantized, rtn)
    }

    /// Rows are independent: sweeping a tall matrix a few rows at a time gives the same codes,
    /// grids and values as one sweep (the output head is quantized that way to bound memory).
    func testRowChunksEqualOneSweep() throws {
        let rows = 23, cols = 64, tokens = 128
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 8)
        var g = SplitMix(12)
        let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
        var hess = GPTQ.Hessian(cols: cols)
        x.withUnsafeBufferPointer { hess.add($0, tokens: tokens) }
        for (bits, group) in [(4, 32), (8, 0)] {
            let o = GPTQ.Options(bits: bits, groupSize: group == 0 ? nil : group, symmetric: false, rounding: .mse, magnitudeWeighted: true)
            let f = try GPTQ.factor(hessian: hess.matrix(), cols: cols, damp: o.damp, shrink: o.shrink, actOrder: o.actOrder)
            let whole = GPTQ.quantize(weights: w, rows: rows, cols: cols, factor: f, options: o, rowChunk: rows)
            let chunked = GPTQ.quantize(weights: w, rows: rows, cols: cols, factor: f, options: o, rowChunk: 5)
            XCTAssertEqual(chunked.codes, whole.codes)
            XCTAssertEqual(chunked.dequantized, whole.dequantized)
            XCTAssertEqual(chunked.grids.map(\.scale), whole.grids.map(\.scale))
            XCTAssertEqual(chunked.grids.map(\.zero), whole.grids.map(\.zero))
            // and the sweep did change something (error compensation), so the comparison has teeth
            var rtn = [Float](repeating: 0, count: w.count)
            if bits == 8 {
                _ = Quantize.quantizeQ8(name: "w", values: w, rows: rows, cols: cols, symmetric: false, rounding: .mse, magnitudeWeighted: true, dequantized: &rtn)
            } else {
                _ = try Quantize.quantizeQ4(name: "w", values: w, rows: rows, cols: cols, groupSize: group, symmetric: false,
                                            rounding: .mse, magnitudeWeighted: true, dequantized: &rtn)
            }
            XCTAssertNotEqual(chunked.dequantized, rtn)
        }
    }

    func testPrunedWeightsStayZero() throws {
        let rows = 8, cols = 64, tokens = 128
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 11)
        var g = SplitMix(5)
        var w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
        for i in stride(from: 0, to: w.count, by: 2) { w[i] = 0 }
        var hess = GPTQ.Hessian(cols: cols)
        x.withUnsafeBufferPointer { hess.add($0, tokens: tokens) }
        let r = try GPTQ.quantize(weights: w, rows: rows, cols: cols, hessian: hess.matrix(),
                                  options: .init(bits: 4, groupSize: 32, symmetric: false))
        for i in stride(from: 0, to: w.count, by: 2) { XCTAssertEqual(r.dequantized[i], 0) }
    }
}
