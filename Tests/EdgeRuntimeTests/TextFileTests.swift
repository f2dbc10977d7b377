import EdgeRuntime
import Foundation
import XCTest

/// `TextFile.load`: the one loader of evaluation, calibration and training text.
final class TextFileTests: XCTestCase {
    func testLoadsUTF8AndRefusesWithOneErrorType() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("textfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.txt"), bad = dir.appendingPathComponent("bad.txt")
        try Data("We the People — ünïcode\n".utf8).write(to: good)
        try Data([0x61, 0xFF, 0xFE, 0x62]).write(to: bad)
        XCTAssertEqual(try TextFile.load(path: good.path, purpose: "evaluation text"), "We the People — ünïcode\n")
        XCTAssertThrowsError(try TextFile.load(path: bad.path, purpose: "calibration text")) { e in
            XCTAssertEqual(e as? TextFileError, .notUTF8(path: bad.path, purpose: "calibration text"))
            XCTAssertEqual("\(e)", "\(bad.path): cannot read the calibration text: not valid UTF-8")
        }
        let missing = dir.appendingPathComponent("none.txt").path
        XCTAssertThrowsError(try TextFile.load(path: missing, purpose: "training text")) { e in
            XCTAssertEqual(e as? TextFileError, .unreadable(path: missing, purpose: "training text"))
        }
        XCTAssertThrowsError(try TextFile.load(path: dir.path, purpose: "evaluation text")) { e in
            XCTAssertEqual(e as? TextFileError, .unreadable(path: dir.path, purpose: "evaluation text"), "a folder is not a text file")
        }
        let bom = dir.appendingPathComponent("bom.txt")
        try Data([0xEF, 0xBB, 0xBF] + Array("text".utf8)).write(to: bom)
        XCTAssertEqual(try TextFile.load(path: bom.path, purpose: "evaluation text"), "text", "a byte order mark is not text")
    }
}
