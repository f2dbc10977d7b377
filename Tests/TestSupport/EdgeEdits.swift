import EdgeFormat
import Foundation

// Edits of an `.edge` file that keep its checksums right, so that only the edit itself is wrong
// and the reader's semantic checks (not the CRC) are what a test exercises.

/// The little-endian u64 at `at`.
public func readLEU64(_ b: [UInt8], _ at: Int) -> UInt64 { (0 ..< 8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }

/// Writes `v` little-endian at `at`.
public func putLE<T: FixedWidthInteger>(_ v: T, into b: inout [UInt8], at: Int) {
    for i in 0 ..< MemoryLayout<T>.size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
}

/// Rewrites the header of the `.edge` file at `path` through `edit`, fixing header_length and
/// header_crc32.
public func editEdgeHeader(_ path: String, _ edit: (inout JSONValue) throws -> Void) throws {
    var b = try readBytes(path)
    let offset = Int(readLEU64(b, 16))
    var tree = try b[offset...].withUnsafeBytes { try JSONValue.parse($0) }
    try edit(&tree)
    try replaceEdgeHeader(path, &b, offset: offset, with: tree.jsonBytes())
}

/// Replaces the header bytes of `b` (the file at `path`, header at `offset`) with `header`
/// verbatim, fixing header_length and header_crc32, and writes the file.
public func replaceEdgeHeader(_ path: String, _ b: inout [UInt8], offset: Int, with header: [UInt8]) throws {
    b.removeSubrange(offset...)
    b += header
    putLE(UInt64(header.count), into: &b, at: 24)
    putLE(CRC32.checksum(header), into: &b, at: 32)
    try writeBytes(b, to: path)
}

/// Applies `edit` to the members of tensor `name` in the header of the `.edge` file at `path`.
public func editEdgeTensor(_ path: String, _ name: String, _ edit: @escaping (inout [String: JSONValue]) -> Void) throws {
    try editEdgeHeader(path) { tree in
        guard case var .object(top) = tree, case var .array(ts)? = top["tensors"] else { return }
        for i in ts.indices where ts[i]["name"] == .string(name) {
            guard case var .object(o) = ts[i] else { continue }
            edit(&o)
            ts[i] = .object(o)
        }
        top["tensors"] = .array(ts)
        tree = .object(top)
    }
}

/// Rewrites tensor `name`'s payload bytes in place through `edit` (given the bytes and the entry)
/// and fixes the tensor's CRC32.
public func editEdgePayload(_ path: String, _ name: String, _ edit: (inout [UInt8], TensorEntry) throws -> Void) throws {
    let f = try EdgeFile(path: path)
    guard let e = f.entry(named: name) else { throw BytesError(file: path, why: "no tensor \(name)") }
    var payload = Array(try f.payload(of: e))
    try edit(&payload, e)
    var b = try readBytes(path)
    b.replaceSubrange(e.offset ..< e.offset + e.length, with: payload)
    try writeBytes(b, to: path)
    let crc = CRC32.checksum(payload)
    try editEdgeTensor(path, name) { $0["crc32"] = .number(Double(crc)) }
}
