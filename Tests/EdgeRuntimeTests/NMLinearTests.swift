import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// `Linear` over packed nm payloads (computed from the packed bytes by the nm kernels, never
/// densified) gives the outputs and rows of the same values stored dense, and a fixture model whose
/// linear weights are nm-packed gives the logits of the same weights run dense.
final class NMLinearTests: XCTestCase {
    /// Keeps, in each group of `m` columns of each row, the `n` largest |w| (the tail group of
    /// `cols % m` columns: min(n, tail)); zeroes the rest.
    static func prune(_ w: [Float], rows: Int, cols: Int, n: Int, m: Int) -> [Float] {
        var out = w
        for r in 0 ..< rows {
            var c0 = 0
            while c0 < cols {
                let len = min(m, cols - c0), keep = min(n, len)
                let order = (0 ..< len).sorted { abs(w[r * cols + c0 + $0]) > abs(w[r * cols + c0 + $1]) }
                for j in order[keep...] { out[r * cols + c0 + j] = 0 }
                c0 += len
            }
        }
        return out
    }

    /// Deterministic values in -1...1, row 1 zero when there are 3+ rows.
    private func values(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        var r = XorShiftRandom(seed)
        return (0 ..< rows * cols).map { i in
            let v = r.float(-1, 1)
            return rows >= 3 && i / cols == 1 ? 0 : v
        }
    }

    private func decoded(_ t: EncodedTensor) -> [Float] {
        t.payload.withUnsafeBytes { decodePayload($0, encoding: t.encoding, shape: t.shape, params: t.params) }
    }

    func testNMLinearMatchesDense() throws {
        var seed: UInt64 = 11
        for (n, m) in [(2, 4), (1, 4), (2, 8), (3, 5)] {
            for (rows, cols) in [(1, 1), (5, 17), (13, 64), (40, 302), (33, 1101)] {
                seed += 1
                let w = Self.prune(values(rows: rows, cols: cols, seed: seed), rows: rows, cols: cols, n: n, m: m)
                let dense: [EncodedTensor] = [.f32(name: "w", shape: [rows, cols], values: w), .f16(name: "w", shape: [rows, cols], values: w),
                                              QuantizedWeightsTests.encode("w", [rows, cols], w, .q8(symmetric: true)),
                                              QuantizedWeightsTests.encode("w", [rows, cols], w, .q8(symmetric: false))]
                for d in dense {
                    let tag = "\(n):\(m) of \(d.encoding) sym \(String(describing: d.params.symmetric)) [\(rows), \(cols)]"
                    let p = try XCTUnwrap(d.packedNM(n: n, m: m), tag)
                    XCTAssertEqual(decoded(p), decoded(d), tag)
                    let packed = try Linear(name: "w", source: .encoded(p))
                    XCTAssertEqual(packed.encoding, .nm)
                    let reference = try Linear(name: "w", source: .floats(decoded(d), shape: [rows, cols]))
                    // f32 activations: the reference runs the decoded weights as f32 (the int16 decoding
                    // path of 2:4 symmetric q8 is checked against dense q8 below).
                    assertSameLinear(packed, products: reference, rows: reference, tag: tag, activations: .f32) { T in
                        values(rows: T, cols: cols, seed: seed + 1000).map { $0 + 0.5 }
                    }
                }
            }
        }
    }

    /// Under the default `.i16` 2:4 symmetric q8 multiplies int16 activations (`edge_spmm_nm24_q8_i16`:
    /// rows streamed up to 4 tokens, tiles expanded to dense int8 above) and gives exactly the dense
    /// symmetric q8 product of the same weights, at every token and thread count; other n:m keep the
    /// f32 kernels.
    func testNM24Q8DecodingEqualsDenseQ8I16() throws {
        for (rows, cols) in [(5, 17), (40, 302), (33, 1101), (7, 576)] {
            let w = Self.prune(values(rows: rows, cols: cols, seed: UInt64(rows * cols)), rows: rows, cols: cols, n: 2, m: 4)
            let dense = QuantizedWeightsTests.encode("w", [rows, cols], w, .q8(symmetric: true))
            let packed = try Linear(name: "w", source: .encoded(XCTUnwrap(dense.packedNM(n: 2, m: 4))))
            let base = try Linear(name: "w", source: .encoded(dense))
            for T in Array(1 ... Linear.q4I16MaxTokens) + [5, 13, 40] {
                let x = values(rows: T, cols: cols, seed: 99)
                for threads in [1, 3] {
                    XCTAssertEqual(packed.matmul(x, tokens: T, threads: threads).map(\.bitPattern),
                                   base.matmul(x, tokens: T, threads: threads).map(\.bitPattern),
                                   "[\(rows), \(cols)] T \(T) threads \(threads)")
                }
            }
        }
    }

    /// `denseQ8Copy` of packed 2:4 symmetric q8 is the dense matrix it was packed from (the same
    /// products to the bit); other n:m have none.
    func testDenseQ8CopyOfTwoOfFourIsTheDenseMatrix() throws {
        for (rows, cols) in [(5, 17), (40, 302), (7, 576)] {
            let w = Self.prune(values(rows: rows, cols: cols, seed: UInt64(rows * cols) + 3), rows: rows, cols: cols, n: 2, m: 4)
            let dense = QuantizedWeightsTests.encode("w", [rows, cols], w, .q8(symmetric: true))
            let packed = try Linear(name: "w", source: .encoded(XCTUnwrap(dense.packedNM(n: 2, m: 4))))
            let copy = try XCTUnwrap(packed.denseQ8Copy())
            XCTAssertEqual(copy.encoding, .q8)
            XCTAssertEqual(packed.denseQ8CopyBytes, dense.payload.count)
            for T in [1, 4, 5, 13] {
                let x = values(rows: T, cols: cols, seed: 5)
                XCTAssertEqual(copy.matmul(x, tokens: T, threads: 2).map(\.bitPattern),
                               packed.matmul(x, tokens: T, threads: 2).map(\.bitPattern), "[\(rows), \(cols)] T \(T)")
            }
        }
        let w = Self.prune(values(rows: 6, cols: 48, seed: 8), rows: 6, cols: 48, n: 1, m: 4)
        let other = try Linear(name: "w", source: .encoded(XCTUnwrap(QuantizedWeightsTests.encode("w", [6, 48], w, .q8(symmetric: true)).packedNM(n: 1, m: 4))))
        XCTAssertNil(other.denseQ8Copy())
    }

    /// Every linear weight of the blocks N:M-pruned and quantized, run packed as nm (from an `.edge`
    /// file, i.e. from the mapped bytes) and run dense (the decoded values as f32): same logits.
    func testFixtureModelWithNMTensorsMatchesDense() throws {
        let dir = try temporaryFolder(self)
        for (fixtureName, n, m, scheme) in [("tiny-llama", 2, 4, QuantizedWeightsTests.Scheme.q8(symmetric: true)),
                                            ("tiny-gpt2", 3, 5, .q8(symmetric: false)), ("tiny-llama", 1, 4, .f16)] {
            let fixture = try FixtureModel(fixtureName)
            let path = dir.appendingPathComponent("\(fixtureName)-\(n)of\(m).edge").path
            let w = try EdgeWriter(path: path, config: fixture.config, provenance: Provenance(sourceSHA256: String(repeating: "0", count: 64), sourceFormat: "safetensors"))
            var dense: [String: WeightSource] = [:]
            var packedCount = 0
            for (name, shape) in fixture.config.expectedTensors() {
                let t = try XCTUnwrap(fixture.tensors[name])
                guard shape.count == 2, name.hasPrefix("blk.") else {
                    try w.add(.f32(name: name, shape: shape, values: t.values))
                    dense[name] = .floats(t.values, shape: shape)
                    continue
                }
                let pruned = Self.prune(t.values, rows: shape[0], cols: shape[1], n: n, m: m)
                let e = QuantizedWeightsTests.encode(name, shape, pruned, scheme)
                let p = try XCTUnwrap(e.packedNM(n: n, m: m), name)
                try w.add(p)
                packedCount += 1
                dense[name] = .floats(decoded(e), shape: shape)
            }
            try w.addBlob(name: "tokenizer.json", bytes: fixture.tokenizerJSON)
            try w.finish()
            XCTAssertGreaterThan(packedCount, 0)
            let file = try EdgeFile(path: path)
            XCTAssertEqual(file.tensors.filter { $0.encoding == .nm }.count, packedCount)
            let tokens: [Int32] = [0, 17, 301, 45, 256, 3, 99, 511, 128, 64, 7, 200, 13, 450, 31, 8, 77, 333, 2, 160]
            let a = try EdgeModel(file: file).logits(tokens)
            let b = try EdgeModel(config: fixture.config, tensors: dense).logits(tokens)
            let err = relativeError(a, b)
            XCTAssertLessThan(err, 1e-4, "\(fixtureName) \(n):\(m) \(scheme): nm-packed vs dense")
            print("\(fixtureName) \(n):\(m) \(scheme): nm-packed vs dense \(err)")
            // Dense copies made at load (SparseWeights.dense): 2:4 symmetric q8 matrices become dense q8,
            // the logits the same to the bit; other n:m stay packed.
            let copied = try EdgeModel(file: file, sparse: .dense)
            XCTAssertEqual(copied.denseCopies.count, n == 2 && m == 4 && fixtureName == "tiny-llama" && "\(scheme)".contains("q8") ? packedCount : 0)
            XCTAssertEqual(try copied.logits(tokens).map(\.bitPattern), a.map(\.bitPattern), "\(fixtureName) \(n):\(m) dense copies")
            XCTAssertEqual(try EdgeModel(file: file, sparse: .keep).denseCopies, [])
        }
    }

    func testLyingNMPayloadIsRefusedAtInit() throws {
        let w = Self.prune(values(rows: 4, cols: 9, seed: 3), rows: 4, cols: 9, n: 2, m: 4)
        var p = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [4, 9], values: w).packedNM(n: 2, m: 4))
        p.payload[0] = 0b0000_0101  // group 0 of row 0: indices 1, 1 (not increasing)
        XCTAssertThrowsError(try Linear(name: "blk.0.ffn_up.weight", source: .encoded(p), origin: "m.edge")) {
            let d = "\($0)"
            XCTAssertTrue(d.contains("blk.0.ffn_up.weight") && d.contains("not above") && !d.contains("\n"), d)
        }
        var q = try XCTUnwrap(EncodedTensor.f32(name: "w", shape: [4, 9], values: w).packedNM(n: 2, m: 4))
        q.payload.removeLast()
        XCTAssertThrowsError(try Linear(name: "w", source: .encoded(q))) { XCTAssertTrue("\($0)".contains("payload bytes"), "\($0)") }
    }
}

/// Asserts that `got` multiplies as `products` does (1 and 8 tokens of `input(tokens)`, on 1 and 4
/// threads, within 1e-5 relative) and decodes every row exactly as `rows` does.
func assertSameLinear(_ got: Linear, products: Linear, rows: Linear, tag: String,
                      activations: ActivationPrecision = .default, input: (Int) -> [Float],
                      file: StaticString = #filePath, line: UInt = #line) {
    for T in [1, 8] {
        let x = input(T)
        for threads in [1, 4] {
            let want = products.matmul(x, tokens: T, threads: threads, activations: activations)
            let y = got.matmul(x, tokens: T, threads: threads, activations: activations)
            for i in want.indices {
                XCTAssertEqual(y[i], want[i], accuracy: 1e-5 * max(1, abs(want[i])), "\(tag) T \(T) threads \(threads) y[\(i)]", file: file, line: line)
            }
        }
    }
    var a = [Float](repeating: 1, count: got.cols), b = [Float](repeating: 2, count: got.cols)
    for r in 0 ..< got.rows {
        rows.row(r, into: &a)
        got.row(r, into: &b)
        XCTAssertEqual(a, b, "\(tag) row \(r)", file: file, line: line)
    }
}
