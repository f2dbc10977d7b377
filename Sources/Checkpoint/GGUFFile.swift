import EdgeFormat
import Foundation

// GGUF (llama.cpp's model file), versions 2 and 3, little-endian only:
//
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x      { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   zero padding to `general.alignment` (default 32)
//   tensor data; each tensor at data_start + offset, offset a multiple of the alignment
//
// string = u64 byte length + UTF-8 bytes; array = u32 element type + u64 count + elements.
// ne[0] is the fastest-moving dimension, so a GGUF matrix with ne = [in, out] is the row-major
// [out, in] matrix of Hugging Face; `GGUFTensorInfo.shape` is ne reversed.

/// A ggml tensor storage type: id, name and block layout (`blockSize` values in `typeSize` bytes).
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_M = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// ggml's name for the type ("Q4_K", "BF16", ...).
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq2_XXS: return "IQ2_XXS"
        case .iq2_XS: return "IQ2_XS"
        case .iq3_XXS: return "IQ3_XXS"
        case .iq1_S: return "IQ1_S"
        case .iq4_NL: return "IQ4_NL"
        case .iq3_S: return "IQ3_S"
        case .iq2_S: return "IQ2_S"
        case .iq4_XS: return "IQ4_XS"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .f64: return "F64"
        case .iq1_M: return "IQ1_M"
        case .bf16: return "BF16"
        case .tq1_0: return "TQ1_0"
        case .tq2_0: return "TQ2_0"
        case .mxfp4: return "MXFP4"
        }
    }

    /// Values per block (1 for plain types, 32 for Q*_0/Q*_1, 256 for K-quants).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL, .mxfp4: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_XXS, .iq2_XS, .iq3_XXS, .iq1_S, .iq3_S, .iq2_S,
             .iq4_XS, .iq1_M, .tq1_0, .tq2_0: return 256
        }
    }

    /// Bytes per block.
    public var typeSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i32: return 4
        case .i64, .f64: return 8
        case .q4_0: return 18       // f16 d, u8 qs[16]
        case .q4_1: return 20       // f16 d, f16 m, u8 qs[16]
        case .q5_0: return 22       // f16 d, u8 qh[4], u8 qs[16]
        case .q5_1: return 24       // f16 d, f16 m, u8 qh[4], u8 qs[16]
        case .q8_0: return 34       // f16 d, i8 qs[32]
        case .q8_1: return 36       // f16 d, f16 s, i8 qs[32]
        case .q2_K: return 84       // u8 scales[16], u8 qs[64], f16 d, f16 dmin
        case .q3_K: return 110      // u8 hmask[32], u8 qs[64], u8 scales[12], f16 d
        case .q4_K: return 144      // f16 d, f16 dmin, u8 scales[12], u8 qs[128]
        case .q5_K: return 176      // f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
        case .q6_K: return 210      // u8 ql[128], u8 qh[64], i8 scales[16], f16 d
        case .q8_K: return 292      // f32 d, i8 qs[256], i16 bsums[16]
        case .iq2_XXS: return 66
        case .iq2_XS: return 74
        case .iq3_XXS: return 98
        case .iq1_S: return 50
        case .iq4_NL: return 18
        case .iq3_S: return 110
        case .iq2_S: return 82
        case .iq4_XS: return 136
        case .iq1_M: return 56
        case .tq1_0: return 54
        case .tq2_0: return 66
        case .mxfp4: return 17
        }
    }
}

/// A GGUF metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    /// An array: the GGUF type id of its elements and the elements (which may themselves be arrays).
    case array(elementType: UInt32, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The value of any integer type that fits in `Int`, else nil.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value of a float type (or an integer, converted), else nil.
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return int.map(Double.init)
        }
    }

    /// The string, for `.string`, else nil.
    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// The elements, for `.array`, else nil.
    public var array: [GGUFValue]? {
        if case let .array(_, a) = self { return a }
        return nil
    }

    /// GGUF's name of the value's type, for messages ("u32", "string", "array[string]", ...).
    public var typeName: String {
        switch self {
        case .uint8: return "u8"
        case .int8: return "i8"
        case .uint16: return "u16"
        case .int16: return "i16"
        case .uint32: return "u32"
        case .int32: return "i32"
        case .float32: return "f32"
        case .bool: return "bool"
        case .string: return "string"
        case let .array(t, _): return "array[\(GGUFFile.valueTypeName(t))]"
        case .uint64: return "u64"
        case .int64: return "i64"
        case .float64: return "f64"
        }
    }
}

/// One entry of a GGUF tensor table, validated against the file.
public struct GGUFTensorInfo: Sendable {
    /// Name in the file (e.g. "blk.0.attn_q.weight").
    public let name: String
    /// ggml dims, `ne[0]` fastest-moving.
    public let ne: [Int]
    public let type: GGMLType
    /// Offset of the data relative to the start of the data section, as stored.
    public let offset: Int
    /// Absolute offset of the data in the file.
    public let fileOffset: Int
    /// Bytes of data.
    public let byteCount: Int
    /// Number of values.
    public let elementCount: Int

    /// Row-major shape: `ne` reversed ([out, in] for a matrix).
    public var shape: [Int] { ne.reversed() }
    /// Values per row (`ne[0]`; 1 for a 0-dimensional tensor).
    public var rowLength: Int { ne.first ?? 1 }
    /// Number of rows (all dims but the first, multiplied).
    public var rowCount: Int { rowLength == 0 ? 0 : elementCount / rowLength }
    /// Bytes per row (a whole number of blocks; the parser checks `rowLength % blockSize == 0`).
    public var rowBytes: Int { rowLength / type.blockSize * type.typeSize }
}

/// A parsed GGUF file: header, metadata and tensor table, validated the way llama.cpp's
/// `gguf_init_from_file` validates them, over a memory map (tensor data is not read until asked for).
public final class GGUFFile: @unchecked Sendable {
    /// Largest number of dimensions ggml supports.
    public static let maxDims = 4
    /// Deepest array-of-array nesting accepted in metadata.
    public static let maxArrayDepth = 8
    /// Alignment of the data section and of each tensor when `general.alignment` is absent.
    public static let defaultAlignment = 32

    public let file: MappedFile
    public var path: String { file.path }
    /// Format version (2 or 3; their layouts are identical).
    public let version: UInt32
    /// Metadata keys in file order.
    public let keys: [String]
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment` or 32.
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    private let index: [String: Int]

    /// Maps and parses `path`.
    /// - Throws: `CheckpointError` naming the file and the problem (see `init(file:)`).
    public convenience init(path: String) throws {
        let f: MappedFile
        do { f = try MappedFile(path: path) } catch let e as FormatError {
            throw CheckpointError.unsupportedInput(path: path, why: e.description)
        }
        try self.init(file: f)
    }

    /// Parses the header, metadata and tensor table of a mapped GGUF file.
    /// - Throws: `CheckpointError.badHeader` (magic, version, endianness, truncation, absurd counts,
    ///   duplicate keys, bad value types, too many dims, element-count overflow, row not a whole number
    ///   of blocks, bad alignment), `.unknownDType` (type id ggml does not define), `.duplicateTensor`,
    ///   `.badOffsets` (data misaligned, outside the file, or overlapping another tensor).
    public init(file: MappedFile) throws {
        self.file = file
        var p = Parser(cursor: file.cursor(), path: file.path)
        do {
            let h = try p.header()
            version = h.version
            (keys, metadata) = try p.metadata(count: h.nKV)
            alignment = try Self.alignment(metadata, file: file.path)
            let raw = try p.tensorTable(count: h.nTensors)
            guard let start = Self.padded(p.cursor.offset, to: alignment) else {
                throw CheckpointError.badHeader(file: file.path, why: "data section offset overflows")
            }
            dataOffset = start
            tensors = try Self.place(raw, dataOffset: start, alignment: alignment, fileSize: file.size, file: file.path)
        } catch let e as ByteCursor.Error {
            throw CheckpointError.badHeader(file: file.path, why: "truncated: \(e.what) needs \(e.needed) bytes at offset \(e.offset), only \(e.available) remain")
        }
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    /// The table entry named `name`, if any.
    public func tensor(named name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// The stored bytes of `t` (validated to lie inside the file when parsing).
    public func data(of t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[t.fileOffset ..< t.fileOffset + t.byteCount])
    }

    /// Rows `rows` of `t` dequantized to float32 (row-major, `rows.count * t.rowLength` values).
    /// - Throws: `CheckpointError.unknownDType` when the type has no dequantizer.
    public func floats(_ t: GGUFTensorInfo, rows: Range<Int>? = nil) throws -> [Float] {
        let r = rows ?? 0 ..< t.rowCount
        precondition(r.lowerBound >= 0 && r.upperBound <= t.rowCount, "row range outside the tensor")
        guard GGUFDequant.supports(t.type) else {
            throw CheckpointError.unknownDType(file: path, tensor: t.name, dtype: "\(t.type.name) (no dequantizer for this ggml type)")
        }
        let n = r.count * t.rowLength
        let src = UnsafeRawBufferPointer(rebasing: data(of: t)[r.lowerBound * t.rowBytes ..< r.upperBound * t.rowBytes])
        return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            GGUFDequant.dequantize(t.type, src, into: UnsafeMutableBufferPointer(rebasing: buf[0 ..< n]))
            initialized = n
        }
    }

    /// "count of each type" over the tensor table, most common first then by name: "Q4_1:210,F32:61,Q8_0:1".
    public var typeSummary: String {
        var counts: [String: Int] = [:]
        for t in tensors { counts[t.type.name, default: 0] += 1 }
        return counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    }

    /// GGUF's name of a value type id ("u8" ... "f64", "array").
    public static func valueTypeName(_ t: UInt32) -> String {
        let names = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"]
        return t < names.count ? names[Int(t)] : "type \(t)"
    }

    // MARK: - Parsing steps

    private static func padded(_ x: Int, to a: Int) -> Int? {
        guard let s = Checked.add(x, a - 1) else { return nil }
        return s / a * a
    }

    private static func alignment(_ metadata: [String: GGUFValue], file: String) throws -> Int {
        guard let v = metadata["general.alignment"] else { return defaultAlignment }
        guard let a = v.int else {
            throw CheckpointError.badHeader(file: file, why: "general.alignment is a \(v.typeName), expected an unsigned integer")
        }
        guard a > 0, a & (a - 1) == 0, a <= 1 << 30 else {
            throw CheckpointError.badHeader(file: file, why: "general.alignment is \(a); it must be a power of two (at most 2^30)")
        }
        return a
    }

    /// Checks each tensor's data range: aligned, inside the file, disjoint from the others.
    private static func place(_ raw: [Parser.RawTensor], dataOffset: Int, alignment: Int, fileSize: Int,
                              file: String) throws -> [GGUFTensorInfo] {
        var out: [GGUFTensorInfo] = []
        out.reserveCapacity(raw.count)
        for r in raw {
            guard r.offset % UInt64(alignment) == 0 else {
                throw CheckpointError.badOffsets(file: file, tensor: r.name, why: "data offset \(r.offset) is not a multiple of the alignment \(alignment)")
            }
            guard let rel = Int(exactly: r.offset), let start = Checked.add(dataOffset, rel),
                  let end = Checked.add(start, r.byteCount), end <= fileSize else {
                throw CheckpointError.badOffsets(file: file, tensor: r.name,
                                                 why: "data (\(r.byteCount) bytes at data offset \(r.offset), data section at \(dataOffset)) extends past the end of the file (\(fileSize) bytes)")
            }
            out.append(GGUFTensorInfo(name: r.name, ne: r.ne, type: r.type, offset: rel, fileOffset: start,
                                      byteCount: r.byteCount, elementCount: r.elementCount))
        }
        let sorted = out.sorted { ($0.fileOffset, $0.byteCount) < ($1.fileOffset, $1.byteCount) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
            throw CheckpointError.badOffsets(file: file, tensor: b.name,
                                             why: "data at data offset \(b.offset) overlaps tensor '\(a.name)' (data offset \(a.offset), \(a.byteCount) bytes)")
        }
        return out
    }

    /// The sequential reader of the header, metadata and tensor table.
    private struct Parser {
        var cursor: ByteCursor
        let path: String

        struct RawTensor {
            let name: String, ne: [Int], type: GGMLType, offset: UInt64, byteCount: Int, elementCount: Int
        }

        func bad(_ why: String) -> CheckpointError { .badHeader(file: path, why: why) }

        mutating func header() throws -> (version: UInt32, nTensors: Int, nKV: Int) {
            let magicBytes = try cursor.slice(4, "magic")
            guard Array(magicBytes) == Array("GGUF".utf8) else {
                if Array(magicBytes) == Array("FUGG".utf8) {
                    throw bad("magic reads 'FUGG': a big-endian GGUF file; only little-endian files are supported")
                }
                let hex = magicBytes.map { String(format: "%02x", $0) }.joined()
                throw bad("bad magic 0x\(hex) (expected 'GGUF' = 0x47475546); not a GGUF file")
            }
            let version = try cursor.u32le("version")
            if version & 0xFFFF == 0, version != 0 {
                throw bad("version field reads 0x\(String(version, radix: 16)) (\(version.byteSwapped) byte-swapped): a big-endian GGUF file; only little-endian files are supported")
            }
            guard version == 2 || version == 3 else {
                throw bad("GGUF version \(version) is not supported (expected 2 or 3)")
            }
            let nT = try cursor.u64le("n_tensors")
            let nKV = try cursor.u64le("n_kv")
            // The smallest possible kv is 13 bytes (empty key, type, 1-byte value); the smallest
            // tensor entry 24 bytes (empty name, n_dims, type, offset). Counts beyond that are lies.
            let room = UInt64(cursor.remaining)
            guard nKV <= room / 13 else {
                throw bad("n_kv is \(nKV), but the \(room) bytes after the header hold at most \(room / 13) entries")
            }
            guard nT <= room / 24 else {
                throw bad("n_tensors is \(nT), but the \(room) bytes after the header hold at most \(room / 24) entries")
            }
            return (version, Int(nT), Int(nKV))
        }

        mutating func string(_ what: @autoclosure () -> String, strict: Bool) throws -> String {
            let at = cursor.fileOffset
            let n = try cursor.u64le("length of \(what())")
            guard n <= UInt64(cursor.remaining) else {
                throw bad("\(what()) at offset \(at) has length \(n), but only \(cursor.remaining) bytes remain")
            }
            let bytes = try cursor.slice(Int(n), what())
            if !strict { return String(decoding: bytes, as: UTF8.self) }
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw bad("\(what()) at offset \(at) is not valid UTF-8")
            }
            return s
        }

        mutating func metadata(count: Int) throws -> ([String], [String: GGUFValue]) {
            var keys: [String] = []
            var values: [String: GGUFValue] = [:]
            keys.reserveCapacity(count)
            for i in 0 ..< count {
                let key = try string("key of metadata entry \(i)", strict: true)
                let type = try cursor.u32le("value type of '\(key)'")
                let v = try value(type: type, key: key, depth: 0)
                guard values.updateValue(v, forKey: key) == nil else {
                    let first = keys.firstIndex(of: key) ?? 0
                    throw bad("duplicate metadata key '\(key)' (entries \(first) and \(i))")
                }
                keys.append(key)
            }
            return (keys, values)
        }

        /// Smallest encoded size of one value of type `t` (used to refuse absurd array counts).
        static func minSize(_ t: UInt32) -> UInt64? {
            switch t {
            case 0, 1, 7: return 1
            case 2, 3: return 2
            case 4, 5, 6: return 4
            case 10, 11, 12, 8: return 8
            case 9: return 12
            default: return nil
            }
        }

        mutating func value(type: UInt32, key: String, depth: Int) throws -> GGUFValue {
            switch type {
            case 0: return .uint8(try cursor.u8(key))
            case 1: return .int8(try cursor.i8(key))
            case 2: return .uint16(try cursor.u16le(key))
            case 3: return .int16(try cursor.i16le(key))
            case 4: return .uint32(try cursor.u32le(key))
            case 5: return .int32(try cursor.i32le(key))
            case 6: return .float32(try cursor.f32le(key))
            case 7:
                let b = try cursor.u8(key)
                guard b <= 1 else { throw bad("bool '\(key)' has byte value \(b) (expected 0 or 1)") }
                return .bool(b == 1)
            case 8: return .string(try string("'\(key)'", strict: false))
            case 9:
                guard depth < GGUFFile.maxArrayDepth else {
                    throw bad("'\(key)': arrays nested deeper than \(GGUFFile.maxArrayDepth)")
                }
                let et = try cursor.u32le("array type of '\(key)'")
                guard let size = Self.minSize(et) else {
                    throw bad("'\(key)': array element type \(et) is not a GGUF value type (0...12)")
                }
                let at = cursor.fileOffset
                let n = try cursor.u64le("array length of '\(key)'")
                guard n <= UInt64(cursor.remaining) / size else {
                    throw bad("'\(key)': array at offset \(at) claims \(n) elements of \(GGUFFile.valueTypeName(et)), but only \(cursor.remaining) bytes remain")
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(n))
                for _ in 0 ..< Int(n) { items.append(try value(type: et, key: key, depth: depth + 1)) }
                return .array(elementType: et, items)
            case 10: return .uint64(try cursor.u64le(key))
            case 11: return .int64(try cursor.i64le(key))
            case 12: return .float64(try cursor.f64le(key))
            default:
                throw bad("metadata '\(key)' has value type \(type), which is not a GGUF value type (0...12)")
            }
        }

        mutating func tensorTable(count: Int) throws -> [RawTensor] {
            var out: [RawTensor] = []
            out.reserveCapacity(count)
            var seen = Set<String>()
            for i in 0 ..< count {
                let name = try string("name of tensor \(i)", strict: true)
                guard seen.insert(name).inserted else { throw CheckpointError.duplicateTensor(file: path, tensor: name) }
                let nDims = try cursor.u32le("n_dims of '\(name)'")
                guard nDims <= UInt32(GGUFFile.maxDims) else {
                    throw bad("tensor '\(name)' has \(nDims) dims; at most \(GGUFFile.maxDims) are supported")
                }
                var ne: [Int] = []
                for d in 0 ..< Int(nDims) {
                    let v = try cursor.i64le("ne[\(d)] of '\(name)'")
                    guard v >= 0 else { throw bad("tensor '\(name)' has ne[\(d)] = \(v) (negative)") }
                    ne.append(Int(v))
                }
                guard let elements = Checked.product(ne), elements <= Int(Int64.max) else {
                    throw bad("tensor '\(name)' with ne \(ne): element count overflows 64 bits")
                }
                let typeID = try cursor.u32le("type of '\(name)'")
                guard let type = GGMLType(rawValue: typeID) else {
                    throw CheckpointError.unknownDType(file: path, tensor: name, dtype: "ggml type id \(typeID)")
                }
                let row = ne.first ?? 1
                guard row % type.blockSize == 0 else {
                    throw bad("tensor '\(name)': row length ne[0] = \(row) is not a multiple of \(type.name)'s block size \(type.blockSize)")
                }
                guard let bytes = Checked.mul(elements / type.blockSize, type.typeSize) else {
                    throw bad("tensor '\(name)' with ne \(ne): byte size overflows")
                }
                let offset = try cursor.u64le("offset of '\(name)'")
                out.append(RawTensor(name: name, ne: ne, type: type, offset: offset, byteCount: bytes, elementCount: elements))
            }
            return out
        }
    }
}
