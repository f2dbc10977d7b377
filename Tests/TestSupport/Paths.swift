import Foundation

/// The package root (the folder holding Package.swift), found once by walking up from this file.
public let packageRootURL: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
    }
    fatalError("package root not found above \(#filePath)")
}()

/// The package root (the folder holding Package.swift).
public func packageRoot() -> URL { packageRootURL }

/// The package's `Fixtures/` folder.
public var fixturesFolder: URL { packageRootURL.appendingPathComponent("Fixtures") }

/// The path of `Fixtures/<name>` (a model folder, `text/<file>`, ...).
public func fixturePath(_ name: String) -> String { fixturesFolder.appendingPathComponent(name).path }

/// The path of `Recipes/<name>.json`.
public func recipePath(_ name: String) -> String { packageRootURL.appendingPathComponent("Recipes/\(name).json").path }

/// The path of `scripts/<name>`.
public func scriptPath(_ name: String) -> String { packageRootURL.appendingPathComponent("scripts/\(name)").path }
