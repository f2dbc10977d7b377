import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// `compress` with the int8-prune50 recipe packs sparse layouts that `edge-run` computes with, giving
/// the perplexity of the same recipe packed dense, in a smaller file; int8-2of4 packs its 2:4 tensors
/// as nm, smaller than bitmask, with the same perplexity.
final class SparsePackCLITests: TempDirTestCase {
    private var root: URL { packageRoot() }

    private func run(_ tool: String, _ args: [String]) throws -> ToolResult { try runTool(tool, args) }

    /// Compresses Fixtures/tiny-llama with the recipe at `recipe` into tmp/`name`.
    private func compress(_ recipe: String, _ name: String) throws -> String {
        let out = tmp.appendingPathComponent(name).path
        let r = try run("compress", ["--recipe", recipe, root.appendingPathComponent("Fixtures/tiny-llama").path, out])
        XCTAssertEqual(r.code, 0, r.stderr)
        return out
    }

    /// The recipe at `recipePath` with its last pass (pack) given `format`, written to tmp/`name`.
    private func withPackFormat(_ recipePath: String, _ format: String, _ name: String) throws -> String {
        var recipe = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: recipePath))) as? [String: Any])
        var passes = try XCTUnwrap(recipe["passes"] as? [[String: Any]])
        XCTAssertEqual(passes.last?["pass"] as? String, "pack")
        passes[passes.count - 1]["format"] = format
        recipe["passes"] = passes
        let path = tmp.appendingPathComponent(name)
        try JSONSerialization.data(withJSONObject: recipe, options: [.sortedKeys]).write(to: path)
        return path.path
    }

    /// `edge-run perplexity` of each file, f32 activations.
    private func perplexities(_ files: [String]) throws -> [Double] {
        let text = root.appendingPathComponent("Fixtures/text/us-constitution.txt").path
        var ppl: [Double] = []
        // Both multiply f32 activations (explicitly: the default i16 and q8 would change dense q8 products only).
        for file in files {
            let r = try runTool("edge-run", ["perplexity", file, "--text", text, "--ctx", "64", "--chunks", "4", "--json", "--threads", "2",
                                             "--activations", "f32"])
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(json["activations"] as? String, "f32", "the option is recorded in the output")
            ppl.append(try XCTUnwrap(json["ppl"] as? Double))
        }
        return ppl
    }

    func testTwoOfFourPacksNMSmallerThanBitmaskWithTheSamePerplexity() throws {
        let recipePath = root.appendingPathComponent("Recipes/int8-2of4.json").path
        let nm = try compress(recipePath, "nm.edge")
        let bitmask = try compress(try withPackFormat(recipePath, "bitmask", "bitmask-recipe.json"), "bitmask.edge")
        let fn = try EdgeFile(path: nm), fb = try EdgeFile(path: bitmask)
        let packed = fn.tensors.filter { $0.encoding == .nm }
        XCTAssertEqual(packed.count, (fn.config.numLayers - 1) * 7, "every linear weight of the blocks but the first is 2:4, packed nm by auto")
        XCTAssertFalse(packed.contains { $0.name.hasPrefix("blk.0.") }, "block 0 stays dense")
        for t in packed {
            XCTAssertEqual(t.params, EncodingParams(symmetric: true, valueEncoding: .q8, n: 2, m: 4), t.name)
            let other = try XCTUnwrap(fb.entry(named: t.name))
            XCTAssertEqual(other.encoding, .bitmask)
            XCTAssertLessThan(t.length, other.length, t.name)
            XCTAssertEqual(try fn.floats(of: t), try fb.floats(of: other), t.name)
        }
        XCTAssertLessThan(fn.fileSize, fb.fileSize)
        let record = try XCTUnwrap(fn.provenance.passes.last)
        XCTAssertEqual(record["chosen"]?["nm"], .number(Double(packed.count)))
        XCTAssertEqual(record["per_tensor"]?["blk.1.attn_q.weight"], "nm 2:4")

        // inspect reports the pattern the values satisfy and the nm layout.
        let r = try runTool("compress", ["inspect", "--json", nm])
        XCTAssertEqual(r.code, 0, r.stderr)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let q = try XCTUnwrap((j["tensors"] as? [[String: Any]])?.first { $0["name"] as? String == "blk.1.attn_q.weight" })
        XCTAssertEqual(q["encoding"] as? String, "nm")
        XCTAssertEqual(q["nm"] as? String, "2:4")
        XCTAssertEqual(q["pattern"] as? String, "2:4")
        XCTAssertEqual(q["value_encoding"] as? String, "q8")
        let text = try runTool("compress", ["inspect", nm])
        XCTAssertTrue(text.stdout.contains("nm 2:4"), text.stdout)

        let ppl = try perplexities([nm, bitmask])
        XCTAssertEqual(ppl[0], ppl[1], accuracy: ppl[1] * 1e-6)
    }

    func testPrunedInt8PacksSparseWithTheSamePerplexity() throws {
        let recipePath = root.appendingPathComponent("Recipes/int8-prune50.json").path
        let sparse = try compress(recipePath, "sparse.edge")
        // The same recipe with pack "dense".
        let dense = try compress(try withPackFormat(recipePath, "dense", "dense-recipe.json"), "dense.edge")

        let fs = try EdgeFile(path: sparse), fd = try EdgeFile(path: dense)
        let packed = fs.tensors.filter { $0.encoding.isSparse }
        XCTAssertFalse(packed.isEmpty, "auto packs the pruned matrices sparse")
        XCTAssertTrue(fd.tensors.allSatisfy { !$0.encoding.isSparse })
        XCTAssertLessThan(fs.fileSize, fd.fileSize)
        for t in packed {
            let other = try XCTUnwrap(fd.entry(named: t.name))
            XCTAssertEqual(try fs.floats(of: t), try fd.floats(of: other), t.name)
        }
        let record = try XCTUnwrap(fs.provenance.passes.last)
        XCTAssertEqual(record["pass"], "pack")
        XCTAssertGreaterThan(record["bytes_saved"]?.doubleValue ?? 0, 0)

        let ppl = try perplexities([sparse, dense])
        XCTAssertEqual(ppl[0], ppl[1], accuracy: ppl[1] * 1e-6)

        // --sparse dense: the pruned int8 matrices as dense copies made at load, the same perplexity to
        // the last digit under the default int16 activations; keep: none; a bad value: one line, exit 1.
        let q8Sparse = packed.filter { $0.encoding == .bitmask && $0.params.valueEncoding == .q8 && $0.params.symmetric == true }
        XCTAssertFalse(q8Sparse.isEmpty)
        let text = root.appendingPathComponent("Fixtures/text/us-constitution.txt").path
        var byMode: [String: Double] = [:]
        for mode in ["dense", "keep"] {
            let b = try runTool("edge-run", ["bench", sparse, "-p", "8", "-n", "4", "-r", "1", "--json", "--sparse", mode])
            XCTAssertEqual(b.code, 0, b.stderr)
            let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(b.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(j["dense_copies"] as? Double, mode == "dense" ? Double(q8Sparse.count) : 0, mode)
            let r = try runTool("edge-run", ["perplexity", sparse, "--text", text, "--ctx", "64", "--chunks", "2", "--json", "--sparse", mode])
            XCTAssertEqual(r.code, 0, r.stderr)
            let pj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            byMode[mode] = try XCTUnwrap(pj["ppl"] as? Double)
        }
        XCTAssertEqual(byMode["dense"], byMode["keep"])
        let bad = try runTool("edge-run", ["bench", sparse, "--sparse", "sometimes"])
        XCTAssertNotEqual(bad.code, 0)
        XCTAssertTrue(bad.stderr.contains("--sparse") && bad.stderr.split(separator: "\n").count == 1, bad.stderr)
    }
}
