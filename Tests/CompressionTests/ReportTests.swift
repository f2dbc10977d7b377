@testable import Compression
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class ReportTests: XCTestCase {
    /// A row for a model of `bytes / 125_000` weights... expressed directly: bits/weight = bytes * 8 / weights.
    private func row(_ name: String, bytes: Int, ppl: Double, ok: Bool = true, weights: Double = 1e6) -> ReportRow {
        ReportRow(recipe: name, artifact: name + ".edge", bytes: bytes, bitsPerWeight: Double(bytes) * 8 / weights, ratio: Double(bytes) / 4e6,
                  pplBefore: 10, pplAfter: ppl, kl: 0.01, top1Agreement: 0.95, compressSeconds: 1.5, budgetOK: ok,
                  violations: ok ? [] : ["size 9 > max 1"], sha256: String(repeating: "a", count: 64))
    }

    func testMarkdownHasOneRowPerRecipeAndFlagsFailures() {
        let md = Report.markdown(rows: [row("int8", bytes: 1_000_000, ppl: 10.05), row("int4", bytes: 600_000, ppl: 11, ok: false)],
                                 model: "m", text: "t.txt")
        let lines = md.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.hasPrefix("| int") }.count, 2)
        XCTAssertTrue(md.contains("| int8 | 1000000 | 8.00 | 0.250 | 10.000 | 10.050 | 0.50% |"), md)
        XCTAssertTrue(md.contains("**FAIL**: size 9 > max 1"))
        // every table line has the same number of cells as the header
        let cells = lines.filter { $0.hasPrefix("|") }.map { $0.filter { $0 == "|" }.count }
        XCTAssertEqual(Set(cells).count, 1)
    }

    func testJSONBudgetSummary() {
        XCTAssertEqual(Report.json(rows: [row("a", bytes: 1, ppl: 10)], model: "m", text: "t")["budget_ok"], .bool(true))
        XCTAssertEqual(Report.json(rows: [row("a", bytes: 1, ppl: 10), row("b", bytes: 1, ppl: 10, ok: false)], model: "m", text: "t")["budget_ok"], .bool(false))
    }

    func testSVGIsWellFormedWithAxesAndLabels() throws {
        let svg = Report.svg(rows: [row("int8", bytes: 137_000_000, ppl: 7.4), row("int8-prune50", bytes: 90_000_000, ppl: 9.1, ok: false, weights: 1e9)],
                             model: "SmolLM2 <135M>")
        let doc = try XMLDocument(xmlString: svg)
        XCTAssertEqual(doc.rootElement()?.name, "svg")
        XCTAssertTrue(svg.contains("SmolLM2 &lt;135M&gt;"))
        XCTAssertTrue(svg.contains("artifact size (MB"))
        XCTAssertTrue(svg.contains("perplexity"))
        XCTAssertTrue(svg.contains("int8-prune50 (0.72 b/w, over budget)"))
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 2)
    }

    func testLogAxisForWideRanges() {
        let wide = Report.svg(rows: [row("a", bytes: 1_000_000, ppl: 9.7), row("b", bytes: 900_000, ppl: 340)], model: "m")
        XCTAssertTrue(wide.contains("log scale"))
        XCTAssertTrue(wide.contains(">100<") && wide.contains(">20<"), "1-2-5 ticks per decade")
        let narrow = Report.svg(rows: [row("a", bytes: 1_000_000, ppl: 9.7), row("b", bytes: 900_000, ppl: 11)], model: "m")
        XCTAssertFalse(narrow.contains("log scale"))
        XCTAssertEqual(Report.logTicks(lo: 8, hi: 350), [10, 20, 50, 100, 200])
    }

    /// Encoder rows (from `compress verify` of an encoder) read from a folder as device-artifacts.sh
    /// leaves it, and their own table and plot.
    func testEncoderRowsFromVerifyJSON() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-encoder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("edge bytes".utf8).write(to: dir.appendingPathComponent("int8.edge"))
        let verify = #"{"kind": "encoder", "before": {"bytes": 4000, "bits_per_weight": 32}, "after": {"bytes": 1000, "bits_per_weight": 8.2},"#
            + #" "mean_cosine": 0.9993, "min_cosine": 0.998, "retrieval_agreement": 0.9675, "budget": {"ok": false, "violations": ["mean cosine 0.9993 < min 0.9995"]}}"#
        try Data(verify.utf8).write(to: dir.appendingPathComponent("int8.verify.json"))
        let rows = try Report.rows(folder: dir.path)
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows[0].encoder, .init(meanCosine: 0.9993, minCosine: 0.998, retrievalAgreement: 0.9675))
        XCTAssertEqual(rows[0].ratio, 0.25)
        XCTAssertFalse(rows[0].budgetOK)
        let md = Report.markdown(rows: rows, model: "MiniLM", text: "s.txt")
        XCTAssertTrue(md.contains("| mean cosine | min cosine | retrieval |"), md)
        XCTAssertTrue(md.contains("| int8 | 1000 | 8.20 | 0.250 | 0.9993 | 0.9980 | 96.8% |"), md)
        XCTAssertEqual(Report.json(rows: rows, model: "m", text: "t")["rows"]?.arrayValue?.first?["kind"], .string("encoder"))
        XCTAssertTrue(Report.svg(rows: rows, model: "m").contains("1 - mean cosine to float"))
    }

    /// A decoder row with the runtime's `edge-run bench --json` beside it gets the pp / tg / peak
    /// columns (rows without one get dashes); a bench file without its numbers is refused by name.
    func testRuntimeColumnsFromBenchJSON() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let verify = #"{"before": {"bytes": 4000, "bits_per_weight": 32, "ppl": 10}, "after": {"bytes": 1000, "bits_per_weight": 8.2, "ppl": 10.1},"#
            + #" "kl": 0.001, "top1_agreement": 0.99, "budget": {"ok": true, "violations": []}}"#
        for r in ["int8", "int4"] {
            try Data("edge bytes \(r)".utf8).write(to: dir.appendingPathComponent("\(r).edge"))
            try Data(verify.utf8).write(to: dir.appendingPathComponent("\(r).verify.json"))
        }
        let bench = #"{"pp": {"median": 812.25, "tokens": 512, "tokens_per_second": [800, 812.25, 820]},"#
            + #" "tg": {"median": 180.04, "tokens": 128, "tokens_per_second": [180.04]}, "peak_rss_bytes": 194539520, "kernels": {"level": "avx2"}}"#
        try Data(bench.utf8).write(to: dir.appendingPathComponent("int8.bench.json"))
        let rows = try Report.rows(folder: dir.path)
        let int8 = try XCTUnwrap(rows.first { $0.recipe == "int8" })
        XCTAssertEqual(int8.runtime, .init(promptTokens: 512, promptTokensPerSecond: 812.25, generatedTokens: 128,
                                           generationTokensPerSecond: 180.04, peakRSSBytes: 194539520, kernels: "avx2"))
        XCTAssertNil(rows.first { $0.recipe == "int4" }?.runtime)
        let md = Report.markdown(rows: rows, model: "m", text: "t.txt")
        XCTAssertTrue(md.contains("| top-1 | pp tok/s | tg tok/s | peak MB | compress s |"), md)
        XCTAssertTrue(md.contains("| 99.0% | 812.2 | 180.0 | 194.5 | 0.0 | ok |"), md)
        XCTAssertTrue(md.contains("| 99.0% | - | - | - | 0.0 | ok |"), md)
        XCTAssertTrue(md.contains("-p 512 -n 128 -r 3 --json") && md.contains("kernels: avx2"), md)
        let cells = md.split(separator: "\n").filter { $0.hasPrefix("|") }.map { $0.filter { $0 == "|" }.count }
        XCTAssertEqual(Set(cells).count, 1)
        let json = Report.json(rows: rows, model: "m", text: "t")["rows"]?.arrayValue ?? []
        XCTAssertEqual(json.first { $0["recipe"] == .string("int8") }?["runtime"]?["peak_rss_bytes"], .number(194539520))

        try Data(#"{"pp": {"median": 812.25, "tokens": 512}, "peak_rss_bytes": 1}"#.utf8).write(to: dir.appendingPathComponent("int4.bench.json"))
        XCTAssertThrowsError(try Report.rows(folder: dir.path)) { error in
            XCTAssertEqual("\(error)", dir.path + "/int4.bench.json: missing number 'tg.tokens'")
        }
        // A count no run makes is refused by name rather than converted (Int(1e300) would trap).
        try Data(bench.replacingOccurrences(of: #""tokens": 128"#, with: #""tokens": 1e300"#).utf8)
            .write(to: dir.appendingPathComponent("int4.bench.json"))
        XCTAssertThrowsError(try Report.rows(folder: dir.path)) { error in
            XCTAssertEqual("\(error)", dir.path + "/int4.bench.json: 'tg.tokens' is not a token count")
        }
    }

    func testNiceTicks() {
        XCTAssertEqual(Report.niceStep(0.23), 0.5)
        XCTAssertEqual(Report.niceStep(17), 20)
        XCTAssertEqual(Report.ticks(0, 1), [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0])
        XCTAssertEqual(Report.tickDigits(0, 0.2), 2)
        XCTAssertEqual(Report.tickDigits(0, 200), 0)
    }
}
