@testable import Compression
import EdgeFormat
import EdgeKernels
import Foundation
import TestSupport
import XCTest

/// `quantize` with bits 3: recipe fields, the q3 payload it writes, its grids (8 levels, f16 scales),
/// the error it leaves (bounded per group, between int4's and nothing), and the mse search.
final class Q3QuantizeTests: XCTestCase {
    private let ctx = toyPassContext()

    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var g = SplitMix(seed)
        return (0 ..< n).map { _ in Float(g.nextDouble() * 2 - 1) * 0.1 }
    }

    private func quantize(_ v: [Float], rows: Int, cols: Int, bits: Int, group: Int, symmetric: Bool,
                          rounding: Rounding = .minmax) throws -> WorkTensor {
        var q = Quantize(bits: bits, symmetric: symmetric, groupSize: group, rounding: rounding)
        var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
        try q.apply(&t, context: ctx)
        return t
    }

    private func relativeRMSE(_ a: [Float], _ b: [Float]) -> Double {
        var e = 0.0, s = 0.0
        for i in a.indices { e += Double(a[i] - b[i]) * Double(a[i] - b[i]); s += Double(a[i]) * Double(a[i]) }
        return (e / s).squareRoot()
    }

    func testRecipeFields() throws {
        func parse(_ pass: String) throws -> Quantize {
            try XCTUnwrap(Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json").passes[0] as? Quantize)
        }
        func err(_ pass: String) -> RecipeError? {
            do { _ = try Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json"); return nil } catch { return error as? RecipeError }
        }
        let q = try parse(#"{"pass": "quantize", "bits": 3, "group_size": 64, "symmetric": false}"#)
        XCTAssertEqual(q.bits, 3)
        XCTAssertEqual(q.groupSize, 64)
        XCTAssertFalse(q.symmetric)
        XCTAssertNoThrow(try parse(#"{"pass": "quantize", "bits": 3, "group_size": 32, "method": "gptq", "rounding": "mse"}"#))
        XCTAssertEqual(err(#"{"pass": "quantize", "bits": 3}"#)?.field, "passes[0].group_size", "group_size is required")
        XCTAssertEqual(err(#"{"pass": "quantize", "bits": 3, "group_size": 12}"#)?.field, "passes[0].group_size")
        XCTAssertEqual(err(#"{"pass": "quantize", "bits": 2, "group_size": 64}"#)?.field, "passes[0].bits")
    }

    /// Every decoded weight is within half a step of its group's min/max grid (step max|w|/3 symmetric,
    /// range/7 asymmetric, a little more for the f16 scale), on the grid's 8 levels, and 0 stays 0;
    /// the payload is q3 and decodes to exactly what the pass reports.
    func testGroupErrorBoundAndGridOddColumns() throws {
        for (rows, cols, g) in [(2, 64, 32), (3, 70, 32), (1, 129, 64), (4, 7, 16), (5, 40, 8)] {
            var v = random(rows * cols, seed: UInt64(cols))
            v[1] = 0
            for sym in [true, false] {
                let t = try quantize(v, rows: rows, cols: cols, bits: 3, group: g, symmetric: sym)
                let enc = try XCTUnwrap(t.encoded)
                XCTAssertEqual(enc.encoding, .q3)
                XCTAssertEqual(enc.params, EncodingParams(symmetric: sym, groupSize: g))
                guard case let .q3(l)? = enc.layout else { return XCTFail("not a q3 layout") }
                let back = enc.payload.withUnsafeBytes { decodePayload($0, encoding: .q3, shape: enc.shape, params: enc.params) }
                XCTAssertEqual(back, t.values, "pass reports exactly what the file decodes to")
                XCTAssertEqual(back[1], 0, "a pruned weight stays exactly zero")
                for r in 0 ..< rows {
                    for (gi, start) in stride(from: 0, to: cols, by: g).enumerated() {
                        let idx = (r * cols + start) ..< (r * cols + min(cols, start + g))
                        let grp = v[idx]
                        let hi = grp.max()!, lo = grp.min()!
                        let step = sym ? max(hi, -lo) / 3 : (max(hi, 0) - min(lo, 0)) / 7
                        let scale = enc.payload.withUnsafeBytes {
                            edge_f16_to_f32(UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: l.scaleOffset + 2 * (r * l.groups + gi), as: UInt16.self)))
                        }
                        let zero = sym ? 4 : Int(enc.payload[l.zeroOffset + r * l.groups + gi])
                        XCTAssertTrue((0 ... 7).contains(zero))
                        for i in idx {
                            XCTAssertLessThanOrEqual((back[i] - v[i]).magnitude, step * 0.5005 + 1e-7, "sym \(sym) \(rows)x\(cols) g\(g) i \(i)")
                            let code = (back[i] / scale).rounded() + Float(zero)
                            XCTAssertTrue((0 ... 7).contains(Int(code)), "code \(code) off the 8-level grid")
                            XCTAssertEqual(back[i], scale * (code - Float(zero)), "on the grid")
                        }
                    }
                }
            }
        }
    }

    /// On uniform weights the relative RMSE of 3-bit groups is about 15/7 times int4's (step ratio)
    /// and, at g = 64 asymmetric, about 0.14; the payload costs 3.375 bits a weight.
    func testErrorAndSizeAgainstInt4() throws {
        let rows = 16, cols = 256
        let v = random(rows * cols, seed: 77)
        for sym in [true, false] {
            let q3 = try quantize(v, rows: rows, cols: cols, bits: 3, group: 64, symmetric: sym)
            let q4 = try quantize(v, rows: rows, cols: cols, bits: 4, group: 64, symmetric: sym)
            let e3 = relativeRMSE(v, q3.values), e4 = relativeRMSE(v, q4.values)
            XCTAssertLessThan(e3, sym ? 0.2 : 0.16, "sym \(sym)")
            XCTAssertGreaterThan(e3, 1.6 * e4, "sym \(sym): q3 \(e3) q4 \(e4)")
            XCTAssertLessThan(e3, 2.8 * e4, "sym \(sym): q3 \(e3) q4 \(e4)")
            let bits = Double(try XCTUnwrap(q3.encoded).payload.count * 8) / Double(rows * cols)
            XCTAssertEqual(bits, sym ? 3.25 : 3.375, accuracy: 1e-9)
        }
    }

    /// The mse search is never worse than min/max on any tensor (it is one of its candidates) and
    /// better on weights with outliers.
    func testMSESearchBeatsMinMax() throws {
        let rows = 8, cols = 128
        var v = random(rows * cols, seed: 5)
        for i in stride(from: 0, to: v.count, by: 37) { v[i] *= 8 }  // outliers widen min/max grids
        for sym in [true, false] {
            let a = try quantize(v, rows: rows, cols: cols, bits: 3, group: 32, symmetric: sym)
            let b = try quantize(v, rows: rows, cols: cols, bits: 3, group: 32, symmetric: sym, rounding: .mse)
            let ea = relativeRMSE(v, a.values), eb = relativeRMSE(v, b.values)
            XCTAssertLessThan(eb, ea * 0.95, "sym \(sym): mse \(eb) minmax \(ea)")
            XCTAssertEqual(b.encoded?.encoding, .q3)
        }
    }

    func testPackKeepsQ3Dense() throws {
        var v = random(4 * 64, seed: 3)
        for i in stride(from: 0, to: v.count, by: 2) { v[i] = 0 }
        var t = try quantize(v, rows: 4, cols: 64, bits: 3, group: 32, symmetric: false)
        let before = t.encoded
        var auto = Pack(format: .auto)
        try auto.apply(&t, context: ctx)
        XCTAssertEqual(t.encoded?.payload, before?.payload)
        XCTAssertEqual(t.encoded?.encoding, .q3)
        var csr = Pack(format: .csr)
        XCTAssertThrowsError(try csr.apply(&t, context: ctx)) { XCTAssertTrue("\($0)".contains("is q3, which stays dense"), "\($0)") }
    }
}
