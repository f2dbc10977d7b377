import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// A forward call longer than `EdgeModel.microBatch` runs in pieces through smaller buffers and gives
/// the logits of one whole call bit for bit, for every encoding and activation precision; perplexity
/// without kept logits (row blocks of the head) gives the same NLLs bit for bit.
final class MicroBatchTests: TempDirTestCase {
    private var root: URL { packageRoot() }

    func testPieces() {
        func pieces(_ n: Int, _ mb: Int) -> [Range<Int>] { EdgeModel.microBatchPieces(n, microBatch: mb) }
        XCTAssertEqual(pieces(512, 256), [0 ..< 256, 256 ..< 512])
        XCTAssertEqual(pieces(256, 256), [0 ..< 256])
        XCTAssertEqual(pieces(100, 256), [0 ..< 100])
        XCTAssertEqual(pieces(300, 256), [0 ..< 300])  // a remainder under 64 joins the last piece
        XCTAssertEqual(pieces(330, 256), [0 ..< 256, 256 ..< 330])
        XCTAssertEqual(pieces(200, 64), [0 ..< 64, 64 ..< 128, 128 ..< 200])
        XCTAssertEqual(pieces(1, .max), [0 ..< 1])
        XCTAssertEqual(pieces(0, 64), [0 ..< 0])
        XCTAssertEqual(EdgeModel.headBlocks(255, rowsPerBlock: 64), [0 ..< 64, 64 ..< 128, 128 ..< 192, 192 ..< 255])
        XCTAssertEqual(EdgeModel.headBlocks(69, rowsPerBlock: 64), [0 ..< 35, 35 ..< 69])  // no block of 5
        XCTAssertEqual(EdgeModel.headBlocks(10, rowsPerBlock: 64), [0 ..< 10])
        XCTAssertEqual(EdgeModel.headBlocks(0, rowsPerBlock: 64), [])
        // The head's blocks in the work buffers: SmolLM2's 512-token window (buffers of 2,588,672
        // floats: 52 rows of its 49152-token vocabulary) takes blocks of 51 rows instead of 64.
        func plan(_ rows: Int, _ floats: Int) -> ([Int], Bool) {
            let p = EdgeModel.headPlan(rows: rows, rowsPerBlock: 64, vocab: 49152, bufferFloats: floats)
            return (p.blocks.map(\.count), p.inBuffers)
        }
        XCTAssertTrue(plan(255, 2_588_672) == ([51, 51, 51, 51, 51], true))
        XCTAssertTrue(plan(255, 64 * 49152) == ([64, 64, 64, 63], true))    // 64 rows fit
        XCTAssertTrue(plan(10, 10 * 49152) == ([10], true))                 // fewer rows than a block
        XCTAssertTrue(plan(255, 47 * 49152) == ([64, 64, 64, 63], false))  // more than a quarter smaller: memory of its own
        XCTAssertTrue(plan(255, 48 * 49152) == ([43, 43, 43, 42, 42, 42], true))  // a quarter smaller still fits
        XCTAssertTrue(plan(40, 15 * 49152) == ([40], false))                 // under 16 rows: memory of its own
    }

    /// Where two bit patterns differ, how many elements do (nil when equal).
    private func mismatches(_ a: [UInt32], _ b: [UInt32]) -> String? {
        if a == b { return nil }
        guard a.count == b.count else { return "\(a.count) against \(b.count) elements" }
        return "\(zip(a, b).filter { $0 != $1 }.count) of \(a.count) elements differ"
    }

    /// tiny-llama (128 positions) compressed by `passes` into tmp/`name`.edge.
    private func compress(_ name: String, _ passes: String) throws -> String {
        let recipe = tmp.appendingPathComponent("\(name).json")
        try Data("{\"name\": \"\(name)\", \"passes\": [\(passes)]}".utf8).write(to: recipe)
        let out = tmp.appendingPathComponent("\(name).edge").path
        let r = try runTool("compress", ["--recipe", recipe.path, root.appendingPathComponent("Fixtures/tiny-llama").path, out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    /// tiny-llama compressed by the committed recipe `name` into tmp/`name`.edge.
    private func compressRecipe(_ name: String) throws -> String {
        let out = tmp.appendingPathComponent("\(name).edge").path
        let r = try runTool("compress", ["--recipe", recipePath(name), root.appendingPathComponent("Fixtures/tiny-llama").path, out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    func testPiecesGiveTheLogitsOfOneCall() throws {
        let q8 = "{\"pass\": \"quantize\", \"bits\": 8, \"symmetric\": true, \"kinds\": [\"linear\", \"embedding\", \"output\"]}"
        let files = [
            try compress("f32", "{\"pass\": \"cast\", \"dtype\": \"f32\"}"),
            try compress("f16", "{\"pass\": \"cast\", \"dtype\": \"f16\"}"),
            try compress("int8", q8),
            try compress("q4", "{\"pass\": \"quantize\", \"bits\": 4, \"group_size\": 32, \"symmetric\": true, \"kinds\": [\"linear\"]}"),
            try compressRecipe("int4"),  // q4k
            try compress("bitmask", "{\"pass\": \"magnitude_prune\", \"sparsity\": 0.5, \"scope\": \"per_row\", \"kinds\": [\"linear\"]}, \(q8), {\"pass\": \"pack\", \"format\": \"bitmask\", \"kinds\": [\"linear\"]}"),
            try compress("nm", "{\"pass\": \"magnitude_prune\", \"pattern\": \"2:4\", \"kinds\": [\"linear\"]}, \(q8), {\"pass\": \"pack\", \"format\": \"nm\", \"kinds\": [\"linear\"]}"),
        ]
        let text = try String(contentsOfFile: root.appendingPathComponent("Fixtures/text/us-declaration.txt").path, encoding: .utf8)
        var checked = 0
        for path in files {
            for activations in ActivationPrecision.allCases {
                let model = try EdgeModel(path: path, threads: 2)
                model.activations = activations
                let tokens = Array(try model.tokenize(text).prefix(128))
                XCTAssertEqual(tokens.count, 128)
                func logits(_ microBatch: Int, start: Int) throws -> [UInt32] {
                    model.microBatch = microBatch
                    let cache = try model.makeCache(capacity: 128)
                    if start > 0 { _ = try model.forward(Array(tokens[..<start]), cache: cache, outputs: 0 ..< 0) }
                    let rest = Array(tokens[start...])
                    XCTAssertEqual(cache.count, start)
                    let l = try model.forward(rest, cache: cache, outputs: 1 ..< rest.count)
                    XCTAssertEqual(cache.count, 128)
                    return l.map(\.bitPattern)
                }
                // 128 tokens in pieces of 64 against one call; and after 20 cached positions, 108 tokens
                // with a micro-batch of 64 (one call: 64 + 44 would leave a remainder under 64).
                let whole = try logits(.max, start: 0)
                XCTAssertEqual(whole.count, 127 * model.config.vocabSize)
                XCTAssertNil(mismatches(try logits(64, start: 0), whole), "\(path) \(activations)")
                XCTAssertEqual(EdgeModel.microBatchPieces(108, microBatch: 64).count, 1)
                XCTAssertNil(mismatches(try logits(.max, start: 20), try logits(64, start: 20)), "\(path) \(activations)")

                // The head in blocks of at most 40 rows (32, 32, 32, 31) against one call.
                var blocks = [UInt32](), firsts = [Int]()
                let cache0 = try model.makeCache(capacity: 128)
                try model.forward(tokens, cache: cache0, outputs: 1 ..< 128, rowsPerBlock: 40) { first, rows, lp in
                    XCTAssertEqual(lp.count, rows * model.config.vocabSize)
                    firsts.append(first)
                    blocks += lp.map(\.bitPattern)
                }
                XCTAssertEqual(firsts, [1, 33, 65, 97])
                XCTAssertNil(mismatches(blocks, whole), "\(path) \(activations)")

                // Perplexity keeping the logits (one head call per window) and not (row blocks).
                model.microBatch = 64
                let cache = try model.makeCache(capacity: 128)
                let kept = try model.scoreChunk(tokens, index: 0, cache: cache)
                let streamed = try model.scoreChunk(tokens, index: 0, cache: cache, keepLogits: false)
                XCTAssertEqual(kept.logits.count, 63 * model.config.vocabSize)
                XCTAssertTrue(streamed.logits.isEmpty)
                XCTAssertEqual(kept.nll.map(\.bitPattern), streamed.nll.map(\.bitPattern), "\(path) \(activations)")
                XCTAssertEqual(kept.nll.count, 63)
                checked += 1
            }
        }
        XCTAssertEqual(checked, files.count * ActivationPrecision.allCases.count)
    }

    /// `edge-run perplexity --micro-batch`: a window of 128 in pieces of 64 gives the perplexity of one
    /// piece, the JSON names the setting, and a micro-batch under 1 is refused in one line; likewise
    /// `--kv-cache`.
    func testMicroBatchOption() throws {
        let edge = try compressRecipe("int8")
        let text = root.appendingPathComponent("Fixtures/text/us-declaration.txt").path
        func run(_ extra: [String]) throws -> [String: Any] {
            let r = try runTool("edge-run", ["perplexity", edge, "--text", text, "--ctx", "128", "--chunks", "2", "--json"] + extra)
            XCTAssertEqual(r.code, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let whole = try run([]), pieces = try run(["--micro-batch", "64"])
        XCTAssertEqual(whole["micro_batch"] as? Int, EdgeModel.defaultMicroBatch)
        XCTAssertEqual(pieces["micro_batch"] as? Int, 64)
        let a = try XCTUnwrap(whole["ppl"] as? Double), b = try XCTUnwrap(pieces["ppl"] as? Double)
        XCTAssertEqual(a.bitPattern, b.bitPattern, "\(a) against \(b)")
        assertOneLineFailure(try runTool("edge-run", ["perplexity", edge, "--text", text, "--micro-batch", "0"]),
                             contains: ["--micro-batch", "at least 1"])

        // --kv-cache f16: named in the JSON, within binary16's rounding of the f32 cache's perplexity.
        XCTAssertEqual(whole["kv_cache"] as? String, "f32")
        let half = try run(["--kv-cache", "f16"])
        XCTAssertEqual(half["kv_cache"] as? String, "f16")
        let c = try XCTUnwrap(half["ppl"] as? Double)
        XCTAssertNotEqual(c, a)
        XCTAssertEqual(c, a, accuracy: a * 1e-3)
        assertOneLineFailure(try runTool("edge-run", ["perplexity", edge, "--text", text, "--kv-cache", "f8"]),
                             contains: ["--kv-cache", "f8"])
    }
}
