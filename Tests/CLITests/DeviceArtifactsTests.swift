import Compression
import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// scripts/device-artifacts.sh on a fixture: artifacts, report files, and the budget gate.
final class DeviceArtifactsTests: TempDirTestCase {
    private func script(_ args: [String]) throws -> ToolResult {
        var env = ProcessInfo.processInfo.environment
        env["EDGE_BIN"] = productsDirectory.path
        return try runTool("/bin/bash", [packageRoot().appendingPathComponent("scripts/device-artifacts.sh").path] + args, environment: env)
    }

    func testFixtureRunWritesArtifactsAndReport() throws {
        let out = tmp.appendingPathComponent("out").path
        let r = try script([fixturePath("tiny-llama"), out, "--recipes", "int8,int8-prune50", "--ctx", "64", "--chunks", "2", "--no-runtime"])
        XCTAssertEqual(r.code, 0, r.stderr)
        for f in ["int8.edge", "int8-prune50.edge", "report.json", "report.md", "pareto.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as! [String: Any]
        XCTAssertEqual(report["budget_ok"] as? Bool, true)
        let rows = report["rows"] as! [[String: Any]]
        XCTAssertEqual(Set(rows.map { $0["recipe"] as! String }), ["int8", "int8-prune50"])
        let keys: Set<String> = ["recipe", "bytes", "bits_per_weight", "ratio", "ppl_before", "ppl_after", "kl", "top1_agreement",
                                 "compress_seconds", "budget_ok", "sha256", "artifact", "violations"]
        for row in rows {
            XCTAssertEqual(Set(row.keys), keys)
            let edge = try Data(contentsOf: URL(fileURLWithPath: out + "/" + (row["artifact"] as! String)))
            XCTAssertEqual(row["bytes"] as? Int, edge.count)
            XCTAssertEqual(row["sha256"] as? String, edge.withUnsafeBytes { SHA256.hex($0) })
        }
        let md = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        XCTAssertEqual(md.split(separator: "\n").filter { $0.hasPrefix("| int8") }.count, 2)
        let svg = try String(contentsOfFile: out + "/pareto.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("int8-prune50") && svg.contains("perplexity") && svg.contains("MB"))
    }

    func testRecipeOverBudgetFailsAfterWritingTheReport() throws {
        let recipe = tmp.appendingPathComponent("tight.json")
        try #"{"passes":[{"pass":"quantize","bits":8}],"budget":{"max_bytes":1000}}"#.write(to: recipe, atomically: true, encoding: .utf8)
        let out = tmp.appendingPathComponent("out").path
        let r = try script([fixturePath("tiny-gpt2"), out, "--recipes", "int8,\(recipe.path)", "--ctx", "64", "--chunks", "2", "--no-runtime"])
        XCTAssertNotEqual(r.code, 0)
        XCTAssertTrue(r.stderr.contains("budget exceeded") && r.stderr.contains("tight"), r.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as! [String: Any]
        XCTAssertEqual(report["budget_ok"] as? Bool, false)
        let rows = report["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.first { $0["recipe"] as? String == "tight" }?["budget_ok"] as? Bool, false)
        XCTAssertEqual(rows.first { $0["recipe"] as? String == "int8" }?["budget_ok"] as? Bool, true)
    }

    func testMissingModelIsAClearError() throws {
        let r = try script([tmp.appendingPathComponent("nope").path, tmp.path, "--no-runtime"])
        XCTAssertNotEqual(r.code, 0)
        XCTAssertTrue(r.stderr.contains("no such file"), r.stderr)
    }
}
