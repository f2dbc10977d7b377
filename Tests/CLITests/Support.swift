import Foundation
import XCTest

/// The package root (where Package.swift is), from this file's location.
func packageRoot() -> URL {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
    }
    fatalError("package root not found")
}

func fixturePath(_ name: String) -> String { packageRoot().appendingPathComponent("Fixtures/\(name)").path }
func recipePath(_ name: String) -> String { packageRoot().appendingPathComponent("Recipes/\(name).json").path }

/// Where `swift test` put the built binaries (beside the .xctest bundle).
var productsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
}

/// What a tool run printed and how it exited.
struct ToolResult {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// Runs a built tool (`compress`, `edge-run`) or, with a path, any program; waits for it.
func runTool(_ tool: String, _ args: [String], environment: [String: String]? = nil) throws -> ToolResult {
    let p = Process()
    p.executableURL = tool.hasPrefix("/") ? URL(fileURLWithPath: tool) : productsDirectory.appendingPathComponent(tool)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let o = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { o.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let e = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ToolResult(code: p.terminationStatus, stdout: String(decoding: o.data, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// A test case with a fresh temporary folder `tmp`, removed afterwards.
class TempDirTestCase: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("\(type(of: self))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }
}
