import Foundation

/// Writes `bytes` to `path` with plain stdio (`Data.write` syncs, which is slow in loops).
/// - Throws: `BytesError` naming the file when it cannot be created or written.
public func writeBytes(_ bytes: [UInt8], to path: String) throws {
    guard let f = fopen(path, "wb") else { throw BytesError(file: path, why: "cannot create") }
    defer { fclose(f) }
    guard fwrite(bytes, 1, bytes.count, f) == bytes.count else { throw BytesError(file: path, why: "cannot write") }
}

/// The bytes of the file at `path`.
public func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

/// A test file could not be written.
public struct BytesError: Error, CustomStringConvertible {
    /// The file's path.
    public var file: String
    /// What went wrong.
    public var why: String
    public var description: String { "\(file): \(why)" }
}
