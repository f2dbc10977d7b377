import Foundation
import XCTest

/// A fresh empty folder `<tmp>/<prefix>-<uuid>`; the caller removes it (for helpers outside a test case).
public func makeTemporaryFolder(prefix: String = "edge-tests") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A fresh empty folder, removed when `test` ends (by a teardown block).
public func temporaryFolder(_ test: XCTestCase, prefix: String = "edge-tests") throws -> URL {
    let url = try makeTemporaryFolder(prefix: prefix)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A test case with a fresh temporary folder `tmp` for each test, removed afterwards.
open class TempDirTestCase: XCTestCase {
    /// This test's scratch folder.
    public var tmp: URL!

    override open func setUpWithError() throws {
        try super.setUpWithError()
        tmp = try temporaryFolder(self, prefix: "\(type(of: self))")
    }
}
