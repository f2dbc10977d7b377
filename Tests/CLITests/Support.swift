import Foundation
import TestSupport
import XCTest

// The CLI tests' own helpers; paths, temporary folders and running the tools come from TestSupport.

/// Asserts that a tool run failed (with `exitCode`, or any non-zero code when nil) and printed one
/// line on stderr containing every string of `parts`, and did not trap.
func assertOneLineFailure(_ r: ToolResult, contains parts: [String], exitCode: Int32? = nil,
                          file: StaticString = #filePath, line: UInt = #line) {
    if let exitCode {
        XCTAssertEqual(r.code, exitCode, "expected exit \(exitCode): \(r.stderr)", file: file, line: line)
    } else {
        XCTAssertNotEqual(r.code, 0, "expected failure, got success", file: file, line: line)
    }
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    XCTAssertEqual(lines.count, 1, "stderr should be one line: \(r.stderr)", file: file, line: line)
    for p in parts { XCTAssertTrue(r.stderr.contains(p), "'\(r.stderr)' lacks '\(p)'", file: file, line: line) }
    XCTAssertFalse(r.stderr.contains("Fatal error"), file: file, line: line)
}
