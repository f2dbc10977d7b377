import Checkpoint
@testable import Compression
import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// `compress --max-memory`: the estimate each recipe gets before any work, and the refusal.
final class MemoryEstimateTests: TempDirTestCase {
    private func estimate(_ recipe: String, _ fixture: String = "tiny-llama") throws -> MemoryEstimate {
        let r = try Recipe.load(path: recipePath(recipe))
        return try Pipeline(recipe: r, recipeFile: recipe).memoryEstimate(graph: ModelGraph(try Checkpoint.open(fixturePath(fixture))))
    }

    func testSizesParse() {
        XCTAssertEqual(MemoryEstimate.parseSize("2G"), 2_000_000_000)
        XCTAssertEqual(MemoryEstimate.parseSize("512MiB"), 512 << 20)
        XCTAssertEqual(MemoryEstimate.parseSize("1.5gb"), 1_500_000_000)
        XCTAssertEqual(MemoryEstimate.parseSize("4096"), 4096)
        for bad in ["", "G", "-1G", "2X", "nan", "1e30"] { XCTAssertNil(MemoryEstimate.parseSize(bad), bad) }
    }

    /// The streaming estimate is the largest tensor's values, codes and payload; calibration and
    /// distillation add what they hold, in that order of cost.
    func testEstimatesFollowTheRecipe() throws {
        let graph = ModelGraph(try Checkpoint.open(fixturePath("tiny-llama")))
        let largest = graph.tensors.map(\.count).max()!
        let int8 = try estimate("int8"), f32 = try estimate("f32")
        XCTAssertEqual(int8.phase, "stream")
        XCTAssertEqual(int8.bytes, MemoryEstimate.base + 6 * largest)
        XCTAssertEqual(f32.bytes, MemoryEstimate.base + 9 * largest)
        XCTAssertEqual(try estimate("sparsegpt50-int8").phase, "calibration")
        let distill = try estimate("distill-prune50-int8")
        let P = graph.tensors.reduce(0) { $0 + $1.count }
        // On the tiny model calibration can cost more than training; on SmolLM2 distill dominates.
        XCTAssertEqual(Set(distill.phases.keys), ["stream", "calibration", "blockwise", "distill"])
        // The block-wise stage holds the float model in f32 besides the student: more than 12 bytes a weight.
        XCTAssertGreaterThan(distill.phases["blockwise"]!, MemoryEstimate.base + 12 * P)
        // int8-prune50 recovers as distill-prune50-int8 does (block-wise, then end-to-end); a recipe
        // whose distill pass has steps 0 (int8-2of4-blockwise) has no end-to-end phase.
        XCTAssertEqual(Set(try estimate("int8-prune50").phases.keys), ["stream", "calibration", "blockwise", "distill"])
        XCTAssertEqual(Set(try estimate("int8-2of4-blockwise").phases.keys), ["stream", "calibration", "blockwise"])
        XCTAssertGreaterThan(distill.phases["distill"]!, MemoryEstimate.base + 15 * P, "teacher (f16), student values and gradients, bf16 AdamW moments, encoded weights")
        XCTAssertEqual(distill.bytes, distill.phases.values.max())
        // f32 moments cost 4 more bytes per trained weight (here every weight trains).
        var fields = try XCTUnwrap(JSONValue.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: recipePath("distill-prune50-int8"))))).objectValue)
        var passes = try XCTUnwrap(fields["passes"]?.arrayValue)
        let d = try XCTUnwrap(passes.firstIndex { $0["pass"]?.stringValue == "distill" })
        var o = try XCTUnwrap(passes[d].objectValue)
        o["moments"] = .string("f32")
        passes[d] = .object(o)
        fields["passes"] = .array(passes)
        let path = tmp.appendingPathComponent("f32-moments.json").path
        try Data(JSONValue.object(fields).compactString.utf8).write(to: URL(fileURLWithPath: path))
        let wide = try Pipeline(recipe: try Recipe.load(path: path), recipeFile: path).memoryEstimate(graph: graph)
        XCTAssertEqual(wide.phases["distill"]! - distill.phases["distill"]!, 4 * P)
    }

    func testRecipeOverTheLimitIsRefusedBeforeAnyWork() throws {
        let out = tmp.appendingPathComponent("o.edge").path
        let r = try runTool("compress", ["--recipe", recipePath("distill-prune50-int8"), "--max-memory", "2M", fixturePath("tiny-llama"), out])
        XCTAssertEqual(r.code, 1, r.stderr)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)  // the refusal only (it gives the estimate)
        XCTAssertTrue(lines.last!.contains("needs about") && lines.last!.contains("distill") && lines.last!.contains("--max-memory is 2 MB"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let ok = try runTool("compress", ["--recipe", recipePath("int8"), "--max-memory", "1G", fixturePath("tiny-llama"), out])
        XCTAssertEqual(ok.code, 0, ok.stderr)
        XCTAssertTrue(ok.stderr.hasPrefix("memory: about "), "a met limit is reported: \(ok.stderr)")
        // Without a limit and off a terminal (here), a calibration recipe prints nothing before it fails or succeeds.
        let quiet = try runTool("compress", ["--recipe", recipePath("sparsegpt50-int8"), fixturePath("tiny-llama"), out])
        XCTAssertEqual(quiet.code, 0, quiet.stderr)
        XCTAssertFalse(quiet.stderr.contains("memory:"), quiet.stderr)
        let bad = try runTool("compress", ["--recipe", recipePath("int8"), "--max-memory", "lots", fixturePath("tiny-llama"), out])
        XCTAssertEqual(bad.code, 1)
        XCTAssertTrue(bad.stderr.contains("--max-memory 'lots'"), bad.stderr)
    }
}
