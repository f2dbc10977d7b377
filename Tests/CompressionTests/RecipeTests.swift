@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

final class RecipeTests: XCTestCase {
    private func parse(_ json: String) throws -> Recipe {
        try Recipe.parse(Data(json.utf8), file: "r.json")
    }

    private func assertRecipeError(_ json: String, field: String, contains text: String, line: UInt = #line) {
        XCTAssertThrowsError(try parse(json), line: line) { error in
            guard let e = error as? RecipeError else { return XCTFail("not a RecipeError: \(error)", line: line) }
            XCTAssertEqual(e.field, field, line: line)
            XCTAssertTrue(e.description.contains(text), "\(e.description) lacks '\(text)'", line: line)
            XCTAssertTrue(e.description.hasPrefix("r.json: "), line: line)
            XCTAssertFalse(e.description.contains("\n"), line: line)
        }
    }

    func testBundledRecipesParse() throws {
        let dir = packageRoot().appendingPathComponent("Recipes")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }
        XCTAssertGreaterThanOrEqual(files.count, 4)
        for f in files {
            let r = try Recipe.load(path: dir.appendingPathComponent(f).path)
            XCTAssertEqual(r.name + ".json", f)
        }
    }

    func testAMissingRecipeFileSaysSoAndSuggestsTheBundledOne() throws {
        XCTAssertThrowsError(try Recipe.load(path: "/nonexistent/r.json")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/r.json: recipe file not found")
        }
        // A bare name with a Recipes/ folder beside the working directory: the bundled file is suggested.
        let saved = FileManager.default.currentDirectoryPath
        defer { _ = FileManager.default.changeCurrentDirectoryPath(saved) }
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(packageRoot().path))
        XCTAssertThrowsError(try Recipe.load(path: "int8")) { error in
            XCTAssertEqual("\(error)", "int8: recipe file not found (did you mean Recipes/int8.json?)")
        }
    }

    func testSparsityOutOfRange() {
        assertRecipeError(#"{"passes":[{"pass":"magnitude_prune","sparsity":1.7}]}"#, field: "passes[0].sparsity", contains: "1.7")
        assertRecipeError(#"{"passes":[{"pass":"magnitude_prune","sparsity":1}]}"#, field: "passes[0].sparsity", contains: "< 1")
        assertRecipeError(#"{"passes":[{"pass":"magnitude_prune","sparsity":-0.1}]}"#, field: "passes[0].sparsity", contains: "-0.1")
        assertRecipeError(#"{"passes":[{"pass":"magnitude_prune","sparsity":"half"}]}"#, field: "passes[0].sparsity", contains: "number")
        assertRecipeError(#"{"passes":[{"pass":"magnitude_prune"}]}"#, field: "passes[0].sparsity", contains: "required")
    }

    func testUnknownFieldsAreRefused() {
        assertRecipeError(#"{"passes":[], "colour":"red"}"#, field: "colour", contains: "not a known field")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":8,"sparsity":0.5}]}"#, field: "passes[0].sparsity", contains: "not a known field")
        assertRecipeError(#"{"passes":[{"pass":"quantise","bits":8}]}"#, field: "passes[0].pass", contains: "unknown pass 'quantise'")
        assertRecipeError(#"{"budget":{"max_ppl":1},"passes":[]}"#, field: "budget.max_ppl", contains: "not a known field")
    }

    func testQuantizeFieldChecks() {
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":2}]}"#, field: "passes[0].bits", contains: "one of: 3, 4, 8")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":4}]}"#, field: "passes[0].group_size", contains: "required")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":3}]}"#, field: "passes[0].group_size", contains: "required for bits 3")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":4,"group_size":48}]}"#, field: "passes[0].group_size", contains: "48")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":8,"group_size":64}]}"#, field: "passes[0].group_size", contains: "bits 4 and 3 only")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":8,"kinds":["matrix"]}]}"#, field: "passes[0].kinds[0]", contains: "'matrix'")
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":8.5}]}"#, field: "passes[0].bits", contains: "integer")
    }

    func testPassOrderIsChecked() {
        assertRecipeError(#"{"passes":[{"pass":"quantize","bits":8},{"pass":"magnitude_prune","sparsity":0.5}]}"#,
                          field: "passes[1].pass", contains: "cannot come after passes[0] 'quantize'")
        assertRecipeError(#"{"passes":[{"pass":"pack"},{"pass":"quantize","bits":8}]}"#,
                          field: "passes[1].pass", contains: "cannot come after passes[0] 'pack'")
        assertRecipeError(#"{"passes":[{"pass":"pack"},{"pass":"pack"}]}"#, field: "passes[1].pass", contains: "second time")
    }

    func testNotJSONAndNotObject() {
        assertRecipeError(#"{"passes": [}"#, field: "", contains: "not valid JSON")
        assertRecipeError(#"[1,2]"#, field: "(root)", contains: "JSON object")
        assertRecipeError(#"{"passes": 3}"#, field: "passes", contains: "array")
    }

    func testSelectorGlobs() {
        let s = TensorSelector(kinds: [.linear], include: ["blk.*"], exclude: ["*.attn_v.*"], excludeLayers: [-1])
        XCTAssertTrue(s.selects("blk.0.attn_q.weight", numLayers: 3))
        XCTAssertFalse(s.selects("blk.0.attn_v.weight", numLayers: 3))
        XCTAssertFalse(s.selects("blk.2.attn_q.weight", numLayers: 3), "last layer excluded by -1")
        XCTAssertFalse(s.selects("blk.0.attn_norm.weight", numLayers: 3), "norm is not linear")
        XCTAssertFalse(s.selects("token_embd.weight", numLayers: 3))
        XCTAssertTrue(Glob.matches("a*c", "abbbc"))
        XCTAssertTrue(Glob.matches("a?c", "abc"))
        XCTAssertFalse(Glob.matches("a?c", "abbc"))
        XCTAssertTrue(Glob.matches("*", ""))
        XCTAssertFalse(Glob.matches("blk.1*", "blk.2.x"))
    }
}
