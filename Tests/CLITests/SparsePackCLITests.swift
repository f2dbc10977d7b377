import EdgeFormat
import Foundation
import XCTest

/// `compress` with the int8-prune50 recipe packs sparse layouts that `edge-run` computes with, giving
/// the perplexity of the same recipe packed dense, in a smaller file.
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

    func testPrunedInt8PacksSparseWithTheSamePerplexity() throws {
        let recipePath = root.appendingPathComponent("Recipes/int8-prune50.json").path
        let sparse = try compress(recipePath, "sparse.edge")

        // The same recipe with pack "dense".
        var recipe = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: recipePath))) as? [String: Any])
        var passes = try XCTUnwrap(recipe["passes"] as? [[String: Any]])
        XCTAssertEqual(passes.last?["pass"] as? String, "pack")
        passes[passes.count - 1]["format"] = "dense"
        recipe["passes"] = passes
        let densePath = tmp.appendingPathComponent("dense-recipe.json")
        try JSONSerialization.data(withJSONObject: recipe, options: [.sortedKeys]).write(to: densePath)
        let dense = try compress(densePath.path, "dense.edge")

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

        let text = root.appendingPathComponent("Fixtures/text/us-constitution.txt").path
        var ppl: [Double] = []
        // Both multiply f32 activations (the default; EDGE_Q8_ACTIVATIONS=q8 would change the dense one only).
        var environment = ProcessInfo.processInfo.environment
        environment["EDGE_Q8_ACTIVATIONS"] = nil
        for file in [sparse, dense] {
            let r = try runTool("edge-run", ["perplexity", file, "--text", text, "--ctx", "64", "--chunks", "4", "--json", "--threads", "2"],
                                environment: environment)
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            ppl.append(try XCTUnwrap(json["ppl"] as? Double))
        }
        XCTAssertEqual(ppl[0], ppl[1], accuracy: ppl[1] * 1e-6)
    }
}
