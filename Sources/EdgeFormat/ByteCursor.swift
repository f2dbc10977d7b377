
/// A bounded reader over bytes. Every read states its endianness, checks the remaining length
/// with overflow-safe arithmetic and throws `ByteCursor.Error.truncated` (with file and offset)
/// when the bytes run out. Never traps on hostile input.
public struct ByteCursor {
    /// A read ran past the end of the available bytes.
    public struct Error: Swift.Error, CustomStringConvertible {
        public let file: String
        public let offset: Int
        public let needed: Int
        public let available: Int
        public let what: String
        public var description: String {
            "\(file): truncated: \(what) needs \(needed) bytes at offset \(offset), only \(available) remain"
        }
    }

    public let bytes: UnsafeRawBufferPointer
    public let file: String
    /// Offset of `bytes` in the file, so errors report absolute file offsets.
    public let base: Int
    public private(set) var offset: Int = 0

    public init(_ bytes: UnsafeRawBufferPointer, file: String, base: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.base = base
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset >= bytes.count }

    /// Absolute file offset of the next read.
    public var fileOffset: Int { base + offset }

    @inline(__always)
    private func need(_ n: Int, _ what: String) throws {
        if n < 0 || n > remaining {
            throw Error(file: file, offset: base + offset, needed: n, available: remaining, what: what)
        }
    }

    public mutating func seek(to newOffset: Int) throws {
        guard newOffset >= 0, newOffset <= bytes.count else {
            throw Error(file: file, offset: base + newOffset, needed: 0, available: 0, what: "seek")
        }
        offset = newOffset
    }

    public mutating func skip(_ n: Int, _ what: String = "skip") throws {
        try need(n, what)
        offset += n
    }

    public mutating func u8(_ what: String = "u8") throws -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16le(_ what: String = "u16") throws -> UInt16 {
        try need(2, what)
        defer { offset += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    public mutating func u32le(_ what: String = "u32") throws -> UInt32 {
        try need(4, what)
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    public mutating func u64le(_ what: String = "u64") throws -> UInt64 {
        try need(8, what)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    public mutating func i8(_ what: String = "i8") throws -> Int8 { Int8(bitPattern: try u8(what)) }
    public mutating func i16le(_ what: String = "i16") throws -> Int16 { Int16(bitPattern: try u16le(what)) }
    public mutating func i32le(_ what: String = "i32") throws -> Int32 { Int32(bitPattern: try u32le(what)) }
    public mutating func i64le(_ what: String = "i64") throws -> Int64 { Int64(bitPattern: try u64le(what)) }
    public mutating func f32le(_ what: String = "f32") throws -> Float { Float(bitPattern: try u32le(what)) }
    public mutating func f64le(_ what: String = "f64") throws -> Double { Double(bitPattern: try u64le(what)) }

    /// Reads `n` bytes and returns a view of them (no copy).
    public mutating func slice(_ n: Int, _ what: String = "bytes") throws -> UnsafeRawBufferPointer {
        try need(n, what)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + n])
    }

    /// Reads `n` bytes as UTF-8; throws `invalidUTF8` if they are not.
    public mutating func string(_ n: Int, _ what: String = "string") throws -> String {
        let s = try slice(n, what)
        guard let str = String(validating: s, as: UTF8.self) else {
            throw FormatError.invalid(file: file, what: "\(what) at offset \(base + offset - n) is not valid UTF-8")
        }
        return str
    }
}

/// Generic malformed-input error for readers that have no more specific case.
public enum FormatError: Error, CustomStringConvertible {
    /// The bytes are present but not acceptable.
    case invalid(file: String, what: String)
    /// The file cannot be opened or mapped.
    case io(file: String, what: String)

    public var description: String {
        switch self {
        case let .invalid(file, what): return "\(file): \(what)"
        case let .io(file, what): return "\(file): \(what)"
        }
    }
}

/// Overflow-checked arithmetic for sizes read from files.
public enum Checked {
    /// Product of `dims`, or nil on overflow or a negative dimension.
    public static func product(_ dims: [Int]) -> Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (r, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = r
        }
        return n
    }

    public static func mul(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    public static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }
}
