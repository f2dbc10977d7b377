import Foundation

/// Where `swift test` put the built binaries (beside the .xctest bundle).
public var productsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
}

/// What a tool run printed and how it exited.
public struct ToolResult {
    /// The exit status.
    public var code: Int32
    /// Standard output, decoded as UTF-8.
    public var stdout: String
    /// Standard error, decoded as UTF-8.
    public var stderr: String
}

/// Runs a built tool (`compress`, `edge-run`) or, with an absolute path, any program, and waits for it.
/// Both pipes are read concurrently, so a chatty child cannot block on a full pipe.
public func runTool(_ tool: String, _ args: [String], environment: [String: String]? = nil) throws -> ToolResult {
    let p = Process()
    p.executableURL = tool.hasPrefix("/") ? URL(fileURLWithPath: tool) : productsDirectory.appendingPathComponent(tool)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
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

/// Runs `python3 args...` (found through /usr/bin/env).
public func runPython(_ args: [String]) throws -> ToolResult { try runTool("/usr/bin/env", ["python3"] + args) }

/// Whether `python3` with numpy can be run here (the independent references need it).
public let pythonWithNumpy: Bool = (try? runPython(["-c", "import numpy"]).code == 0) ?? false
