
/// A tensor or a blob of an `.edge` file, for messages.
public enum EdgeItem: Equatable, Sendable, CustomStringConvertible {
    case tensor(String)
    case blob(String)

    public var description: String {
        switch self {
        case let .tensor(n): return "tensor \(Excerpt.quoted(n, limit: 80))"
        case let .blob(n): return "blob \(Excerpt.quoted(n, limit: 80))"
        }
    }
}

/// Everything the `.edge` reader refuses and the writer can fail with. Each case carries the
/// file and, where there is one, the item, field, offset and both numbers; `description` is the
/// one line the CLI prints.
public enum EdgeFormatError: Error, Equatable, CustomStringConvertible {
    /// The file cannot be opened, mapped, created, written or moved into place.
    case io(file: String, why: String)
    /// The first bytes are not the `.edge` magic.
    case notEdgeFile(file: String, found: [UInt8])
    /// The file ends before `what`, which needs `needed` bytes; the file has `size`.
    case truncated(file: String, what: String, needed: Int, size: Int)
    /// The preamble's version is newer than this reader (`supported`, the newest it reads).
    case newerVersion(file: String, version: UInt32, supported: UInt32)
    /// A tensor's encoding came with a later format version (`needs`) than the file says (`version`):
    /// q3 in a version-1 file, q4k in a version-1 or version-2 file, q3s in a file before version 4.
    case encodingNeedsNewerVersion(file: String, tensor: String, encoding: String, needs: UInt32, version: UInt32)
    /// A preamble field (at `offset`) has a value this reader does not accept.
    case badPreamble(file: String, field: String, offset: Int, why: String)
    /// The header bytes at `offset` do not match the preamble's CRC32.
    case headerChecksum(file: String, offset: Int, expected: UInt32, actual: UInt32)
    /// The header is not valid JSON, or `field` (a path such as "tensors[3].offset") is missing or wrong.
    case badHeader(file: String, field: String, why: String)
    /// The model config in the header breaks a rule (`why` names the config field).
    case badConfig(file: String, why: String)
    /// A tensor's encoding is not one this version knows.
    case unknownEncoding(file: String, tensor: String, encoding: String)
    /// A tensor's encoding is reserved and not implemented by this version (v1 reserves none any more).
    case unsupportedEncoding(file: String, tensor: String, encoding: String)
    /// A tensor's `field` (shape, params, nnz, ...) is invalid.
    case badTensor(file: String, tensor: String, field: String, why: String)
    /// An item's `field` length differs from what its shape and encoding imply.
    case badLength(file: String, item: EdgeItem, field: String, expected: Int, actual: Int)
    /// An item's offset is unaligned, outside the data area, or not where the packing rule puts it.
    case badOffset(file: String, item: EdgeItem, offset: Int, why: String)
    /// An item's bytes start at `offset`, before the end (`otherEnd`) of another item's bytes.
    case overlap(file: String, item: EdgeItem, offset: Int, other: EdgeItem, otherEnd: Int)
    /// Two tensors, or two blobs, have the same name.
    case duplicateName(file: String, item: EdgeItem)
    /// A padding byte between items is not zero.
    case nonZeroPadding(file: String, offset: Int)
    /// An item's stored bytes at `offset` do not match its CRC32.
    case checksum(file: String, item: EdgeItem, offset: Int, expected: UInt32, actual: UInt32)
    /// An item's deflate stream does not inflate to its declared bytes.
    case corruptPayload(file: String, item: EdgeItem, offset: Int, why: String)
    /// The item asked for is not in this file.
    case noSuchItem(file: String, item: EdgeItem)
    /// A provenance field breaks a rule.
    case badProvenance(file: String, field: String, why: String)
    /// The writer was used wrongly (after `finish()`, after a failure, or with an inconsistent tensor).
    case writerMisuse(file: String, why: String)

    public var description: String {
        func q(_ s: String) -> String { Excerpt.escaped(s, limit: 80) }
        func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16, uppercase: false) }
        switch self {
        case let .io(file, why): return "\(file): \(why)"
        case let .notEdgeFile(file, found):
            let shown = hexString(found, separator: " ")
            return "\(file): not an .edge file (the first bytes are \(shown.isEmpty ? "absent" : shown); an .edge file starts with 45 44 47 45 0d 0a 1a 0a, \"EDGE\\r\\n\\x1a\\n\")"
        case let .truncated(file, what, needed, size):
            return "\(file): truncated: \(what) needs the file to be at least \(needed) bytes, but it has \(size)"
        case let .newerVersion(file, version, supported):
            return "\(file): written by a newer version of the format (v\(version)); this reader understands up to v\(supported)"
        case let .encodingNeedsNewerVersion(file, tensor, encoding, needs, version):
            return "\(file): tensor '\(q(tensor))': \(encoding) needs format version \(needs), the file says \(version)"
        case let .badPreamble(file, field, offset, why): return "\(file): preamble field '\(q(field))' at offset \(offset) \(why)"
        case let .headerChecksum(file, offset, expected, actual):
            return "\(file): header at offset \(offset) is corrupt: CRC32 is \(hex(actual)), the preamble says \(hex(expected))"
        case let .badHeader(file, field, why):
            return field.isEmpty ? "\(file): header: \(why)" : "\(file): header field '\(q(field))' \(why)"
        case let .badConfig(file, why): return "\(file): \(why)"
        case let .unknownEncoding(file, tensor, encoding):
            return "\(file): tensor '\(q(tensor))': unknown encoding '\(q(encoding))' (this reader knows \(Encoding.allCases.filter(\.isImplemented).map(\.rawValue).joined(separator: ", ")))"
        case let .unsupportedEncoding(file, tensor, encoding):
            return "\(file): tensor '\(q(tensor))': encoding '\(q(encoding))' is reserved for a later format revision and not supported by this reader"
        case let .badTensor(file, tensor, field, why): return "\(file): tensor '\(q(tensor))': field '\(q(field))' \(why)"
        case let .badLength(file, item, field, expected, actual):
            return "\(file): \(item): \(field) is \(actual) bytes; its shape and encoding imply \(expected)"
        case let .badOffset(file, item, offset, why): return "\(file): \(item): offset \(offset) \(why)"
        case let .overlap(file, item, offset, other, otherEnd):
            return "\(file): \(item) starts at offset \(offset), inside \(other), which ends at \(otherEnd)"
        case let .duplicateName(file, item): return "\(file): \(item) appears more than once"
        case let .nonZeroPadding(file, offset): return "\(file): padding byte at offset \(offset) is not zero"
        case let .checksum(file, item, offset, expected, actual):
            return "\(file): \(item) at offset \(offset) is corrupt: CRC32 is \(hex(actual)), the header says \(hex(expected))"
        case let .corruptPayload(file, item, offset, why): return "\(file): \(item) at offset \(offset): \(why)"
        case let .noSuchItem(file, item): return "\(file): no \(item) in this file"
        case let .badProvenance(file, field, why): return "\(file): provenance field '\(q(field))' \(why)"
        case let .writerMisuse(file, why): return "\(file): \(why)"
        }
    }
}
