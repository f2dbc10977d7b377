import EdgeFormat
import XCTest

/// Input text inside error messages: escaped, cut, one line.
final class ExcerptTests: XCTestCase {
    func testQuotedEscapesControlsAndCuts() {
        XCTAssertEqual(Excerpt.quoted("a\nb\t'c'\u{1b}"), #"'a\nb\t\'c\'\u{1b}'"#)
        let long = Excerpt.quoted(String(repeating: "x", count: 4096), limit: 10)
        XCTAssertEqual(long, "'xxxxxxxxxx…(4096 characters)'")
        XCTAssertEqual(Excerpt.shape([1, 2, 3]), "[1, 2, 3]")
        XCTAssertEqual(Excerpt.shape(Array(repeating: 7, count: 100), limit: 2), "[7, 7, … (100 dimensions)]")
    }

    func testOneLineKeepsStartAndEndWithinTheLimit() {
        let message = "file.edge: " + String(repeating: "日本\n", count: 500) + " is not finite"
        let line = Excerpt.oneLine(message, limit: 300)
        XCTAssertLessThanOrEqual(line.utf8.count, 300)
        XCTAssertFalse(line.contains("\n"))
        XCTAssertTrue(line.hasPrefix("file.edge: 日本\\n"), line)
        XCTAssertTrue(line.hasSuffix(" is not finite"), line)
        XCTAssertEqual(Excerpt.oneLine("short 'quoted' \\ path"), "short 'quoted' \\ path", "only controls are escaped")
    }
}
