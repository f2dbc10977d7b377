import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// The runtime's logits against scripts/reference_forward.py (an independent numpy implementation
/// reading the Hugging Face fixture folders), for float weights served from memory and from an
/// `.edge` file.
final class ForwardTests: XCTestCase {
    /// Relative error bound (max |diff| / max |reference|) of float32 logits against the float64 reference.
    static let tolerance = 1e-4

    /// ~20 token ids of real text, from the fixture's own tokenizer.
    func sampleTokens(_ fixture: FixtureModel) throws -> [Int32] {
        let ids = try Tokenizer(json: fixture.tokenizerJSON)
            .encode("We the People of the United States, in Order to form a more perfect Union, establish Justice")
        XCTAssertGreaterThanOrEqual(ids.count, 16)
        return Array(ids.prefix(20))
    }

    func checkAgainstReference(_ name: String) throws {
        let fixture = try FixtureModel(name)
        let tokens = try sampleTokens(fixture)
        let reference = try referenceLogits(name, tokens).flatMap { $0 }
        XCTAssertEqual(reference.count, tokens.count * fixture.config.vocabSize)

        let memory = try EdgeModel(config: fixture.config, tensors: fixture.floatSources)
        let fromMemory = try memory.logits(tokens)
        let errMemory = relativeError(fromMemory, reference)
        XCTAssertLessThan(errMemory, Self.tolerance, "\(name): in-memory float weights vs numpy reference")

        let path = try fixture.writeEdge(to: try temporaryFolder(self), name: "\(name).edge")
        let file = try EdgeModel(path: path)
        XCTAssertNotNil(file.tokenizer)
        let fromFile = try file.logits(tokens)
        XCTAssertLessThan(relativeError(fromFile, reference), Self.tolerance, "\(name): .edge file vs numpy reference")
        XCTAssertEqual(fromFile, fromMemory, "\(name): the same f32 weights from a file and from memory must give identical logits")

        // Incremental decoding through the KV cache: a window of 7, then one token, then the rest.
        let cache = try file.makeCache(capacity: tokens.count)
        var pieces = try file.forward(Array(tokens[0 ..< 7]), cache: cache)
        pieces += try file.forward([tokens[7]], cache: cache)
        pieces += try file.forward(Array(tokens[8...]), cache: cache)
        XCTAssertEqual(cache.count, tokens.count)
        XCTAssertLessThan(relativeError(pieces, reference), Self.tolerance, "\(name): windows through the KV cache vs reference")

        // Selected output rows equal the same rows of the full result (to rounding: the GEMM packs
        // weights from 12 tokens up, so 3 rows and all rows take different kernels).
        let cache2 = try file.makeCache(capacity: tokens.count)
        let last3 = try file.forward(tokens, cache: cache2, outputs: tokens.count - 3 ..< tokens.count)
        XCTAssertLessThan(relativeError(last3, Array(fromFile[(tokens.count - 3) * fixture.config.vocabSize ..< fromFile.count])), 1e-6)
        print("\(name): relative error vs numpy reference \(errMemory)")
    }

    func testGPT2LogitsMatchReference() throws { try checkAgainstReference("tiny-gpt2") }

    func testLlamaLogitsMatchReference() throws { try checkAgainstReference("tiny-llama") }

    /// Untied output head, BF16 weights in two shards (the reference reads the same BF16 values).
    func testUntiedLlamaLogitsMatchReference() throws { try checkAgainstReference("tiny-llama-untied-sharded") }

    func testThreadCountDoesNotChangeLogits() throws {
        let fixture = try FixtureModel("tiny-llama")
        let tokens = try sampleTokens(fixture)
        let one = try EdgeModel(config: fixture.config, tensors: fixture.floatSources, threads: 1).logits(tokens)
        let four = try EdgeModel(config: fixture.config, tensors: fixture.floatSources, threads: 4).logits(tokens)
        XCTAssertEqual(one, four)
    }

    func testLinearMatmulSplitsRowsAcrossThreads() throws {
        // 203 rows x 161 cols x 3 tokens: above the threading threshold, rows not a multiple of the chunking.
        let rows = 203, cols = 161, T = 3
        let w = (0 ..< rows * cols).map { Float(($0 * 7919) % 211) / 211 - 0.5 }
        let x = (0 ..< T * cols).map { Float(($0 * 104_729) % 97) / 97 - 0.5 }
        let linear = try Linear(name: "w", source: .floats(w, shape: [rows, cols]))
        let y1 = linear.matmul(x, tokens: T, threads: 1)
        let y3 = linear.matmul(x, tokens: T, threads: 3)
        XCTAssertEqual(y1, y3)
        var expected = [Float](repeating: 0, count: T * rows)
        for t in 0 ..< T { for r in 0 ..< rows {
            var s = 0.0
            for c in 0 ..< cols { s += Double(w[r * cols + c]) * Double(x[t * cols + c]) }
            expected[t * rows + r] = Float(s)
        } }
        XCTAssertLessThan(relativeError(y3, expected), 1e-5)
    }

    /// Per-layer sizes (structured pruning): layer 1 physically shrunk to query heads 0-1, KV head 0
    /// and MLP neurons 0..<64 gives the logits of the full model with those parts' outputs zeroed
    /// (attn_output columns of heads 2-3, ffn_down columns 64..<128).
    func testPerLayerSizesMatchZeroedFullModel() throws {
        let fixture = try FixtureModel("tiny-llama")
        let c = fixture.config, h = c.hiddenSize, hd = c.headDim, f = c.intermediateSize
        XCTAssertEqual([c.numHeads, c.numKVHeads, f], [4, 2, 128])
        let b = TensorName.block(1)
        func rows(_ name: String, _ n: Int) -> WeightSource {
            let t = fixture.tensors[b + name]!
            return .floats(Array(t.values[0 ..< n * t.shape[1]]), shape: [n, t.shape[1]])
        }
        func columns(_ name: String, _ n: Int) -> WeightSource {
            let t = fixture.tensors[b + name]!
            return .floats((0 ..< t.shape[0]).flatMap { r in t.values[r * t.shape[1] ..< r * t.shape[1] + n] }, shape: [t.shape[0], n])
        }
        func zeroColumns(_ name: String, from n: Int) -> WeightSource {
            let t = fixture.tensors[b + name]!
            var v = t.values
            for r in 0 ..< t.shape[0] { for j in n ..< t.shape[1] { v[r * t.shape[1] + j] = 0 } }
            return .floats(v, shape: t.shape)
        }
        var pruned = fixture.floatSources, zeroed = fixture.floatSources
        pruned[b + "attn_q.weight"] = rows("attn_q.weight", 2 * hd)
        pruned[b + "attn_k.weight"] = rows("attn_k.weight", hd)
        pruned[b + "attn_v.weight"] = rows("attn_v.weight", hd)
        pruned[b + "attn_output.weight"] = columns("attn_output.weight", 2 * hd)
        pruned[b + "ffn_gate.weight"] = rows("ffn_gate.weight", 64)
        pruned[b + "ffn_up.weight"] = rows("ffn_up.weight", 64)
        pruned[b + "ffn_down.weight"] = columns("ffn_down.weight", 64)
        zeroed[b + "attn_output.weight"] = zeroColumns("attn_output.weight", from: 2 * hd)
        zeroed[b + "ffn_down.weight"] = zeroColumns("ffn_down.weight", from: 64)
        var prunedConfig = c
        prunedConfig.layers = [c.sizes(layer: 0), .init(numHeads: 2, numKVHeads: 1, intermediateSize: 64)]
        XCTAssertEqual(h, 64)

        let tokens = try sampleTokens(fixture)
        let a = try EdgeModel(config: prunedConfig, tensors: pruned).logits(tokens)
        let z = try EdgeModel(config: c, tensors: zeroed).logits(tokens)
        XCTAssertLessThan(relativeError(a, z), 1e-5)
        let full = try EdgeModel(config: c, tensors: fixture.floatSources).logits(tokens)
        XCTAssertGreaterThan(relativeError(full, z), 1e-3, "the pruned parts must matter")
        // The shrunk model also round-trips through an .edge file.
        let path = try temporaryFolder(self).appendingPathComponent("pruned.edge").path
        let w = try EdgeWriter(path: path, config: prunedConfig, provenance: Provenance(sourceSHA256: String(repeating: "a", count: 64), sourceFormat: "test"))
        for (name, shape) in prunedConfig.expectedTensors() {
            guard case let .floats(values, _) = pruned[name]! else { return XCTFail(name) }
            try w.add(.f32(name: name, shape: shape, values: values))
        }
        try w.finish()
        XCTAssertEqual(try EdgeModel(path: path).logits(tokens), a)
    }

    func testRefusesMissingAndMisshapenTensors() throws {
        let fixture = try FixtureModel("tiny-llama")
        var tensors = fixture.floatSources
        tensors["blk.1.ffn_up.weight"] = nil
        XCTAssertThrowsError(try EdgeModel(config: fixture.config, tensors: tensors, source: "x")) { e in
            XCTAssertEqual(e as? RuntimeError, .missingTensor(source: "x", tensor: "blk.1.ffn_up.weight"))
        }
        tensors = fixture.floatSources
        tensors["blk.0.attn_k.weight"] = .floats([Float](repeating: 0, count: 64 * 64), shape: [64, 64])
        XCTAssertThrowsError(try EdgeModel(config: fixture.config, tensors: tensors, source: "x")) { e in
            XCTAssertEqual(e as? RuntimeError, .badShape(source: "x", tensor: "blk.0.attn_k.weight", expected: [32, 64], actual: [64, 64]))
        }
        tensors = fixture.floatSources
        tensors["output_norm.weight"] = .floats([Float](repeating: .nan, count: 64), shape: [64])
        XCTAssertThrowsError(try EdgeModel(config: fixture.config, tensors: tensors, source: "x")) { e in
            guard case .badTensor(_, "output_norm.weight", _)? = e as? RuntimeError else { return XCTFail("\(e)") }
        }
    }

    func testRefusesBadTokensAndFullContext() throws {
        let fixture = try FixtureModel("tiny-gpt2")
        let model = try EdgeModel(config: fixture.config, tensors: fixture.floatSources)
        XCTAssertThrowsError(try model.logits([1, 512])) { XCTAssertEqual($0 as? RuntimeError, .tokenOutOfRange(token: 512, vocabSize: 512)) }
        XCTAssertThrowsError(try model.logits([-1])) { XCTAssertEqual($0 as? RuntimeError, .tokenOutOfRange(token: -1, vocabSize: 512)) }
        let cache = try model.makeCache(capacity: 4)
        _ = try model.forward([1, 2, 3], cache: cache)
        XCTAssertThrowsError(try model.forward([4, 5], cache: cache)) { XCTAssertEqual($0 as? RuntimeError, .contextFull(needed: 5, capacity: 4)) }
        XCTAssertEqual(cache.count, 3, "a refused call leaves the cache as it was")
        XCTAssertThrowsError(try model.makeCache(capacity: 129)) { e in
            guard case .badContext(129, 128, _)? = e as? RuntimeError else { return XCTFail("\(e)") }
        }
    }
}
