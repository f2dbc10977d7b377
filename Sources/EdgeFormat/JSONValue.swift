
/// An arbitrary JSON value: recipes, pass records and metrics stored in an `.edge` file's
/// provenance, and the tree the `.edge` header is decoded from.
///
/// Numbers are IEEE binary64 (integers are exact up to 2^53). Objects are unordered; every
/// serialization (`jsonBytes()`, `prettyText()`, or any `JSONEncoder` with `.sortedKeys`) writes
/// keys in sorted order, so equal values give identical bytes. `parse(_:)` is strict: it refuses duplicate keys,
/// invalid UTF-8, non-finite numbers, trailing bytes and nesting deeper than `maxDepth`.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Deepest nesting `parse(_:)` accepts (objects and arrays), so hostile input cannot exhaust the stack.
    public static let maxDepth = 128

    // MARK: accessors

    /// The member `key` of an object; nil for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? {
        if case let .object(o) = self { return o[key] }
        return nil
    }

    /// Element `index` of an array; nil when out of range or not an array.
    public subscript(index: Int) -> JSONValue? {
        if case let .array(a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }

    /// The members of an object, nil otherwise.
    public var objectValue: [String: JSONValue]? { if case let .object(o) = self { return o }; return nil }
    /// The elements of an array, nil otherwise.
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    /// The string, nil otherwise.
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    /// The boolean, nil otherwise.
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    /// The number, nil otherwise.
    public var doubleValue: Double? { if case let .number(d) = self { return d }; return nil }
    /// The number when it is an integer that binary64 holds exactly (|n| <= 2^53), nil otherwise.
    public var intValue: Int? {
        guard case let .number(d) = self, d.rounded(.towardZero) == d, abs(d) <= 9_007_199_254_740_992 else { return nil }
        return Int(d)
    }
    /// Whether this is `.null`.
    public var isNull: Bool { self == .null }

    // MARK: conversions

    /// The JSON form of any `Encodable` value: the tree Foundation's `JSONEncoder` (default
    /// strategies) would write and `parse(_:)` read back (see `_JSONValueEncoder`).
    /// - Throws: `EncodingError.invalidValue` for a non-finite number, naming its path.
    public init<T: Encodable>(encoding value: T) throws {
        self = try _JSONValueEncoder.encode(value)
    }

    /// Decodes a `Decodable` type from this tree. Numbers must be representable in the requested
    /// type (an `Int` field refuses 1.5 or 1e30); errors are `DecodingError`s whose coding path
    /// names the field (format one with `JSONValue.describe(_:)`).
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: _JSONValueDecoder(value: self, codingPath: []))
    }

    /// Compact UTF-8 JSON with sorted keys: equal values give identical bytes, the bytes
    /// `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes for this value.
    /// - Throws: `EncodingError.invalidValue` for a non-finite number, naming its path.
    public func jsonBytes() throws -> [UInt8] { try serialized(pretty: false) }

    /// `jsonBytes()` as a string; "null" if it cannot be encoded (only non-finite numbers cannot).
    public var compactString: String {
        guard let b = try? jsonBytes() else { return "null" }
        return String(decoding: b, as: UTF8.self)
    }

    /// A one-line account of a decoding error: the field path ("tensors[3].offset", "" for the
    /// root) and the reason.
    public static func describe(_ error: DecodingError) -> (field: String, why: String) {
        func path(_ p: [CodingKey]) -> String {
            var s = ""
            for k in p {
                if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : "." + k.stringValue }
            }
            return s
        }
        switch error {
        case let .keyNotFound(key, c):
            let base = path(c.codingPath)
            return (base.isEmpty ? key.stringValue : base + "." + key.stringValue, "is missing")
        case let .valueNotFound(t, c): return (path(c.codingPath), "is null; expected \(t)")
        case let .typeMismatch(_, c): return (path(c.codingPath), c.debugDescription)
        case let .dataCorrupted(c): return (path(c.codingPath), c.debugDescription)
        @unknown default: return ("", "\(error)")
        }
    }
}

// MARK: literals

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// A later duplicate key replaces an earlier one.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, b in b }))
    }
}

// MARK: Codable

extension JSONValue: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSONValue].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(b): try c.encode(b)
        case let .number(d):
            guard d.isFinite else {
                throw EncodingError.invalidValue(d, .init(codingPath: encoder.codingPath, debugDescription: "JSON cannot hold the non-finite number \(d)"))
            }
            try c.encode(d)
        case let .string(s): try c.encode(s)
        case let .array(a): try c.encode(a)
        case let .object(o): try c.encode(o)
        }
    }
}

// MARK: strict parser

/// Why `JSONValue.parse` refused its input, with the byte offset in the parsed buffer.
public struct JSONParseError: Error, CustomStringConvertible, Equatable {
    /// Byte offset (from the start of the parsed bytes) where the problem was found.
    public let offset: Int
    /// What is wrong there.
    public let why: String
    public var description: String { "invalid JSON at byte \(offset): \(why)" }
}

extension JSONValue {
    /// Parses RFC 8259 JSON from UTF-8 bytes, strictly (see the type's description), through the
    /// one JSON parser of the toolchain (`RawJSON.parse`).
    /// - Throws: `JSONParseError` with the byte offset of the problem.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        JSONValue(try RawJSON.parse(bytes, maxDepth: JSONValue.maxDepth, uniqueKeys: true))
    }

    /// Parses RFC 8259 JSON from `bytes` (see `parse(_:)` on raw bytes).
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0) }
    }

    /// The value of a parsed tree: numbers as binary64, strings and keys decoded from UTF-8.
    /// Keys must be unique (as `RawJSON.parse(uniqueKeys: true)` guarantees); of repeated ones the first is kept.
    public init(_ raw: RawJSON) {
        switch raw {
        case .null: self = .null
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .number(Double(i))
        case let .double(d): self = .number(d)
        case let .string(bytes): self = .string(String(decoding: bytes, as: UTF8.self))
        case let .array(a): self = .array(a.map(JSONValue.init))
        case let .object(members):
            self = .object(Dictionary(members.map { (String(decoding: $0.key, as: UTF8.self), JSONValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        }
    }
}

/// A parsed JSON value whose strings and keys stay UTF-8 bytes and whose objects keep their
/// members in document order, keys exact: what `RawJSON.parse` (the toolchain's one JSON parser)
/// returns. `JSONValue.parse` builds its tree from it; the tokenizer reads `tokenizer.json` with it
/// directly, since a vocabulary has ~50k-250k keys and keeping them as bytes avoids building (and
/// hashing, with Unicode normalization) that many `String`s.
public enum RawJSON: Sendable {
    case null
    case bool(Bool)
    /// Integers without fraction or exponent that fit in Int64 (not -0).
    case int(Int64)
    /// Other numbers (finite).
    case double(Double)
    case string([UInt8])
    case array([RawJSON])
    case object([(key: [UInt8], value: RawJSON)])

    /// What kind of value this is, for error messages.
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Parses RFC 8259 JSON from UTF-8 bytes, strictly: it refuses invalid UTF-8, non-finite
    /// numbers, trailing bytes and nesting deeper than `maxDepth`.
    /// - Parameters:
    ///   - maxDepth: deepest nesting of objects and arrays accepted, so hostile input cannot exhaust the stack.
    ///   - uniqueKeys: refuse an object with two keys equal as `String`s.
    /// - Throws: `JSONParseError` with the byte offset of the problem.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int, uniqueKeys: Bool) throws -> RawJSON {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw JSONParseError(offset: 0, why: "the bytes are not valid UTF-8")
        }
        var p = _JSONParser(bytes: bytes, maxDepth: maxDepth, uniqueKeys: uniqueKeys)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("unexpected bytes after the JSON value") }
        return v
    }
}

/// Recursive-descent parser over validated UTF-8 bytes.
private struct _JSONParser {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    let uniqueKeys: Bool
    var i = 0

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, uniqueKeys: Bool) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.uniqueKeys = uniqueKeys
    }

    func fail(_ why: String) -> JSONParseError { JSONParseError(offset: i, why: why) }

    var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            guard c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D else { return }
            i += 1
        }
    }

    mutating func expect(_ word: StaticString) throws {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for b in w {
            guard peek == b else { throw fail("expected '\(word)'") }
            i += 1
        }
    }

    mutating func value(depth: Int) throws -> RawJSON {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth) levels") }
        guard let c = peek else { throw fail("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(c)))'")
        }
    }

    mutating func object(depth: Int) throws -> RawJSON {
        i += 1
        var members: [(key: [UInt8], value: RawJSON)] = []
        var seen = Set<String>()
        skipSpace()
        if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = i
            let key = try string()
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw fail("expected ':' after key \"\(String(decoding: key, as: UTF8.self))\"") }
            i += 1
            skipSpace()
            let v = try value(depth: depth + 1)
            if uniqueKeys {
                let k = String(decoding: key, as: UTF8.self)
                guard seen.insert(k).inserted else { throw JSONParseError(offset: keyOffset, why: "duplicate key \"\(k)\"") }
            }
            members.append((key, v))
            skipSpace()
            guard let c = peek else { throw fail("unexpected end of input in an object") }
            i += 1
            if c == UInt8(ascii: "}") { return .object(members) }
            guard c == UInt8(ascii: ",") else { i -= 1; throw fail("expected ',' or '}' in an object") }
        }
    }

    mutating func array(depth: Int) throws -> RawJSON {
        i += 1
        var out: [RawJSON] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { i += 1; return .array(out) }
        while true {
            skipSpace()
            out.append(try value(depth: depth + 1))
            skipSpace()
            guard let c = peek else { throw fail("unexpected end of input in an array") }
            i += 1
            if c == UInt8(ascii: "]") { return .array(out) }
            guard c == UInt8(ascii: ",") else { i -= 1; throw fail("expected ',' or ']' in an array") }
        }
    }

    mutating func hex4() throws -> UInt32 {
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            guard let c = peek else { throw fail("unexpected end of input in a \\u escape") }
            let d: UInt8
            switch c {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("bad hex digit in a \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    /// A string's UTF-8 bytes, escapes resolved.
    mutating func string() throws -> [UInt8] {
        i += 1
        let start = i
        // Fast path: the run without escapes is copied at once.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start ..< i]))
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            if c == UInt8(ascii: "\"") { i += 1; return out }
            if c < 0x20 { throw fail("control character 0x\(String(c, radix: 16)) inside a string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard let e = peek else { throw fail("unterminated escape") }
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800 ..< 0xDC00).contains(scalar) {
                    guard peek == UInt8(ascii: "\\") else { throw fail("unpaired surrogate in a \\u escape") }
                    i += 1
                    guard peek == UInt8(ascii: "u") else { throw fail("unpaired surrogate in a \\u escape") }
                    i += 1
                    let low = try hex4()
                    guard (0xDC00 ..< 0xE000).contains(low) else { throw fail("unpaired surrogate in a \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate in a \\u escape") }
                out.append(contentsOf: UTF8.encode(u)!)
            default:
                i -= 1
                throw fail("unknown escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
    }

    /// A number: `.int` when it has no fraction or exponent and fits in Int64 (and is not -0),
    /// else `.double` (refused when not finite).
    mutating func number() throws -> RawJSON {
        let start = i
        let negative = peek == UInt8(ascii: "-")
        if negative { i += 1 }
        var magnitude: UInt64 = 0, overflow = false
        let digitsStart = i
        while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            magnitude = m2
            i += 1
        }
        guard i > digitsStart else { throw fail("expected a digit") }
        if bytes[digitsStart] == UInt8(ascii: "0"), i - digitsStart > 1 { i = digitsStart + 1; throw fail("leading zero in a number") }
        var isInteger = true
        if peek == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard digits() > 0 else { throw fail("expected a digit after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("expected a digit in the exponent") }
        }
        if isInteger, !overflow, magnitude <= UInt64(Int64.max), !(negative && magnitude == 0) {
            return .int(negative ? -Int64(magnitude) : Int64(magnitude))
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start ..< i]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw JSONParseError(offset: start, why: "number \(text) is out of range")
        }
        return .double(d)
    }

    mutating func digits() -> Int {
        let start = i
        while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { i += 1 }
        return i - start
    }
}

extension JSONValue {
    /// Pretty-printed JSON text with sorted keys (for command output), as `JSONEncoder` with
    /// `[.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]` writes it: two-space indent,
    /// `"key" : value`. "null" if it cannot be encoded (only non-finite numbers cannot).
    public func prettyText() -> String {
        guard let b = try? serialized(pretty: true) else { return "null" }
        return String(decoding: b, as: UTF8.self)
    }
}

// MARK: writer

// JSON text as Foundation's `JSONEncoder` writes it with `.sortedKeys` and `.withoutEscapingSlashes`
// (plus `.prettyPrinted` for `prettyText()`): keys in `String` order; numbers in Swift's shortest
// round-trip form without a trailing ".0" ("1", "0.1", "1e-05", "-0"); `"`, `\\` and control
// characters escaped (`\n`, `\u001f`), everything else as UTF-8; pretty: two-space indent,
// `"key" : value`, an empty array or object as `[`, a blank line, `]`.
extension JSONValue {
    /// The JSON text of this value.
    /// - Throws: `EncodingError.invalidValue` at the path of a non-finite number.
    private func serialized(pretty: Bool) throws -> [UInt8] {
        var out: [UInt8] = []
        guard writeIsFinite(into: &out, pretty: pretty, depth: 0) else {
            var path: [CodingKey] = []
            let bad = firstNonFinite(path: &path) ?? .nan
            throw EncodingError.invalidValue(bad, .init(codingPath: path, debugDescription: "JSON cannot hold the non-finite number \(bad)"))
        }
        return out
    }

    /// Appends the value's text; false (output incomplete) when it holds a non-finite number.
    private func writeIsFinite(into out: inout [UInt8], pretty: Bool, depth: Int) -> Bool {
        func newline(_ depth: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * depth))
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case let .bool(b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case let .number(d):
            guard d.isFinite else { return false }
            var text = d.description
            if text.hasSuffix(".0") { text.removeLast(2) }
            out.append(contentsOf: text.utf8)
        case let .string(s): Self.writeString(s, into: &out)
        case let .array(a):
            out.append(UInt8(ascii: "["))
            if pretty { a.isEmpty ? out.append(UInt8(ascii: "\n")) : newline(depth + 1) }
            for (i, v) in a.enumerated() {
                if i > 0 {
                    out.append(UInt8(ascii: ","))
                    if pretty { newline(depth + 1) }
                }
                guard v.writeIsFinite(into: &out, pretty: pretty, depth: depth + 1) else { return false }
            }
            if pretty { newline(depth) }
            out.append(UInt8(ascii: "]"))
        case let .object(o):
            out.append(UInt8(ascii: "{"))
            if pretty { o.isEmpty ? out.append(UInt8(ascii: "\n")) : newline(depth + 1) }
            for (i, (k, v)) in o.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 {
                    out.append(UInt8(ascii: ","))
                    if pretty { newline(depth + 1) }
                }
                Self.writeString(k, into: &out)
                out.append(contentsOf: (pretty ? " : " : ":").utf8)
                guard v.writeIsFinite(into: &out, pretty: pretty, depth: depth + 1) else { return false }
            }
            if pretty { newline(depth) }
            out.append(UInt8(ascii: "}"))
        }
        return true
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x08: out.append(contentsOf: #"\b"#.utf8)
            case 0x0C: out.append(contentsOf: #"\f"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0 ..< 0x20: out.append(contentsOf: #"\u00"#.utf8 + [hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The first non-finite number in document order (keys sorted), its path in `path`.
    private func firstNonFinite(path: inout [CodingKey]) -> Double? {
        switch self {
        case let .number(d): return d.isFinite ? nil : d
        case let .array(a):
            for (i, v) in a.enumerated() {
                path.append(_IndexKey(i))
                if let d = v.firstNonFinite(path: &path) { return d }
                path.removeLast()
            }
        case let .object(o):
            for (k, v) in o.sorted(by: { $0.key < $1.key }) {
                path.append(_AnyKey(k))
                if let d = v.firstNonFinite(path: &path) { return d }
                path.removeLast()
            }
        default: break
        }
        return nil
    }
}
