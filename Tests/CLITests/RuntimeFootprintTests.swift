import Foundation
import TestSupport
import XCTest

/// The runtime side (`edge-run` and the modules it is made of) links FoundationEssentials only, not
/// Foundation with its ICU data: that is what keeps the static device binary a few megabytes.
final class RuntimeFootprintTests: XCTestCase {
    #if os(Linux)
    func testEdgeRunDoesNotLinkFoundation() throws {
        let binary = productsDirectory.appendingPathComponent("edge-run").path
        let r = try runTool("/usr/bin/ldd", [binary])
        XCTAssertEqual(r.code, 0, r.stderr)
        let libraries = r.stdout.split(separator: "\n").map { String($0.split(separator: " ").first ?? "").trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(libraries.contains("libFoundationEssentials.so"), r.stdout)
        for banned in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            XCTAssertFalse(libraries.contains(banned), "edge-run links \(banned):\n\(r.stdout)")
        }
        // The compressor may use all of Foundation: the check above is not vacuous.
        let c = try runTool("/usr/bin/ldd", [productsDirectory.appendingPathComponent("compress").path])
        XCTAssertTrue(c.stdout.contains("libFoundation.so"), c.stdout)
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
