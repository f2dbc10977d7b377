
/// An opened, fully validated `.edge` file (docs/edge-format.md). The file is memory-mapped;
/// uncompressed payloads are served straight from the mapping, deflated ones are inflated on
/// first use. Opening checks the preamble (versions 1 to 4), the header checksum, every header
/// field, every tensor's shape, encoding (q3 only from version 2, q4k only from version 3, q3s only in
/// version 4) and length, the placement of every
/// item, (unless `verifyChecksums` is false) the CRC32 of every item, and the structure of every
/// uncompressed csr/bitmask payload (deflated ones are checked when inflated), and likewise every nm
/// payload's indices, every q4/q3 payload's scales, zero points and row padding bits and every q4k /
/// q3s payload's super-scales and padding bits; nothing is trusted before that.
///
/// Thread-safe: any thread may read payloads concurrently.
public final class EdgeFile: @unchecked Sendable {
    /// The path it was opened from.
    public let path: String
    /// The mapping; alive as long as this object.
    public let mappedFile: MappedFile
    /// The preamble as read.
    public let preamble: EdgePreamble
    /// The decoded header.
    public let header: EdgeHeader

    private let tensorIndex: [String: Int]
    /// Each tensor's payload layout, resolved once at validation (same order as `tensors`).
    private let layouts: [PayloadLayout]
    private let blobIndex: [String: Int]
    private let lock = MutexLock()
    private var inflated: [String: UnsafeMutableRawBufferPointer] = [:]

    /// The model config from the header.
    public var config: ModelConfig { header.config }
    /// Provenance from the header.
    public var provenance: Provenance { header.provenance }
    /// The tensor table, in header order.
    public var tensors: [TensorEntry] { header.tensors }
    /// The blob table, in header order.
    public var blobs: [BlobEntry] { header.blobs }
    /// Size of the file in bytes.
    public var fileSize: Int { mappedFile.size }
    /// How the file's bytes are held (`.map` or `.copy`).
    public var residency: Residency { mappedFile.residency }

    /// Opens and validates `path`.
    /// - Parameter verifyChecksums: check every item's CRC32 now (the default); pass false for a
    ///   fast open of a trusted file and call `verify()` later if needed.
    /// - Parameter residency: how the bytes are held: mapped (the default) or copied into huge pages
    ///   (`Residency`; the runtime's choice, `EdgeModel(path:)`).
    /// - Throws: `EdgeFormatError` naming the first problem found.
    public init(path: String, verifyChecksums: Bool = true, residency: Residency = .map) throws {
        self.path = path
        do {
            mappedFile = try MappedFile(path: path, residency: residency)
        } catch let FormatError.io(_, why) {
            throw EdgeFormatError.io(file: path, why: why)
        }
        preamble = try EdgeFile.readPreamble(mappedFile)
        header = try EdgeFile.readHeader(mappedFile, preamble)
        (tensorIndex, blobIndex, layouts) = try EdgeFile.validate(header, mappedFile, preamble)
        if verifyChecksums { try verify() }
        for t in header.tensors where t.encoding.hasStructure && t.compression == .none {
            try checkPayloadStructure(t, storedBytes(offset: t.offset, length: t.length))
        }
    }

    deinit {
        for buffer in inflated.values { buffer.deallocate() }
    }

    /// The tensor named `name`, or nil.
    public func entry(named name: String) -> TensorEntry? { tensorIndex[name].map { header.tensors[$0] } }

    /// Checks the CRC32 of every tensor and blob against the header.
    /// - Throws: `EdgeFormatError.checksum` naming the first corrupt item and both values.
    public func verify() throws {
        for t in header.tensors { try check(.tensor(t.name), offset: t.offset, length: t.length, crc: t.crc32) }
        for b in header.blobs { try check(.blob(b.name), offset: b.offset, length: b.length, crc: b.crc32) }
    }

    /// The payload layout of `entry`, resolved when the file was opened (every encoding parameter
    /// applied; see `PayloadLayout`).
    /// - Throws: `.noSuchItem` if `entry` is not from this file.
    public func layout(of entry: TensorEntry) throws -> PayloadLayout {
        layouts[try index(of: entry)]
    }

    /// The payload bytes of `entry` (decompressed if stored deflated), laid out as its encoding
    /// specifies. Valid as long as this `EdgeFile` is alive. Uncompressed payloads are the mapped
    /// file bytes; deflated ones are inflated once into a 64-byte-aligned buffer kept with this object.
    /// - Throws: `.noSuchItem` if `entry` is not from this file, `.corruptPayload` if inflating fails.
    public func payload(of entry: TensorEntry) throws -> UnsafeRawBufferPointer {
        let t = try own(entry)
        let stored = storedBytes(offset: t.offset, length: t.length)
        guard t.compression == .deflate else { return stored }
        lock.lock()
        if let cached = inflated[t.name] { lock.unlock(); return UnsafeRawBufferPointer(cached) }
        lock.unlock()
        let buffer = try inflate(stored, item: .tensor(t.name), offset: t.offset, length: t.payloadLength)
        do {
            try checkPayloadStructure(t, UnsafeRawBufferPointer(buffer))
        } catch {
            buffer.deallocate()
            throw error
        }
        lock.lock()
        defer { lock.unlock() }
        if let raced = inflated[t.name] {
            buffer.deallocate()
            return UnsafeRawBufferPointer(raced)
        }
        inflated[t.name] = buffer
        return UnsafeRawBufferPointer(buffer)
    }

    /// The values of `entry` as float32, row-major (dequantized through its `layout(of:)`). A deflated
    /// payload is inflated into a temporary buffer (not kept) unless `payload(of:)` already holds it.
    /// - Throws: as `payload(of:)`.
    public func floats(of entry: TensorEntry) throws -> [Float] {
        let i = try index(of: entry), t = header.tensors[i]
        lock.lock()
        let cached = inflated[t.name]
        lock.unlock()
        if t.compression == .none || cached != nil {
            return layouts[i].decode(try payload(of: t))
        }
        let buffer = try inflate(storedBytes(offset: t.offset, length: t.length), item: .tensor(t.name), offset: t.offset, length: t.payloadLength)
        defer { buffer.deallocate() }
        try checkPayloadStructure(t, UnsafeRawBufferPointer(buffer))
        return layouts[i].decode(UnsafeRawBufferPointer(buffer))
    }

    /// The bytes of the blob `name` (decompressed), or nil if the file has no such blob.
    /// - Throws: `.corruptPayload` if its deflate stream is bad.
    public func blob(named name: String) throws -> [UInt8]? {
        guard let i = blobIndex[name] else { return nil }
        let b = header.blobs[i]
        let stored = storedBytes(offset: b.offset, length: b.length)
        guard b.compression == .deflate else { return [UInt8](stored) }
        let buffer = try inflate(stored, item: .blob(b.name), offset: b.offset, length: b.rawLength ?? 0)
        defer { buffer.deallocate() }
        return [UInt8](UnsafeRawBufferPointer(buffer))
    }

    // MARK: internals

    private func own(_ entry: TensorEntry) throws -> TensorEntry {
        header.tensors[try index(of: entry)]
    }

    /// The position of `entry` in the tensor table.
    private func index(of entry: TensorEntry) throws -> Int {
        guard let i = tensorIndex[entry.name], header.tensors[i] == entry else {
            throw EdgeFormatError.noSuchItem(file: path, item: .tensor(entry.name))
        }
        return i
    }

    /// Stored bytes of an item; validation guaranteed the range lies inside the file.
    private func storedBytes(offset: Int, length: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mappedFile.bytes[offset ..< offset + length])
    }

    /// Checks the structure of a csr/bitmask payload (row pointers, columns, mask bits), an nm
    /// payload (in-group indices), a q4/q3 payload (scales, zero points, row padding bits) or a q4k / q3s payload
    /// (super-scales and super-mins finite and >= 0, code and sub-parameter padding bits); others pass.
    /// - Throws: `.badTensor` naming the tensor, field "payload", and the first broken rule.
    private func checkPayloadStructure(_ t: TensorEntry, _ bytes: UnsafeRawBufferPointer) throws {
        guard t.encoding.hasStructure else { return }
        if let why = payloadStructureProblem(bytes, encoding: t.encoding, shape: t.shape, params: t.params, nnz: t.nnz) {
            throw EdgeFormatError.badTensor(file: path, tensor: t.name, field: "payload", why: why)
        }
    }

    private func check(_ item: EdgeItem, offset: Int, length: Int, crc: UInt32) throws {
        let actual = CRC32.checksum(storedBytes(offset: offset, length: length))
        guard actual == crc else {
            throw EdgeFormatError.checksum(file: path, item: item, offset: offset, expected: crc, actual: actual)
        }
    }

    private func inflate(_ stored: UnsafeRawBufferPointer, item: EdgeItem, offset: Int, length: Int) throws -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: EdgePreamble.alignment)
        do {
            try Deflate.decompress(stored, into: buffer)
        } catch let e as Deflate.Failure {
            buffer.deallocate()
            throw EdgeFormatError.corruptPayload(file: path, item: item, offset: offset, why: e.why)
        }
        return buffer
    }

    // MARK: validation

    private static func readPreamble(_ f: MappedFile) throws -> EdgePreamble {
        let path = f.path
        let head = Array(f.bytes.prefix(EdgePreamble.magic.count))
        guard head == Array(EdgePreamble.magic.prefix(head.count)) else { throw EdgeFormatError.notEdgeFile(file: path, found: head) }
        guard f.size >= EdgePreamble.size else {
            throw EdgeFormatError.truncated(file: path, what: "the preamble", needed: EdgePreamble.size, size: f.size)
        }
        var c = f.cursor()
        do {
            try c.skip(EdgePreamble.magic.count, "magic")
            let version = try c.u32le("version")
            let flags = try c.u32le("flags")
            let headerOffset = try c.u64le("header_offset")
            let headerLength = try c.u64le("header_length")
            let crc = try c.u32le("header_crc32")
            let reserved = try c.slice(EdgePreamble.size - c.offset, "reserved")
            guard version != 0 else { throw EdgeFormatError.badPreamble(file: path, field: "version", offset: 8, why: "is 0; versions start at 1") }
            guard version <= EdgePreamble.currentVersion else {
                throw EdgeFormatError.newerVersion(file: path, version: version, supported: EdgePreamble.currentVersion)
            }
            guard flags == 0 else {
                throw EdgeFormatError.badPreamble(file: path, field: "flags", offset: 12, why: "is 0x\(String(flags, radix: 16)); v\(version) defines no flags, so it must be 0")
            }
            if let i = reserved.firstIndex(where: { $0 != 0 }) {
                throw EdgeFormatError.badPreamble(file: path, field: "reserved", offset: 36 + i, why: "is 0x\(String(reserved[i], radix: 16)); reserved bytes must be 0")
            }
            return EdgePreamble(version: version, flags: flags, headerOffset: headerOffset, headerLength: headerLength, headerCRC32: crc)
        } catch let e as ByteCursor.Error {
            throw EdgeFormatError.truncated(file: path, what: e.what, needed: e.offset + e.needed, size: f.size)
        }
    }

    private static func readHeader(_ f: MappedFile, _ p: EdgePreamble) throws -> EdgeHeader {
        let path = f.path
        let minOffset = UInt64(EdgePreamble.size)
        guard p.headerOffset >= minOffset, p.headerOffset % UInt64(EdgePreamble.alignment) == 0 else {
            throw EdgeFormatError.badPreamble(file: path, field: "header_offset", offset: 16, why: "is \(p.headerOffset); expected a multiple of 64, at least 64")
        }
        guard p.headerLength >= 2, p.headerLength <= UInt64(EdgePreamble.maxHeaderLength) else {
            throw EdgeFormatError.badPreamble(file: path, field: "header_length", offset: 24, why: "is \(p.headerLength); expected 2...\(EdgePreamble.maxHeaderLength)")
        }
        let (end, overflow) = p.headerOffset.addingReportingOverflow(p.headerLength)
        guard !overflow, end <= UInt64(Int.max) else {
            throw EdgeFormatError.badPreamble(file: path, field: "header_offset", offset: 16, why: "is \(p.headerOffset); the header would end beyond any file")
        }
        guard Int(end) <= f.size else {
            throw EdgeFormatError.truncated(file: path, what: "the header (offset \(p.headerOffset), \(p.headerLength) bytes)", needed: Int(end), size: f.size)
        }
        guard Int(end) == f.size else {
            throw EdgeFormatError.badPreamble(file: path, field: "header_length", offset: 24, why: "is \(p.headerLength): the header ends at \(end), but \(f.size - Int(end)) bytes follow it")
        }
        let offset = Int(p.headerOffset)
        let bytes = UnsafeRawBufferPointer(rebasing: f.bytes[offset ..< Int(end)])
        let crc = CRC32.checksum(bytes)
        guard crc == p.headerCRC32 else { throw EdgeFormatError.headerChecksum(file: path, offset: offset, expected: p.headerCRC32, actual: crc) }
        let tree: JSONValue
        do {
            tree = try JSONValue.parse(bytes)
        } catch let e as JSONParseError {
            throw EdgeFormatError.badHeader(file: path, field: "", why: "invalid JSON at file offset \(offset + e.offset): \(e.why)")
        }
        let header: EdgeHeader
        do {
            header = try tree.decode(EdgeHeader.self)
        } catch let e as DecodingError {
            let (field, why) = JSONValue.describe(e)
            throw EdgeFormatError.badHeader(file: path, field: field, why: why)
        } catch let e as _UnknownEncoding {
            throw EdgeFormatError.unknownEncoding(file: path, tensor: e.tensor, encoding: e.encoding)
        }
        guard header.format == "edge" else { throw EdgeFormatError.badHeader(file: path, field: "format", why: "is \"\(header.format)\"; expected \"edge\"") }
        guard header.version == Int(p.version) else {
            throw EdgeFormatError.badHeader(file: path, field: "version", why: "is \(header.version); the preamble says \(p.version)")
        }
        return header
    }

    /// Checks everything about the header that needs no item bytes; returns the name indexes and
    /// every tensor's resolved payload layout.
    private static func validate(_ h: EdgeHeader, _ f: MappedFile, _ p: EdgePreamble) throws
        -> ([String: Int], [String: Int], [PayloadLayout]) {
        let path = f.path
        do {
            try h.config.validate(source: path)
        } catch let FormatError.invalid(_, what) {
            throw EdgeFormatError.badConfig(file: path, why: what)
        }
        if let problem = h.provenance.problem() {
            throw EdgeFormatError.badProvenance(file: path, field: problem.field, why: problem.why)
        }
        // Largest ratio deflate can reach (258-byte matches in 2 bits): a bound on any honest raw_length.
        let maxInflation = 1032
        func checkCompression(_ item: EdgeItem, _ compression: PayloadCompression, length: Int, rawLength: Int?, expected: Int?) throws {
            func bad(_ field: String, _ why: String) -> EdgeFormatError {
                .badHeader(file: path, field: field, why: "of \(item) \(why)")
            }
            switch compression {
            case .none:
                guard rawLength == nil else { throw bad("raw_length", "must be absent: the item is not compressed") }
                if let expected, length != expected {
                    throw EdgeFormatError.badLength(file: path, item: item, field: "length", expected: expected, actual: length)
                }
                guard length >= 1 else { throw bad("length", "is \(length); expected at least 1") }
            case .deflate:
                guard let raw = rawLength else { throw bad("raw_length", "is missing; a deflated item needs it") }
                if let expected, raw != expected {
                    throw EdgeFormatError.badLength(file: path, item: item, field: "raw_length", expected: expected, actual: raw)
                }
                guard raw >= 1 else { throw bad("raw_length", "is \(raw); expected at least 1") }
                guard length >= 1, let most = Checked.mul(length, maxInflation), raw <= most else {
                    throw bad("length", "is \(length); deflate cannot expand that to raw_length \(raw)")
                }
            }
        }

        var spans: [(item: EdgeItem, offset: Int, length: Int)] = []
        var tensorIndex: [String: Int] = [:]
        var layouts: [PayloadLayout] = []
        for (i, t) in h.tensors.enumerated() {
            guard !t.name.isEmpty else { throw EdgeFormatError.badHeader(file: path, field: "tensors[\(i)].name", why: "is empty") }
            guard tensorIndex.updateValue(i, forKey: t.name) == nil else { throw EdgeFormatError.duplicateName(file: path, item: .tensor(t.name)) }
            guard t.encoding.formatVersion <= p.version else {
                throw EdgeFormatError.encodingNeedsNewerVersion(file: path, tensor: t.name, encoding: t.encoding.rawValue,
                                                                needs: t.encoding.formatVersion, version: p.version)
            }
            let expected = try TensorEntry.payloadLength(tensor: t.name, shape: t.shape, encoding: t.encoding, params: t.params, file: path,
                                                         nnz: t.nnz)
            guard let layout = PayloadLayout(encoding: t.encoding, shape: t.shape, params: t.params, nnz: t.nnz), layout.totalBytes == expected else {
                throw EdgeFormatError.badTensor(file: path, tensor: t.name, field: "params", why: "do not resolve to a payload layout")
            }
            layouts.append(layout)
            try checkCompression(.tensor(t.name), t.compression, length: t.length, rawLength: t.rawLength, expected: expected)
            if let nnz = t.nnz, !(0 ... t.count).contains(nnz) {
                throw EdgeFormatError.badTensor(file: path, tensor: t.name, field: "nnz", why: "is \(nnz); the tensor has \(t.count) values")
            }
            spans.append((.tensor(t.name), t.offset, t.length))
        }
        var blobIndex: [String: Int] = [:]
        for (i, b) in h.blobs.enumerated() {
            guard !b.name.isEmpty else { throw EdgeFormatError.badHeader(file: path, field: "blobs[\(i)].name", why: "is empty") }
            guard blobIndex.updateValue(i, forKey: b.name) == nil else { throw EdgeFormatError.duplicateName(file: path, item: .blob(b.name)) }
            try checkCompression(.blob(b.name), b.compression, length: b.length, rawLength: b.rawLength, expected: nil)
            spans.append((.blob(b.name), b.offset, b.length))
        }

        // Placement: aligned, inside the data area, and packed in offset order.
        let dataStart = EdgePreamble.size, dataEnd = Int(p.headerOffset)
        for s in spans {
            guard s.offset % EdgePreamble.alignment == 0 else {
                throw EdgeFormatError.badOffset(file: path, item: s.item, offset: s.offset, why: "is not a multiple of \(EdgePreamble.alignment)")
            }
            guard s.offset >= dataStart, let end = Checked.add(s.offset, s.length), end <= dataEnd else {
                throw EdgeFormatError.badOffset(file: path, item: s.item, offset: s.offset,
                                                why: "with length \(s.length) lies outside the data area \(dataStart)..<\(dataEnd)")
            }
        }
        spans.sort { ($0.offset, $0.length) < ($1.offset, $1.length) }
        var previous: (item: EdgeItem, end: Int)?
        var expectedOffset = dataStart
        for s in spans {
            if let previous, s.offset < previous.end {
                throw EdgeFormatError.overlap(file: path, item: s.item, offset: s.offset, other: previous.item, otherEnd: previous.end)
            }
            guard s.offset == expectedOffset else {
                throw EdgeFormatError.badOffset(file: path, item: s.item, offset: s.offset,
                                                why: "leaves a gap: the bytes before it end at \(previous?.end ?? dataStart), so it must start at \(expectedOffset)")
            }
            try checkPadding(f, from: previous?.end ?? dataStart, to: s.offset)
            previous = (s.item, s.offset + s.length)
            expectedOffset = align64(s.offset + s.length)
        }
        guard dataEnd == expectedOffset else {
            throw EdgeFormatError.badPreamble(file: path, field: "header_offset", offset: 16,
                                              why: "is \(dataEnd); the last item ends at \(previous?.end ?? dataStart), so the header must start at \(expectedOffset)")
        }
        try checkPadding(f, from: previous?.end ?? dataStart, to: dataEnd)
        return (tensorIndex, blobIndex, layouts)
    }

    private static func checkPadding(_ f: MappedFile, from start: Int, to end: Int) throws {
        for o in start ..< end where f.bytes[o] != 0 {
            throw EdgeFormatError.nonZeroPadding(file: f.path, offset: o)
        }
    }
}
