import EdgeFormat
import EdgeKernels
import Foundation

/// Element types a safetensors header may name, with their sizes. The header is validated for
/// all of them (so a file whose unused buffers are integers still opens); only `F32`, `F16` and
/// `BF16` are read as weights.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3", f8e8m0 = "F8_E8M0"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case f64 = "F64", i64 = "I64", u64 = "U64", c64 = "C64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64, .c64: return 8
        }
    }

    /// Whether `SafetensorsFile.floats(_:)` reads this type (F32, F16, BF16).
    public var isReadable: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

/// One safetensors file (`u64` little-endian header length N, N bytes of JSON header, then the
/// data buffer), mapped and fully validated when opened, the way the reference implementation
/// validates: header at most 100 MB and inside the file; every tensor's `data_offsets` span
/// exactly `dtype size x element count` bytes (checked arithmetic); tensors sorted by offset
/// tile the buffer with no overlap, no gap and no trailing bytes. Values are converted lazily
/// by `floats(_:)` straight from the mapping.
public final class SafetensorsFile: @unchecked Sendable {
    /// One tensor of the header.
    public struct Entry: Sendable {
        /// Name in the file.
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        /// Number of elements (product of `shape`).
        public let count: Int
        /// Absolute offset of the first byte in the file.
        public let offset: Int
        /// Bytes the tensor occupies (`count x dtype.size`).
        public let byteCount: Int
    }

    /// Largest header accepted, as in the reference implementation.
    public static let maxHeaderBytes = 100_000_000

    /// The mapped file; tensors' loaders keep it alive.
    public let mapped: MappedFile
    /// The `__metadata__` map of the header (empty when absent).
    public let metadata: [String: String]
    /// The tensors in file order (by offset).
    public let entries: [Entry]
    private let byName: [String: Int]

    /// The file's path.
    public var path: String { mapped.path }

    /// Maps and validates the file at `path`.
    /// - Throws: `FormatError.io` when it cannot be mapped; `CheckpointError.badHeader`,
    ///   `.unknownDType` or `.badOffsets` naming the file, the tensor and the numbers.
    public convenience init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    /// Validates an already mapped file (see `init(path:)`).
    public init(file: MappedFile) throws {
        mapped = file
        let path = file.path
        func bad(_ why: String) -> CheckpointError { .badHeader(file: path, why: why) }

        guard file.size >= 8 else { throw bad("file is \(file.size) bytes; a safetensors file starts with an 8-byte header length") }
        var cursor = file.cursor()
        let n64 = try cursor.u64le("header length")
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw bad("header length \(n64) exceeds the limit of \(Self.maxHeaderBytes) bytes")
        }
        let headerLength = Int(n64)
        guard headerLength <= file.size - 8 else {
            throw bad("header length \(headerLength) exceeds the \(file.size - 8) bytes that follow the length field")
        }
        let headerBytes = try cursor.slice(headerLength, "header")
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw bad("header does not start with '{' (found byte \(headerBytes.first.map { String($0) } ?? "none") at offset 8)")
        }
        let root = try JSONValue.hfObject(Data(headerBytes), file: path, what: "header (\(headerLength) bytes at offset 8)")

        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        // Offsets relative to the data buffer, validated against it below.
        var spans: [(begin: Int, end: Int, entry: Int)] = []
        let dataStart = 8 + headerLength
        for key in root.keys.sorted() {
            let value = root[key]!
            if key == "__metadata__" {
                guard case let .object(m) = value else { throw bad("__metadata__ is \(value.hfKindName); expected an object of strings") }
                for (k, v) in m {
                    guard case let .string(s) = v else { throw bad("__metadata__ entry '\(k)' is \(v.hfKindName); expected a string") }
                    metadata[k] = s
                }
                continue
            }
            let (entry, begin, end) = try Self.entry(key, value, dataStart: dataStart, file: path)
            spans.append((begin, end, entries.count))
            entries.append(entry)
        }

        // Sorted by offset (ties by end, then name, for a deterministic order), tensors must tile the buffer.
        spans.sort { ($0.begin, $0.end, entries[$0.entry].name) < ($1.begin, $1.end, entries[$1.entry].name) }
        let dataSize = file.size - dataStart
        var expected = 0
        var previous: String?
        for s in spans {
            let name = entries[s.entry].name
            let after = previous.map { "the previous tensor '\($0)' ends at \(expected)" } ?? "the data buffer starts at 0"
            if s.begin < expected {
                throw CheckpointError.badOffsets(file: path, tensor: name,
                                                 why: "data_offsets [\(s.begin), \(s.end)] overlap: \(after)")
            }
            if s.begin > expected {
                throw CheckpointError.badOffsets(file: path, tensor: name,
                                                 why: "data_offsets [\(s.begin), \(s.end)] leave a gap of \(s.begin - expected) bytes: \(after)")
            }
            if s.end > dataSize {
                throw CheckpointError.badOffsets(file: path, tensor: name,
                                                 why: "data_offsets [\(s.begin), \(s.end)] lie outside the data buffer (\(dataSize) bytes, at file offset \(dataStart))")
            }
            expected = s.end
            previous = name
        }
        if expected != dataSize {
            let why = "\(dataSize - expected) trailing bytes after the last tensor (tensors end at buffer offset \(expected), the buffer has \(dataSize) bytes)"
            if let previous { throw CheckpointError.badOffsets(file: path, tensor: previous, why: why) }
            throw bad(why)
        }

        self.metadata = metadata
        self.entries = spans.map { entries[$0.entry] }
        var byName: [String: Int] = [:]
        for (i, e) in self.entries.enumerated() { byName[e.name] = i }
        self.byName = byName
    }

    /// Parses one tensor description; returns it with its buffer-relative span.
    private static func entry(_ name: String, _ value: JSONValue, dataStart: Int, file: String) throws -> (Entry, Int, Int) {
        func bad(_ why: String) -> CheckpointError { .badHeader(file: file, why: "tensor '\(name)': \(why)") }
        guard case let .object(o) = value else { throw bad("description is \(value.hfKindName); expected an object") }
        guard case let .string(dtypeName)? = o["dtype"] else { throw bad("'dtype' is missing or not a string") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw CheckpointError.unknownDType(file: file, tensor: name, dtype: dtypeName)
        }
        func ints(_ key: String) throws -> [Int] {
            guard case let .array(a)? = o[key] else { throw bad("'\(key)' is missing or not an array") }
            return try a.map {
                guard let i = $0.intValue else { throw bad("'\(key)' must hold integers (up to 2^53), found \($0.compactString)") }
                return i
            }
        }
        let shape = try ints("shape")
        if let d = shape.first(where: { $0 < 0 }) { throw bad("shape \(Excerpt.shape(shape)) has a negative dimension (\(d))") }
        guard let count = Checked.product(shape), let byteCount = Checked.mul(count, dtype.size) else {
            throw bad("shape \(Excerpt.shape(shape)) of \(dtypeName) overflows the element count")
        }
        let offsets = try ints("data_offsets")
        guard offsets.count == 2 else { throw bad("'data_offsets' has \(offsets.count) values; expected [begin, end]") }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, end >= begin else {
            throw CheckpointError.badOffsets(file: file, tensor: name, why: "data_offsets [\(begin), \(end)] are not an increasing pair of non-negative offsets")
        }
        guard end - begin == byteCount else {
            throw CheckpointError.badOffsets(file: file, tensor: name,
                                             why: "data_offsets [\(begin), \(end)] span \(end - begin) bytes but \(dtypeName) x shape \(Excerpt.shape(shape)) needs \(byteCount)")
        }
        guard let absolute = Checked.add(dataStart, begin) else {
            throw CheckpointError.badOffsets(file: file, tensor: name, why: "data_offsets [\(begin), \(end)] overflow the file offset")
        }
        return (Entry(name: name, dtype: dtype, shape: shape, count: count, offset: absolute, byteCount: byteCount), begin, end)
    }

    /// The tensor named `name`, if the file has it.
    public func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// The values of `entry` as float32 (row-major, as stored), converted from the mapped bytes;
    /// the source pages are released afterwards so a large model streams through memory.
    /// - Throws: `CheckpointError.unknownDType` when the dtype is not F32, F16 or BF16.
    public func floats(_ entry: Entry) throws -> [Float] {
        guard entry.dtype.isReadable else {
            throw CheckpointError.unknownDType(file: path, tensor: entry.name, dtype: entry.dtype.rawValue)
        }
        let raw = try mapped.range(entry.offset, entry.byteCount, what: "tensor '\(entry.name)'")
        var out = [Float](repeating: 0, count: entry.count)
        guard entry.count > 0 else { return out }
        // Converted in chunks, each chunk's source pages released right after: the file's pages
        // and the values are never both resident for a whole (e.g. 100 MB embedding) tensor.
        let width = entry.byteCount / entry.count
        let chunk = max(1, (8 << 20) / width)
        out.withUnsafeMutableBufferPointer { dst in
            var i0 = 0
            while i0 < entry.count {
                let n = min(chunk, entry.count - i0)
                let src = raw.baseAddress! + i0 * width
                switch entry.dtype {
                case .f16: edge_f16_to_f32_row(src, dst.baseAddress! + i0, n)
                case .bf16: edge_bf16_to_f32_row(src, dst.baseAddress! + i0, n)
                default:
                    for i in 0 ..< n {
                        dst[i0 + i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    }
                }
                mapped.release(entry.offset + i0 * width, n * width)
                i0 += n
            }
        }
        return out
    }
}
