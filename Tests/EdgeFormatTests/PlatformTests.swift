import EdgeFormat
import Foundation
import TestSupport
import XCTest

/// The C-library helpers the runtime uses instead of Foundation (Platform.swift), and the atomic
/// writers built on them.
final class PlatformTests: TempDirTestCase {
    func testPathsFoldersAndFiles() throws {
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertEqual(absolutePath("a/../b/./c/"), cwd + "/b/c")
        XCTAssertEqual(absolutePath("/x//y/../z"), "/x/z")
        XCTAssertEqual(absolutePath("/"), "/")

        let deep = tmp.appendingPathComponent("p/q/r").path
        XCTAssertTrue(makeDirectories(deep))
        XCTAssertTrue(isDirectory(deep) && makeDirectories(deep))
        let file = deep + "/f.bin"
        XCTAssertFalse(fileExists(file))
        XCTAssertNil(readWholeFile(file))
        let bytes = (0 ..< 200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        XCTAssertTrue(fileExists(file))
        XCTAssertEqual(readWholeFile(file), bytes)
        XCTAssertNil(readWholeFile(deep), "a folder is not a file")
        XCTAssertEqual(realPath(tmp.appendingPathComponent("p/q/../q/r/f.bin").path), realPath(file))
        var names: [String] = []
        XCTAssertTrue(forEachDirectoryEntry(deep) { names.append($0) })
        XCTAssertEqual(names, ["f.bin"])
        XCTAssertFalse(forEachDirectoryEntry(file) { _ in })
    }

    func testProcessorCountAndClock() {
        let n = activeProcessorCount()
        XCTAssertGreaterThanOrEqual(n, 1)
        XCTAssertLessThanOrEqual(n, ProcessInfo.processInfo.processorCount)
        #if os(Linux)
        XCTAssertEqual(n, ProcessInfo.processInfo.activeProcessorCount, "the count Foundation gave")
        #endif
        let a = monotonicSeconds(), b = monotonicSeconds()
        XCTAssertGreaterThanOrEqual(b, a)
    }

    func testAtomicOutputRefusesItsInputAndCommits() throws {
        let input = tmp.appendingPathComponent("in.bin").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: input))
        let link = tmp.appendingPathComponent("link.bin").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: input)
        for alias in [input, link, tmp.appendingPathComponent("p/../in.bin").path] {
            XCTAssertThrowsError(try AtomicOutput(destination: alias, protecting: [input]), alias)
        }
        let out = try AtomicOutput(destination: tmp.appendingPathComponent("./out.bin").path, protecting: [input])
        XCTAssertEqual(out.destination, absolutePath(tmp.appendingPathComponent("out.bin").path))
        try out.write([9, 8])
        try out.commit()
        XCTAssertEqual(readWholeFile(tmp.appendingPathComponent("out.bin").path), [9, 8])
        XCTAssertThrowsError(try AtomicOutput(destination: tmp.appendingPathComponent("none/out.bin").path))
    }

    func testAtomicFolderCreatesParentsAndMergesIntoAnExistingFolder() throws {
        for round in 0 ..< 2 {
            let dest = tmp.appendingPathComponent("a/b/folder").path
            let f = try AtomicFolder(destination: dest)
            try Data([UInt8(round)]).write(to: URL(fileURLWithPath: f.stagingPath + "/x\(round)"))
            try f.commit()
            XCTAssertFalse(fileExists(f.stagingPath))
            XCTAssertEqual(readWholeFile(dest + "/x\(round)"), [UInt8(round)])
        }
        var names: [String] = []
        forEachDirectoryEntry(tmp.appendingPathComponent("a/b/folder").path) { names.append($0) }
        XCTAssertEqual(names.sorted(), ["x0", "x1"])
    }
}
