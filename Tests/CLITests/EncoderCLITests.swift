import Foundation
import TestSupport
import XCTest

/// The encoder side of the two tools on Fixtures/tiny-bert: `compress` and `compress verify`,
/// `edge-run embed` (JSON, .npy, --query) and `edge-run info`, and the one-line refusals.
final class EncoderCLITests: TempDirTestCase {
    var folder: String { fixturePath("tiny-bert") }
    var sentences: String { fixturePath("tiny-bert-sentences.txt") }

    func compress(_ recipe: String) throws -> String {
        let out = tmp.appendingPathComponent("\(recipe).edge").path
        let r = try runTool("compress", ["--recipe", recipePath(recipe), folder, out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    func testEmbedWritesJSONAndNpyAndRanksByCosine() throws {
        let edge = try compress("f32")
        let json = tmp.appendingPathComponent("e.json").path, npy = tmp.appendingPathComponent("e.npy").path
        var r = try runTool("edge-run", ["embed", edge, "--text", sentences, "--out", json])
        XCTAssertEqual(r.code, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("embedded 12 sentences"), r.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let emb = try XCTUnwrap(doc["embeddings"] as? [[Double]])
        XCTAssertEqual(emb.count, 12)
        XCTAssertEqual(emb[0].count, 64)
        // The same numbers as the numpy reference's (its ids too).
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixturePath("tiny-bert-reference.json")))) as? [String: Any])
        XCTAssertEqual(doc["ids"] as? [[Int]], ref["ids"] as? [[Int]])
        let refEmb = try XCTUnwrap(ref["embeddings"] as? [[Double]])
        for (a, b) in zip(emb, refEmb) { for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5) } }

        r = try runTool("edge-run", ["embed", edge, "--text", sentences, "--out", npy])
        XCTAssertEqual(r.code, 0, r.stderr)
        let bytes = try readBytes(npy)
        XCTAssertEqual(Array(bytes[0 ..< 6]), [0x93] + Array("NUMPY".utf8))
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0, "data 64-byte aligned")
        let header = String(decoding: bytes[10 ..< 10 + headerLength], as: UTF8.self)
        XCTAssertTrue(header.contains("'descr': '<f4'") && header.contains("'shape': (12, 64)"), header)
        XCTAssertEqual(bytes.count, 10 + headerLength + 12 * 64 * 4)
        let first = bytes[(10 + headerLength)...].prefix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
        XCTAssertEqual(Double(Float(bitPattern: first)), emb[0][0], accuracy: 1e-7)
        if pythonWithNumpy {
            let p = try runPython(["-c", "import numpy, sys; a = numpy.load(sys.argv[1]); print(a.shape, a.dtype)", npy])
            XCTAssertEqual(p.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "(12, 64) float32", p.stderr)
        }

        // A query equal to one of the lines finds that line first, at cosine 1.
        let lines = try String(contentsOfFile: sentences, encoding: .utf8).split(separator: "\n").map(String.init)
        r = try runTool("edge-run", ["embed", edge, "--text", sentences, "--query", lines[5], "--top", "3", "--json"])
        XCTAssertEqual(r.code, 0, r.stderr)
        let ranking = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let results = try XCTUnwrap(ranking["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 3)
        // Settings that change results are named in the output, as perplexity and bench do.
        XCTAssertEqual(ranking["activations"] as? String, "i16")
        XCTAssertNotNil((ranking["kernels"] as? [String: Any])?["level"], r.stdout)
        XCTAssertEqual(results[0]["line"] as? Int, 6)
        XCTAssertEqual(try XCTUnwrap(results[0]["cosine"] as? Double), 1, accuracy: 1e-5)
        let cos = results.compactMap { $0["cosine"] as? Double }
        XCTAssertEqual(cos, cos.sorted(by: >))

        r = try runTool("edge-run", ["info", edge])
        XCTAssertEqual(r.code, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("bert: 2 layers") && r.stdout.contains("encoder: mean pooling, L2-normalized"), r.stdout)
    }

    func testVerifyAnEncoderAndItsBudget() throws {
        let edge = try compress("int8")
        var r = try runTool("compress", ["verify", folder, edge, "--text", sentences, "--json"])
        XCTAssertEqual(r.code, 0, r.stderr)
        let v = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(v["kind"] as? String, "encoder")
        XCTAssertEqual(v["sentences"] as? Int, 12)
        XCTAssertGreaterThan(try XCTUnwrap(v["mean_cosine"] as? Double), 0.99)
        XCTAssertNotNil((v["kernels"] as? [String: Any])?["level"], r.stdout)
        let strict = tmp.appendingPathComponent("strict.json").path
        try #"{"passes": [], "budget": {"min_cosine": 0.99999999}}"#.write(toFile: strict, atomically: true, encoding: .utf8)
        r = try runTool("compress", ["verify", folder, edge, "--text", sentences, "--recipe", strict])
        XCTAssertEqual(r.code, 3, r.stderr)
        XCTAssertTrue(r.stdout.contains("cosine (float vs compressed)"), r.stdout)
        XCTAssertTrue(r.stderr.contains("budget exceeded: mean cosine"), r.stderr)
    }

    func testEncoderAndDecoderRefuseEachOthersCommands() throws {
        let edge = try compress("f32")
        assertOneLineFailure(try runTool("edge-run", ["perplexity", edge, "--text", sentences]), contains: ["encoder", "edge-run embed"])
        assertOneLineFailure(try runTool("edge-run", ["generate", edge, "--prompt", "hi"]), contains: ["encoder"])
        let llama = tmp.appendingPathComponent("llama.edge").path
        XCTAssertEqual(try runTool("compress", ["--recipe", recipePath("f32"), fixturePath("tiny-llama"), llama]).code, 0)
        assertOneLineFailure(try runTool("edge-run", ["embed", llama, "--text", sentences, "--out", tmp.appendingPathComponent("x.json").path]),
                             contains: ["decoder"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("x.json").path))
        assertOneLineFailure(try runTool("edge-run", ["embed", edge, "--text", sentences]), contains: ["--out", "--query"])
        // A bad pooling config: one line naming the file and field, no output.
        let bad = tmp.appendingPathComponent("bad")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: folder), to: bad)
        try #"{"word_embedding_dimension": 64, "pooling_mode_mean_sqrt_len_tokens": true}"#
            .write(to: bad.appendingPathComponent("1_Pooling/config.json"), atomically: true, encoding: .utf8)
        let out = tmp.appendingPathComponent("bad.edge").path
        assertOneLineFailure(try runTool("compress", ["--recipe", recipePath("int8"), bad.path, out]),
                             contains: ["1_Pooling/config.json", "pooling_mode_mean_sqrt_len_tokens"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
