
/// The fixed 64 bytes at the start of every `.edge` file (docs/edge-format.md, "Preamble").
///
/// ```
/// offset size field
///      0    8 magic          "EDGE" 0D 0A 1A 0A
///      8    4 version        u32 LE, 1; 2 when a tensor is q3; 3 when a tensor is q4k; 4 when one is q3s
///     12    4 flags          u32 LE, 0 (v1 to v4 define no flags)
///     16    8 header_offset  u64 LE, absolute offset of the header JSON, a multiple of 64
///     24    8 header_length  u64 LE, its length; header_offset + header_length == file size
///     32    4 header_crc32   u32 LE, CRC32 of the header bytes
///     36   28 reserved       zero
/// ```
public struct EdgePreamble: Equatable, Sendable {
    /// The 8 magic bytes: "EDGE", CR LF (catches CRLF translation), SUB (stops DOS `type`), LF (catches LF translation).
    public static let magic: [UInt8] = [0x45, 0x44, 0x47, 0x45, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Size of the preamble in bytes.
    public static let size = 64
    /// Every item (tensor, blob) and the header start at a multiple of this absolute file offset.
    public static let alignment = 64
    /// The newest format version this code reads and writes (v2 = v1 + the q3 encoding; v3 = v2 + the
    /// q4k encoding; v4 = v3 + the q3s encoding).
    public static let currentVersion: UInt32 = 4

    /// The oldest format version that can express a file holding tensors in `encodings`, the one
    /// writers write: 1, or the newest `Encoding.formatVersion` among them (2 when one is q3, 3 when one is
    /// q4k, 4 when one is q3s).
    public static func version(for encodings: some Sequence<Encoding>) -> UInt32 {
        encodings.reduce(1) { max($0, $1.formatVersion) }
    }
    /// The largest header a reader accepts (64 MiB), so a lying length cannot make it allocate without bound.
    public static let maxHeaderLength = 64 << 20

    public var version: UInt32
    public var flags: UInt32
    public var headerOffset: UInt64
    public var headerLength: UInt64
    public var headerCRC32: UInt32

    public init(version: UInt32, flags: UInt32 = 0, headerOffset: UInt64, headerLength: UInt64, headerCRC32: UInt32) {
        self.version = version
        self.flags = flags
        self.headerOffset = headerOffset
        self.headerLength = headerLength
        self.headerCRC32 = headerCRC32
    }

    /// The 64 preamble bytes, little-endian, reserved bytes zero.
    public func encoded() -> [UInt8] {
        var out = EdgePreamble.magic
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(version)
        put(flags)
        put(headerOffset)
        put(headerLength)
        put(headerCRC32)
        out.append(contentsOf: [UInt8](repeating: 0, count: EdgePreamble.size - out.count))
        return out
    }
}

/// How an item's bytes are stored in the file.
public enum PayloadCompression: String, Codable, Sendable {
    /// The bytes are the payload itself.
    case none
    /// The bytes are a zlib stream (RFC 1950/1951) that inflates to exactly `raw_length` bytes.
    case deflate
}

/// One row of the tensor table.
public struct TensorEntry: Equatable, Sendable {
    /// Canonical tensor name (see `TensorName`).
    public var name: String
    /// Dimensions, outermost first (linear weights are [out, in], row-major).
    public var shape: [Int]
    /// How the payload encodes the values.
    public var encoding: Encoding
    /// Encoding parameters; empty (both nil, and omitted from JSON) for f32 and f16.
    public var params: EncodingParams
    /// Absolute file offset of the stored bytes (a multiple of 64).
    public var offset: Int
    /// Number of stored bytes.
    public var length: Int
    /// CRC32 of the stored bytes (after compression).
    public var crc32: UInt32
    /// How the stored bytes relate to the payload.
    public var compression: PayloadCompression
    /// Payload size before compression; present exactly when `compression` is `.deflate`.
    public var rawLength: Int?
    /// Number of non-zero values, when the writer recorded it (sparsity statistics).
    public var nnz: Int?

    public init(name: String, shape: [Int], encoding: Encoding, params: EncodingParams, offset: Int, length: Int,
                crc32: UInt32, compression: PayloadCompression, rawLength: Int? = nil, nnz: Int? = nil) {
        self.name = name
        self.shape = shape
        self.encoding = encoding
        self.params = params
        self.offset = offset
        self.length = length
        self.crc32 = crc32
        self.compression = compression
        self.rawLength = rawLength
        self.nnz = nnz
    }

    /// Number of values (product of `shape`). Valid for entries of an opened `EdgeFile`, whose shapes are checked.
    public var count: Int { shape.reduce(1, *) }
    /// Size of the payload once decompressed.
    public var payloadLength: Int { rawLength ?? length }
}

/// A named byte string stored in the file (e.g. "tokenizer.json").
public struct BlobEntry: Codable, Equatable, Sendable {
    /// Unique name among the blobs.
    public var name: String
    /// Absolute file offset of the stored bytes (a multiple of 64).
    public var offset: Int
    /// Number of stored bytes.
    public var length: Int
    /// CRC32 of the stored bytes (after compression).
    public var crc32: UInt32
    /// How the stored bytes relate to the blob.
    public var compression: PayloadCompression
    /// Blob size before compression; present exactly when `compression` is `.deflate`.
    public var rawLength: Int?

    public init(name: String, offset: Int, length: Int, crc32: UInt32, compression: PayloadCompression, rawLength: Int? = nil) {
        self.name = name
        self.offset = offset
        self.length = length
        self.crc32 = crc32
        self.compression = compression
        self.rawLength = rawLength
    }

    enum CodingKeys: String, CodingKey {
        case name, offset, length, crc32, compression, rawLength = "raw_length"
    }
}

/// Where a file came from and what was done to it.
public struct Provenance: Equatable, Sendable {
    /// The toolchain string this code writes.
    public static let currentToolchain = "edgecompress 0.1.0"

    /// SHA-256 (64 lowercase hex digits) of the source weight files, in the importer's order.
    public var sourceSHA256: String
    /// "safetensors", "gguf" or "edge".
    public var sourceFormat: String
    /// File or folder name of the source (no directories), if recorded.
    public var sourcePath: String?
    /// The full recipe, as a JSON object.
    public var recipe: JSONValue
    /// The tool and version that wrote the file.
    public var toolchain: String
    /// One JSON value per pass, in order, recording what the pass did.
    public var passes: [JSONValue]
    /// Measurements taken at compression time, as a JSON object.
    public var metrics: JSONValue

    public init(sourceSHA256: String, sourceFormat: String, sourcePath: String? = nil, recipe: JSONValue = [:],
                toolchain: String = Provenance.currentToolchain, passes: [JSONValue] = [], metrics: JSONValue = [:]) {
        self.sourceSHA256 = sourceSHA256
        self.sourceFormat = sourceFormat
        self.sourcePath = sourcePath
        self.recipe = recipe
        self.toolchain = toolchain
        self.passes = passes
        self.metrics = metrics
    }

    /// The first rule the provenance breaks, as (field, why), or nil if it is valid.
    public func problem() -> (field: String, why: String)? {
        let hex = sourceSHA256.utf8.allSatisfy { (0x30 ... 0x39).contains($0) || (0x61 ... 0x66).contains($0) }
        if sourceSHA256.utf8.count != 64 || !hex { return ("source_sha256", "is \"\(sourceSHA256)\"; expected 64 lowercase hex digits") }
        if sourceFormat.isEmpty { return ("source_format", "is empty") }
        if let p = sourcePath, p.isEmpty || p.contains("/") { return ("source_path", "is \"\(p)\"; expected a file name without folders") }
        if recipe.objectValue == nil { return ("recipe", "is \(recipe.kindName); expected an object") }
        if toolchain.isEmpty { return ("toolchain", "is empty") }
        if metrics.objectValue == nil { return ("metrics", "is \(metrics.kindName); expected an object") }
        return nil
    }
}

/// The JSON header at the end of an `.edge` file.
public struct EdgeHeader: Equatable, Sendable {
    /// Always "edge".
    public var format: String
    /// Equal to the preamble's version (`EdgePreamble.version(for:)` of the tensors' encodings when written).
    public var version: Int
    public var config: ModelConfig
    /// In file order as written (the reader does not require any order).
    public var tensors: [TensorEntry]
    public var blobs: [BlobEntry]
    public var provenance: Provenance

    /// - Parameter version: nil gives the oldest version that can express `tensors` (`EdgePreamble.version(for:)`).
    public init(config: ModelConfig, tensors: [TensorEntry], blobs: [BlobEntry], provenance: Provenance, version: Int? = nil) {
        format = "edge"
        self.version = version ?? Int(EdgePreamble.version(for: tensors.map(\.encoding)))
        self.config = config
        self.tensors = tensors
        self.blobs = blobs
        self.provenance = provenance
    }

    /// The header bytes as written: compact UTF-8 JSON with sorted keys (`JSONValue.jsonBytes()`).
    /// - Throws: `EncodingError` if a provenance value cannot be written (a non-finite number).
    public func encoded() throws -> [UInt8] {
        try JSONValue(encoding: self).jsonBytes()
    }
}

// MARK: Codable (strict: unknown keys are refused so a reader never ignores what it does not understand)

/// A coding key for any string, to list an object's keys.
struct _AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// Throws a `DecodingError` naming the first key of the object in `decoder` that `known` refuses.
func _rejectUnknownKeys(_ decoder: Decoder, known: (String) -> Bool) throws {
    let c = try decoder.container(keyedBy: _AnyKey.self)
    for k in c.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) where !known(k.stringValue) {
        throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [k], debugDescription: "unknown field; the format does not define it"))
    }
}

/// Thrown while decoding a tensor entry whose encoding name this version does not know.
struct _UnknownEncoding: Error {
    let tensor: String
    let encoding: String
}

extension TensorEntry: Codable {
    enum CodingKeys: String, CodingKey {
        case name, shape, encoding, params, offset, length, crc32, compression, rawLength = "raw_length", nnz
    }

    public init(from decoder: Decoder) throws {
        try _rejectUnknownKeys(decoder) { CodingKeys(stringValue: $0) != nil }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        shape = try c.decode([Int].self, forKey: .shape)
        let enc = try c.decode(String.self, forKey: .encoding)
        guard let e = Encoding(rawValue: enc) else { throw _UnknownEncoding(tensor: name, encoding: enc) }
        encoding = e
        if c.contains(.params), try !c.decodeNil(forKey: .params) {
            try _rejectUnknownKeys(c.superDecoder(forKey: .params)) { EncodingParams.CodingKeys(stringValue: $0) != nil }
            params = try c.decode(EncodingParams.self, forKey: .params)
        } else {
            params = EncodingParams()
        }
        offset = try c.decode(Int.self, forKey: .offset)
        length = try c.decode(Int.self, forKey: .length)
        crc32 = try c.decode(UInt32.self, forKey: .crc32)
        compression = try c.decode(PayloadCompression.self, forKey: .compression)
        rawLength = try c.decodeIfPresent(Int.self, forKey: .rawLength)
        nnz = try c.decodeIfPresent(Int.self, forKey: .nnz)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(shape, forKey: .shape)
        try c.encode(encoding.rawValue, forKey: .encoding)
        if params != EncodingParams() { try c.encode(params, forKey: .params) }
        try c.encode(offset, forKey: .offset)
        try c.encode(length, forKey: .length)
        try c.encode(crc32, forKey: .crc32)
        try c.encode(compression, forKey: .compression)
        try c.encodeIfPresent(rawLength, forKey: .rawLength)
        try c.encodeIfPresent(nnz, forKey: .nnz)
    }
}

extension BlobEntry {
    public init(from decoder: Decoder) throws {
        try _rejectUnknownKeys(decoder) { CodingKeys(stringValue: $0) != nil }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        offset = try c.decode(Int.self, forKey: .offset)
        length = try c.decode(Int.self, forKey: .length)
        crc32 = try c.decode(UInt32.self, forKey: .crc32)
        compression = try c.decode(PayloadCompression.self, forKey: .compression)
        rawLength = try c.decodeIfPresent(Int.self, forKey: .rawLength)
    }
}

extension Provenance: Codable {
    enum CodingKeys: String, CodingKey {
        case sourceSHA256 = "source_sha256", sourceFormat = "source_format", sourcePath = "source_path"
        case recipe, toolchain, passes, metrics
    }

    public init(from decoder: Decoder) throws {
        try _rejectUnknownKeys(decoder) { CodingKeys(stringValue: $0) != nil }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sourceSHA256 = try c.decode(String.self, forKey: .sourceSHA256)
        sourceFormat = try c.decode(String.self, forKey: .sourceFormat)
        sourcePath = try c.decodeIfPresent(String.self, forKey: .sourcePath)
        recipe = try c.decode(JSONValue.self, forKey: .recipe)
        toolchain = try c.decode(String.self, forKey: .toolchain)
        passes = try c.decode([JSONValue].self, forKey: .passes)
        metrics = try c.decode(JSONValue.self, forKey: .metrics)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sourceSHA256, forKey: .sourceSHA256)
        try c.encode(sourceFormat, forKey: .sourceFormat)
        try c.encodeIfPresent(sourcePath, forKey: .sourcePath)
        try c.encode(recipe, forKey: .recipe)
        try c.encode(toolchain, forKey: .toolchain)
        try c.encode(passes, forKey: .passes)
        try c.encode(metrics, forKey: .metrics)
    }
}

extension EdgeHeader: Codable {
    enum CodingKeys: String, CodingKey {
        case format, version, config, tensors, blobs, provenance
    }

    public init(from decoder: Decoder) throws {
        try _rejectUnknownKeys(decoder) { CodingKeys(stringValue: $0) != nil }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        version = try c.decode(Int.self, forKey: .version)
        config = try c.decode(ModelConfig.self, forKey: .config)
        let configDecoder = try c.superDecoder(forKey: .config)
        try _rejectUnknownKeys(configDecoder) { ModelConfig.CodingKeys(stringValue: $0) != nil }
        let cc = try configDecoder.container(keyedBy: ModelConfig.CodingKeys.self)
        if cc.contains(.layers), try !cc.decodeNil(forKey: .layers) {
            var layers = try cc.nestedUnkeyedContainer(forKey: .layers)
            while !layers.isAtEnd {
                try _rejectUnknownKeys(layers.superDecoder()) { ModelConfig.LayerSizes.CodingKeys(stringValue: $0) != nil }
            }
        }
        tensors = try c.decode([TensorEntry].self, forKey: .tensors)
        blobs = try c.decode([BlobEntry].self, forKey: .blobs)
        provenance = try c.decode(Provenance.self, forKey: .provenance)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(version, forKey: .version)
        try c.encode(config, forKey: .config)
        try c.encode(tensors, forKey: .tensors)
        try c.encode(blobs, forKey: .blobs)
        try c.encode(provenance, forKey: .provenance)
    }
}

// MARK: tensor rules shared by the reader and the writer

extension TensorEntry {
    /// Most dimensions a tensor may have.
    public static let maxRank = 8
    /// Largest single dimension (2^40).
    public static let maxDimension = 1 << 40
    /// Largest element count (2^48); keeps every size computation far from overflow.
    public static let maxElements = 1 << 48
    /// Largest q4 / q3 / q4k / q3s group size (2^24).
    public static let maxGroupSize = 1 << 24

    /// Checks a tensor's shape, encoding and parameters against the v1 rules
    /// (docs/edge-format.md, "Validation") and returns the payload size they imply.
    /// - Parameter nnz: the entry's number of stored values; required for csr and bitmask, whose size depends on it
    ///   (informational for nm, whose size depends on the shape, n and m only).
    /// - Throws: `EdgeFormatError.unsupportedEncoding` for the reserved encodings, `.badTensor` naming the field.
    public static func payloadLength(tensor name: String, shape: [Int], encoding: Encoding, params: EncodingParams, file: String,
                                     nnz: Int? = nil) throws -> Int {
        func bad(_ field: String, _ why: String) -> EdgeFormatError { .badTensor(file: file, tensor: name, field: field, why: why) }
        guard encoding.isImplemented else { throw EdgeFormatError.unsupportedEncoding(file: file, tensor: name, encoding: encoding.rawValue) }
        guard (1 ... maxRank).contains(shape.count) else { throw bad("shape", "has \(shape.count) dimensions; expected 1...\(maxRank)") }
        for (i, d) in shape.enumerated() where !(1 ... maxDimension).contains(d) {
            throw bad("shape", "dimension \(i) is \(d); expected 1...\(maxDimension)")
        }
        guard let count = Checked.product(shape), count <= maxElements else {
            throw bad("shape", "\(shape) has more than \(maxElements) elements")
        }
        if !encoding.isSparse && encoding != .nm {
            guard params.valueEncoding == nil else { throw bad("params.value_encoding", "must be absent for \(encoding.rawValue)") }
        }
        if encoding != .csr {
            guard params.indexWidth == nil else { throw bad("params.index_width", "must be absent for \(encoding.rawValue)") }
        }
        if encoding != .nm {
            guard params.n == nil else { throw bad("params.n", "must be absent for \(encoding.rawValue)") }
            guard params.m == nil else { throw bad("params.m", "must be absent for \(encoding.rawValue)") }
        }
        if encoding != .q4k && encoding != .q3s {
            guard params.subBits == nil else { throw bad("params.sub_bits", "must be absent for \(encoding.rawValue)") }
        }
        switch encoding {
        case .f32, .f16:
            guard params == EncodingParams() else { throw bad("params", "must be absent for \(encoding.rawValue)") }
        case .q8:
            guard shape.count == 2 else { throw bad("shape", "has \(shape.count) dimensions; q8 needs [rows, cols]") }
            guard params.symmetric != nil else { throw bad("params.symmetric", "is missing; q8 needs it") }
            guard params.groupSize == nil else { throw bad("params.group_size", "must be absent for q8") }
        case .q4:
            guard shape.count == 2 else { throw bad("shape", "has \(shape.count) dimensions; q4 needs [rows, cols]") }
            guard params.symmetric != nil else { throw bad("params.symmetric", "is missing; q4 needs it") }
            guard let g = params.groupSize else { throw bad("params.group_size", "is missing; q4 needs it") }
            guard g >= 2, g <= maxGroupSize, g % 2 == 0 else {
                throw bad("params.group_size", "is \(g); expected an even number in 2...\(maxGroupSize)")
            }
        case .q3:
            guard shape.count == 2 else { throw bad("shape", "has \(shape.count) dimensions; q3 needs [rows, cols]") }
            guard params.symmetric != nil else { throw bad("params.symmetric", "is missing; q3 needs it") }
            guard let g = params.groupSize else { throw bad("params.group_size", "is missing; q3 needs it") }
            guard g >= 8, g <= maxGroupSize, g % 8 == 0 else {
                throw bad("params.group_size", "is \(g); expected a multiple of 8 in 8...\(maxGroupSize)")
            }
        case .q4k, .q3s:
            // q4k's groups are even (each starts on a byte's low nibble), q3s's a multiple of 8 (a byte boundary).
            let e = encoding.rawValue, step = encoding == .q3s ? 8 : 2
            guard shape.count == 2 else { throw bad("shape", "has \(shape.count) dimensions; \(e) needs [rows, cols]") }
            guard params.symmetric == nil else { throw bad("params.symmetric", "must be absent for \(e)") }
            guard let g = params.groupSize else { throw bad("params.group_size", "is missing; \(e) needs it") }
            guard g >= step, g <= maxGroupSize, g % step == 0 else {
                throw bad("params.group_size", "is \(g); expected " + (step == 8 ? "a multiple of 8" : "an even number") + " in \(step)...\(maxGroupSize)")
            }
            guard let b = params.subBits else { throw bad("params.sub_bits", "is missing; \(e) needs it (6 or 8)") }
            guard (step == 8 ? Q3SLayout.allowedSubBits : Q4KLayout.allowedSubBits).contains(b) else {
                throw bad("params.sub_bits", "is \(b); expected 6 or 8")
            }
        case .csr, .bitmask:
            let e = encoding.rawValue
            guard shape.count == 2 else { throw bad("shape", "has \(shape.count) dimensions; \(e) needs [rows, cols]") }
            guard let nnz else { throw bad("nnz", "is missing; \(e) needs it (its size depends on it)") }
            guard (0 ... min(count, SparseLayout.maxNNZ)).contains(nnz) else {
                throw bad("nnz", "is \(nnz); expected 0...\(min(count, SparseLayout.maxNNZ)) (the tensor has \(count) values, row pointers are u32)")
            }
            guard let ve = params.valueEncoding else { throw bad("params.value_encoding", "is missing; \(e) needs it (f32, f16 or q8)") }
            guard [.f32, .f16, .q8].contains(ve) else { throw bad("params.value_encoding", "is \(ve.rawValue); expected f32, f16 or q8") }
            guard params.groupSize == nil else { throw bad("params.group_size", "must be absent for \(e)") }
            if ve == .q8 {
                guard params.symmetric != nil else { throw bad("params.symmetric", "is missing; \(e) with q8 values needs it") }
            } else {
                guard params.symmetric == nil else { throw bad("params.symmetric", "must be absent for \(ve.rawValue) values") }
            }
            if encoding == .csr {
                guard let w = params.indexWidth else { throw bad("params.index_width", "is missing; csr needs it (8 or 16)") }
                guard w == 8 || w == 16 else { throw bad("params.index_width", "is \(w); expected 8 or 16") }
                guard w == 8 || shape[1] <= SparseLayout.maxColumns16 else {
                    throw bad("params.index_width", "is 16, but the tensor has \(shape[1]) columns (at most \(SparseLayout.maxColumns16))")
                }
            } else {
                guard params.indexWidth == nil else { throw bad("params.index_width", "must be absent for bitmask") }
            }
        case .nm:
            guard shape.count == 2 else { throw bad("shape", "has \(shape.count) dimensions; nm needs [rows, cols]") }
            guard let m = params.m else { throw bad("params.m", "is missing; nm needs the group length") }
            guard (2 ... NMLayout.maxM).contains(m) else { throw bad("params.m", "is \(m); expected 2...\(NMLayout.maxM)") }
            guard let n = params.n else { throw bad("params.n", "is missing; nm needs the values kept per group") }
            guard (1 ..< m).contains(n) else { throw bad("params.n", "is \(n); expected 1...\(m - 1) (below m = \(m))") }
            guard let ve = params.valueEncoding else { throw bad("params.value_encoding", "is missing; nm needs it (f32, f16 or q8)") }
            guard [.f32, .f16, .q8].contains(ve) else { throw bad("params.value_encoding", "is \(ve.rawValue); expected f32, f16 or q8") }
            guard params.groupSize == nil else { throw bad("params.group_size", "must be absent for nm") }
            if ve == .q8 {
                guard params.symmetric != nil else { throw bad("params.symmetric", "is missing; nm with q8 values needs it") }
            } else {
                guard params.symmetric == nil else { throw bad("params.symmetric", "must be absent for \(ve.rawValue) values") }
            }
        }
        guard let n = expectedPayloadBytes(encoding: encoding, shape: shape, params: params, nnz: nnz) else {
            throw bad("params", "are not valid for \(encoding.rawValue) with shape \(shape)")
        }
        return n
    }
}
