import Foundation
import TestSupport
import XCTest

/// The runtime side (`edge-run` and the modules it is made of) links neither Foundation nor
/// FoundationEssentials: that is what keeps the static device binary under issue 15's 12 MB.
final class RuntimeFootprintTests: XCTestCase {
    #if os(Linux)
    func testEdgeRunLinksNoFoundation() throws {
        func libraries(_ tool: String) throws -> [String] {
            let r = try runTool("/usr/bin/ldd", [productsDirectory.appendingPathComponent(tool).path])
            XCTAssertEqual(r.code, 0, r.stderr)
            return r.stdout.split(separator: "\n").map { String($0.split(separator: " ").first ?? "").trimmingCharacters(in: .whitespaces) }
        }
        let banned = ["libFoundation.so", "libFoundationEssentials.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"]
        let runtime = try libraries("edge-run")
        XCTAssertTrue(runtime.contains("libswiftCore.so"), "ldd lists the Swift libraries: \(runtime)")
        for b in banned {
            XCTAssertFalse(runtime.contains(b), "edge-run links \(b):\n\(runtime)")
        }
        // The compressor may use all of Foundation: the check above is not vacuous.
        let compressor = try libraries("compress")
        XCTAssertTrue(compressor.contains("libFoundation.so") && compressor.contains("libFoundationEssentials.so"), "\(compressor)")
    }
    #endif

    /// `--help` prints the usage on stdout and exits 0, for both tools and a subcommand (it once
    /// came out as a one-line error: ArgumentParser's help command throws its request from `run`).
    func testHelpPrintsUsage() throws {
        for (tool, args) in [("edge-run", ["--help"]), ("edge-run", ["perplexity", "--help"]), ("compress", ["--help"]), ("compress", ["verify", "--help"])] {
            let r = try runTool(tool, args)
            XCTAssertEqual(r.code, 0, "\(tool) \(args): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("USAGE:"), "\(tool) \(args): \(r.stdout)")
            XCTAssertFalse(r.stderr.contains("Error"), r.stderr)
        }
    }
}
