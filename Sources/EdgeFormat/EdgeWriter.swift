
/// Streams an `.edge` file: a placeholder preamble, then each tensor or blob as it is added (at
/// the next 64-byte boundary), then the header JSON, then the real preamble patched in. Nothing
/// appears at `path` until `finish()` succeeds: the bytes go to a temporary file that is removed
/// if the writer is dropped unfinished. The same calls with the same inputs give identical bytes
/// (no timestamps; deflate at the fixed `Deflate.level`). The file says the oldest format version
/// that can express it (`EdgePreamble.version(for:)`): 4 when a tensor is q3s, else 3 when a tensor is
/// q4k, else 2 when a tensor is q3, else 1.
///
/// ```swift
/// let w = try EdgeWriter(path: "out.edge", protecting: [input], config: cfg, provenance: prov, deflate: false)
/// for t in tensors { try w.add(t) }
/// try w.addBlob(name: "tokenizer.json", bytes: tokenizer)
/// try w.finish()
/// ```
public final class EdgeWriter {
    /// The destination path.
    public let path: String
    private let output: AtomicOutput
    private let config: ModelConfig
    /// What goes into the header's provenance; may be updated (e.g. with metrics) until `finish()`.
    public var provenance: Provenance
    private let deflate: Bool
    private var tensors: [TensorEntry] = []
    private var blobs: [BlobEntry] = []
    private var tensorNames: Set<String> = []
    private var blobNames: Set<String> = []
    private var state = State.open

    private enum State { case open, failed, finished }

    /// Starts a file at `path` (created in the same folder under a temporary name).
    /// - Parameters:
    ///   - inputs: paths that must never be overwritten (the source files).
    ///   - deflate: compress each item with zlib when that makes it smaller.
    /// - Throws: `EdgeFormatError.io` (refused or uncreatable path), `.badConfig`, `.badProvenance`.
    public init(path: String, protecting inputs: [String] = [], config: ModelConfig, provenance: Provenance, deflate: Bool = false) throws {
        self.path = path
        do {
            try config.validate(source: path)
        } catch let FormatError.invalid(_, what) {
            throw EdgeFormatError.badConfig(file: path, why: what)
        }
        self.config = config
        self.provenance = provenance
        self.deflate = deflate
        _ = try EdgeWriter.encodeHeader(path: path, config: config, tensors: [], blobs: [], provenance: provenance, version: 1)  // refuse a bad provenance before writing
        do {
            output = try AtomicOutput(destination: path, protecting: inputs)
            try output.write([UInt8](repeating: 0, count: EdgePreamble.size))
        } catch let FormatError.io(_, why) {
            throw EdgeFormatError.io(file: path, why: why)
        }
    }

    /// Number of tensors added so far.
    public var tensorCount: Int { tensors.count }

    /// Bytes written so far (preamble placeholder and items).
    public var bytesWritten: Int { output.bytesWritten }

    /// Writes a tensor's payload now (its memory can be released as soon as this returns).
    /// - Parameter nnz: the number of non-zero values, to record in the table (optional; for csr and
    ///   bitmask it defaults to `t.nnz` and must equal it).
    /// - Throws: `EdgeFormatError.writerMisuse` for a duplicate or empty name, a payload whose size
    ///   the shape and encoding do not imply, or use after `finish()`; `.unsupportedEncoding`,
    ///   `.badTensor` for shapes and params the format refuses; `.io` if writing fails.
    public func add(_ t: EncodedTensor, nnz: Int? = nil) throws {
        try checkOpen()
        guard !t.name.isEmpty else { throw EdgeFormatError.writerMisuse(file: path, why: "a tensor has an empty name") }
        guard !tensorNames.contains(t.name) else { throw EdgeFormatError.duplicateName(file: path, item: .tensor(t.name)) }
        if let nnz, let own = t.nnz, t.encoding.isSparse, nnz != own {
            throw EdgeFormatError.writerMisuse(file: path, why: "tensor '\(t.name)': nnz \(nnz) differs from the \(own) values its \(t.encoding.rawValue) payload stores")
        }
        let nnz = nnz ?? t.nnz
        let expected = try TensorEntry.payloadLength(tensor: t.name, shape: t.shape, encoding: t.encoding, params: t.params, file: path, nnz: nnz)
        guard t.payload.count == expected else {
            throw EdgeFormatError.badLength(file: path, item: .tensor(t.name), field: "payload", expected: expected, actual: t.payload.count)
        }
        if let nnz, !(0 ... t.count).contains(nnz) {
            throw EdgeFormatError.badTensor(file: path, tensor: t.name, field: "nnz", why: "is \(nnz); the tensor has \(t.count) values")
        }
        if t.encoding.hasStructure, let why = t.payload.withUnsafeBytes({ payloadStructureProblem($0, encoding: t.encoding, shape: t.shape, params: t.params, nnz: nnz) }) {
            throw EdgeFormatError.badTensor(file: path, tensor: t.name, field: "payload", why: why)
        }
        let (offset, stored, crc, compression) = try t.payload.withUnsafeBytes { try store($0, item: .tensor(t.name)) }
        tensorNames.insert(t.name)
        tensors.append(TensorEntry(name: t.name, shape: t.shape, encoding: t.encoding, params: t.params, offset: offset,
                                   length: stored, crc32: crc, compression: compression,
                                   rawLength: compression == .deflate ? expected : nil, nnz: nnz))
    }

    /// Writes a named blob (e.g. "tokenizer.json") now.
    /// - Throws: `EdgeFormatError.writerMisuse` for an empty or duplicate name, empty bytes, or use after `finish()`; `.io`.
    public func addBlob(name: String, bytes: [UInt8]) throws {
        try checkOpen()
        guard !name.isEmpty else { throw EdgeFormatError.writerMisuse(file: path, why: "a blob has an empty name") }
        guard !blobNames.contains(name) else { throw EdgeFormatError.duplicateName(file: path, item: .blob(name)) }
        guard !bytes.isEmpty else { throw EdgeFormatError.writerMisuse(file: path, why: "blob '\(name)' is empty") }
        let (offset, stored, crc, compression) = try bytes.withUnsafeBytes { try store($0, item: .blob(name)) }
        blobNames.insert(name)
        blobs.append(BlobEntry(name: name, offset: offset, length: stored, crc32: crc, compression: compression,
                               rawLength: compression == .deflate ? bytes.count : nil))
    }

    /// Writes the header, patches the preamble and moves the file into place. Preamble and header
    /// say version 4 when a tensor is q3s, else 3 when a tensor is q4k, else 2 when a tensor is q3, else 1.
    /// - Throws: `EdgeFormatError.badProvenance` (a non-finite number in it), `.io`, `.writerMisuse`.
    public func finish() throws {
        try checkOpen()
        let version = EdgePreamble.version(for: tensors.map(\.encoding))
        let header = try EdgeWriter.encodeHeader(path: path, config: config, tensors: tensors, blobs: blobs, provenance: provenance,
                                                 version: version)
        state = .failed
        guard header.count <= EdgePreamble.maxHeaderLength else {
            throw EdgeFormatError.writerMisuse(file: path, why: "the header is \(header.count) bytes; readers accept at most \(EdgePreamble.maxHeaderLength)")
        }
        do {
            try output.pad(to: EdgePreamble.alignment)
            let headerOffset = output.bytesWritten
            try output.write(header)
            let preamble = EdgePreamble(version: version, headerOffset: UInt64(headerOffset), headerLength: UInt64(header.count),
                                        headerCRC32: CRC32.checksum(header))
            try output.patch(at: 0, preamble.encoded())
            try output.commit()
        } catch let FormatError.io(_, why) {
            throw EdgeFormatError.io(file: path, why: why)
        }
        state = .finished
    }

    /// The header bytes for `tensors` and `blobs`, saying format `version`.
    /// - Throws: `EdgeFormatError.badProvenance` when the provenance breaks a rule or holds a non-finite number.
    private static func encodeHeader(path: String, config: ModelConfig, tensors: [TensorEntry], blobs: [BlobEntry],
                                     provenance: Provenance, version: UInt32) throws -> [UInt8] {
        if let p = provenance.problem() { throw EdgeFormatError.badProvenance(file: path, field: p.field, why: p.why) }
        do {
            return try EdgeHeader(config: config, tensors: tensors, blobs: blobs, provenance: provenance, version: Int(version)).encoded()
        } catch let EncodingError.invalidValue(_, c) {
            let field = c.codingPath.dropFirst().map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().drop { $0 == "." }
            throw EdgeFormatError.badProvenance(file: path, field: String(field), why: c.debugDescription)
        }
    }

    private func checkOpen() throws {
        switch state {
        case .open: return
        case .failed: throw EdgeFormatError.writerMisuse(file: path, why: "the writer failed earlier; start a new one")
        case .finished: throw EdgeFormatError.writerMisuse(file: path, why: "the file is already finished")
        }
    }

    /// Pads to the next boundary and writes `bytes` (deflated when enabled and smaller).
    /// Returns (offset, stored length, CRC32 of the stored bytes, compression).
    private func store(_ bytes: UnsafeRawBufferPointer, item: EdgeItem) throws -> (Int, Int, UInt32, PayloadCompression) {
        state = .failed  // until the write below completes
        do {
            try output.pad(to: EdgePreamble.alignment)
            let offset = output.bytesWritten
            if deflate {
                let packed = try Deflate.compress(bytes)
                if packed.count < bytes.count {
                    try output.write(packed)
                    state = .open
                    return (offset, packed.count, CRC32.checksum(packed), .deflate)
                }
            }
            try output.write(bytes)
            state = .open
            return (offset, bytes.count, CRC32.checksum(bytes), .none)
        } catch let FormatError.io(_, why) {
            throw EdgeFormatError.io(file: path, why: why)
        } catch let e as Deflate.Failure {
            throw EdgeFormatError.io(file: path, why: "\(item): \(e.why)")
        }
    }
}
