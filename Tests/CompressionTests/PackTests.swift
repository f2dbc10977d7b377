@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

/// The pack pass: `auto` keeps the smallest exact layout per tensor, explicit formats pack every
/// matrix, values never change, q4 stays dense, and the record adds up.
final class PackTests: XCTestCase {
    private let ctx = toyPassContext(index: 2)

    /// A q8-quantized [rows, cols] tensor with `sparsity` of its weights pruned.
    private func quantized(rows: Int, cols: Int, sparsity: Double, seed: UInt64, bits: Int = 8) throws -> WorkTensor {
        var g = SplitMix(seed)
        var v = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) }
        for i in v.indices where g.nextDouble() < sparsity { v[i] = 0 }
        var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
        var q = bits == 8 ? Quantize(bits: 8, symmetric: true) : Quantize(bits: 4, symmetric: true, groupSize: 32)
        try q.apply(&t, context: PassContext(config: ctx.config, index: 1, recipeFile: "test"))
        return t
    }

    private func decoded(_ t: WorkTensor) throws -> [Float] {
        let e = try XCTUnwrap(t.encoded)
        return e.payload.withUnsafeBytes { decodePayload($0, encoding: e.encoding, shape: e.shape, params: e.params) }
    }

    func testAutoKeepsTheSmallestExactLayout() throws {
        // For the large shape the winner is clear; small ones tie often (64-byte alignment), where dense, then bitmask, wins.
        let expected: [Double: Encoding] = [0: .q8, 0.5: .bitmask, 0.99: .csr]
        for (rows, cols) in [(16, 64), (7, 33), (64, 600)] {
            for sparsity in [0.0, 0.5, 0.9, 0.99] {
                var t = try quantized(rows: rows, cols: cols, sparsity: sparsity, seed: UInt64(rows * cols) + UInt64(sparsity * 100))
                let before = try decoded(t)
                let dense = try XCTUnwrap(t.encoded)
                var sizes: [Encoding: Int] = [.q8: dense.payload.count,
                                              .csr: try XCTUnwrap(dense.packedSparse(as: .csr)).payload.count,
                                              .bitmask: try XCTUnwrap(dense.packedSparse(as: .bitmask)).payload.count]
                if let nm = dense.bestNMCandidate() { sizes[.nm] = nm.bytes }
                var p = Pack(format: .auto)
                try p.apply(&t, context: ctx)
                let e = try XCTUnwrap(t.encoded)
                let tag = "[\(rows), \(cols)] sparsity \(sparsity)"
                XCTAssertEqual(e.payload.count, sizes.values.min(), tag)
                if rows == 64, let want = expected[sparsity] { XCTAssertEqual(e.encoding, want, tag) }
                XCTAssertEqual(try decoded(t), before, tag)
                XCTAssertEqual(t.values, before, tag)
                XCTAssertEqual(e.nnz.map { $0 == before.filter { $0 != 0 }.count } ?? true, true, tag)
            }
        }
    }

    func testExplicitFormatsAndWhatStaysDense() throws {
        for format in ["csr", "bitmask"] {
            var p = Pack(format: try XCTUnwrap(PackFormat(rawValue: format)))
            var t = try quantized(rows: 9, cols: 40, sparsity: 0.1, seed: 3)
            let before = try decoded(t)
            try p.apply(&t, context: ctx)
            XCTAssertEqual(t.encoded?.encoding.rawValue, format)
            XCTAssertEqual(try decoded(t), before)
            // 1-D tensors stay dense (f32, as no pass encoded them).
            var norm = WorkTensor(name: "blk.0.attn_norm.weight", shape: [8], values: [0, 1, 0, 0, 0, 0, 0, 2])
            try p.apply(&norm, context: ctx)
            XCTAssertNil(norm.encoded)
            // Float tensors pack with f32 values.
            var f = WorkTensor(name: "output.weight", shape: [3, 5], values: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3])
            try p.apply(&f, context: ctx)
            XCTAssertEqual(f.encoded?.params.valueEncoding, .f32)
            XCTAssertEqual(try decoded(f), [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3])
            // q4 is refused explicitly.
            var q4 = try quantized(rows: 4, cols: 64, sparsity: 0.5, seed: 4, bits: 4)
            XCTAssertThrowsError(try p.apply(&q4, context: ctx)) {
                XCTAssertEqual("\($0)", "pass 'pack': tensor 'blk.0.ffn_up.weight': is q4, which stays dense: \(format) holds f32, f16 or q8 values (use format 'auto' or 'dense', or exclude it)")
            }
        }
        var auto = Pack(format: .auto)
        var q4 = try quantized(rows: 4, cols: 64, sparsity: 0.9, seed: 4, bits: 4)
        try auto.apply(&q4, context: ctx)
        XCTAssertEqual(q4.encoded?.encoding, .q4)
        var dense = Pack(format: .dense)
        var t = try quantized(rows: 9, cols: 40, sparsity: 0.99, seed: 5)
        try dense.apply(&t, context: ctx)
        XCTAssertEqual(t.encoded?.encoding, .q8)
    }

    /// A q8 tensor pruned to `pattern` (N:M) along its rows.
    private func nmQuantized(rows: Int, cols: Int, pattern: NMPattern, seed: UInt64) throws -> WorkTensor {
        var g = SplitMix(seed)
        var v = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) }
        pattern.apply(to: &v, rows: rows, cols: cols)
        var t = WorkTensor(name: "blk.0.ffn_up.weight", shape: [rows, cols], values: v)
        var q = Quantize(bits: 8, symmetric: true)
        try q.apply(&t, context: PassContext(config: ctx.config, index: 1, recipeFile: "test"))
        return t
    }

    func testAutoPicksNMForNMTensorsWhenSmallest() throws {
        for (pattern, cols) in [(NMPattern(n: 2, m: 4)!, 600), (NMPattern(n: 1, m: 4)!, 601), (NMPattern(n: 2, m: 8)!, 67)] {
            var t = try nmQuantized(rows: 64, cols: cols, pattern: pattern, seed: 7)
            let before = try decoded(t)
            let dense = try XCTUnwrap(t.encoded)
            let bitmask = try XCTUnwrap(dense.packedSparse(as: .bitmask)).payload.count
            var p = Pack(format: .auto)
            try p.apply(&t, context: ctx)
            let e = try XCTUnwrap(t.encoded)
            XCTAssertEqual(e.encoding, .nm, "\(pattern)")
            XCTAssertEqual(e.params.n, pattern.n)
            XCTAssertEqual(e.params.m, pattern.m)
            XCTAssertEqual(e.params.valueEncoding, .q8)
            XCTAssertLessThan(e.payload.count, bitmask)
            XCTAssertEqual(try decoded(t), before)
            XCTAssertEqual(t.values, before)
            let r = p.record()
            XCTAssertEqual(r["chosen"], ["nm": 1])
            XCTAssertEqual(r["per_tensor"]?["blk.0.ffn_up.weight"], .string("nm \(pattern)"))
        }
    }

    func testExplicitNMPacksAndRefusesWhatIsNotNM() throws {
        // No pattern given: the smallest conforming one (a 1:4 tensor also satisfies 2:4 and 2:8; 1:4 is smallest).
        var p = Pack(format: .nm)
        var t = try nmQuantized(rows: 9, cols: 41, pattern: NMPattern(n: 1, m: 4)!, seed: 3)
        let before = try decoded(t)
        try p.apply(&t, context: ctx)
        XCTAssertEqual(t.encoded?.encoding, .nm)
        XCTAssertEqual(t.encoded?.params.n, 1)
        XCTAssertEqual(try decoded(t), before)
        // A given pattern is used even when a smaller one fits.
        var p24 = Pack(format: .nm, pattern: NMPattern(n: 2, m: 4))
        var u = try nmQuantized(rows: 9, cols: 41, pattern: NMPattern(n: 1, m: 4)!, seed: 3)
        try p24.apply(&u, context: ctx)
        XCTAssertEqual(u.encoded?.params.n, 2)
        XCTAssertEqual(try decoded(u), before)
        XCTAssertEqual(p24.record()["pattern"], "2:4")
        // Not N:M: refused, naming the tensor.
        var unstructured = try quantized(rows: 9, cols: 40, sparsity: 0.5, seed: 3)
        XCTAssertThrowsError(try p.apply(&unstructured, context: ctx)) {
            let d = "\($0)"
            XCTAssertTrue(d.hasPrefix("pass 'pack': tensor 'blk.0.ffn_up.weight': [9, 40] is not N:M sparse"), d)
        }
        var p14 = Pack(format: .nm, pattern: NMPattern(n: 1, m: 4))
        var v = try nmQuantized(rows: 9, cols: 41, pattern: NMPattern(n: 2, m: 4)!, seed: 4)
        XCTAssertThrowsError(try p14.apply(&v, context: ctx)) {
            let d = "\($0)"
            XCTAssertTrue(d.hasPrefix("pass 'pack': tensor 'blk.0.ffn_up.weight': [9, 41] is not 1:4"), d)
        }
        // q4 is refused; 1-D tensors stay dense.
        var q4 = try quantized(rows: 4, cols: 64, sparsity: 0.5, seed: 4, bits: 4)
        XCTAssertThrowsError(try p.apply(&q4, context: ctx)) { XCTAssertTrue("\($0)".contains("is q4, which stays dense: nm holds"), "\($0)") }
        var norm = WorkTensor(name: "blk.0.attn_norm.weight", shape: [8], values: [0, 1, 0, 0, 0, 0, 0, 2])
        try p.apply(&norm, context: ctx)
        XCTAssertNil(norm.encoded)
    }

    func testRecordTotals() throws {
        var p = Pack(format: .auto)
        var total = 0, packed = 0
        for (i, s) in [0.0, 0.5, 0.99].enumerated() {
            var t = try quantized(rows: 64, cols: 600, sparsity: s, seed: UInt64(10 + i))
            total += t.encoded!.payload.count
            try p.apply(&t, context: ctx)
            packed += t.encoded!.payload.count
        }
        var n = WorkTensor(name: "output_norm.weight", shape: [4], values: [1, 2, 3, 4])
        try p.apply(&n, context: ctx)
        total += 16; packed += 16
        let r = p.record()
        XCTAssertEqual(r["chosen"], ["dense": 2, "bitmask": 1, "csr": 1])
        XCTAssertEqual(r["dense_bytes"], .number(Double(total)))
        XCTAssertEqual(r["packed_bytes"], .number(Double(packed)))
        XCTAssertEqual(r["bytes_saved"], .number(Double(total - packed)))
        XCTAssertEqual(r["per_tensor"]?["output_norm.weight"], "dense")
    }

    func testRecipeFields() throws {
        for format in ["auto", "dense", "csr", "bitmask", "nm"] {
            let r = try Recipe.parse(Data(#"{"name": "p", "passes": [{"pass": "pack", "format": "\#(format)"}]}"#.utf8), file: "r.json")
            XCTAssertEqual((r.passes.first as? Pack)?.format.rawValue, format)
        }
        XCTAssertThrowsError(try Recipe.parse(Data(#"{"name": "p", "passes": [{"pass": "pack", "format": "coo"}]}"#.utf8), file: "r.json")) {
            XCTAssertTrue("\($0)".contains("passes[0].format"), "\($0)")
        }
        let nm = try Recipe.parse(Data(#"{"name": "p", "passes": [{"pass": "pack", "format": "nm", "pattern": "2:4"}]}"#.utf8), file: "r.json")
        XCTAssertEqual((nm.passes.first as? Pack)?.pattern, NMPattern(n: 2, m: 4))
        for bad in [#"{"pass": "pack", "format": "auto", "pattern": "2:4"}"#, #"{"pass": "pack", "format": "nm", "pattern": "4:2"}"#] {
            XCTAssertThrowsError(try Recipe.parse(Data(#"{"name": "p", "passes": [\#(bad)]}"#.utf8), file: "r.json")) {
                XCTAssertTrue("\($0)".contains("passes[0].pattern"), "\($0)")
            }
        }
    }
}
