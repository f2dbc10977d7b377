/// A parsed JSON value whose strings stay UTF-8 bytes: a tokenizer.json vocabulary has ~50k-250k
/// keys, and keeping them as bytes avoids building (and hashing, with Unicode normalization)
/// that many `String`s. Objects keep their members in document order, keys exact.
indirect enum _JSON {
    case null
    case bool(Bool)
    /// Integers without fraction or exponent that fit in Int64.
    case int(Int64)
    /// Other numbers.
    case double(Double)
    case string([UInt8])
    case array([_JSON])
    case object([(key: [UInt8], value: _JSON)])

    /// Deepest nesting accepted, so hostile input cannot exhaust the stack.
    static let maxDepth = 64

    /// What kind of value this is, for error messages.
    var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Parses RFC 8259 JSON from valid UTF-8 bytes.
    /// - Throws: `_JSONSyntaxError` with the byte offset of the problem.
    static func parse(_ bytes: [UInt8]) throws -> _JSON {
        try bytes.withUnsafeBufferPointer { buffer in
            var reader = _JSONReader(bytes: buffer)
            reader.skipSpace()
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.i == buffer.count else { throw reader.fail("unexpected bytes after the JSON value") }
            return value
        }
    }
}

/// A syntax error at a byte offset.
struct _JSONSyntaxError: Error {
    var offset: Int
    var why: String
}

/// Recursive-descent JSON parser over a byte buffer.
private struct _JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ why: String) -> _JSONSyntaxError { _JSONSyntaxError(offset: i, why: why) }

    mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func literal(_ word: StaticString, _ value: _JSON) throws -> _JSON {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("unexpected end of input") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("expected '\(word)'") }
        i += n
        return value
    }

    mutating func value(depth: Int) throws -> _JSON {
        guard depth < _JSON.maxDepth else { throw fail("nesting deeper than \(_JSON.maxDepth) levels") }
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character")
        }
    }

    /// Consumes `c` after optional white space, or returns false.
    mutating func consume(_ c: UInt8) -> Bool {
        skipSpace()
        if i < bytes.count, bytes[i] == c {
            i += 1
            return true
        }
        return false
    }

    mutating func object(depth: Int) throws -> _JSON {
        i += 1
        var members: [(key: [UInt8], value: _JSON)] = []
        if consume(UInt8(ascii: "}")) { return .object(members) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try string()
            guard consume(UInt8(ascii: ":")) else { throw fail("expected ':' after a key") }
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            if consume(UInt8(ascii: "}")) { return .object(members) }
            guard consume(UInt8(ascii: ",")) else { throw fail("expected ',' or '}' in an object") }
        }
    }

    mutating func array(depth: Int) throws -> _JSON {
        i += 1
        var elements: [_JSON] = []
        if consume(UInt8(ascii: "]")) { return .array(elements) }
        while true {
            skipSpace()
            elements.append(try value(depth: depth + 1))
            if consume(UInt8(ascii: "]")) { return .array(elements) }
            guard consume(UInt8(ascii: ",")) else { throw fail("expected ',' or ']' in an array") }
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("unexpected end of input in a \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
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
        // Fast path: no escapes.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
        var out = Array(bytes[start..<i])
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return out
            }
            guard c >= 0x20 else { throw fail("control character inside a string") }
            i += 1
            if c != UInt8(ascii: "\\") {
                out.append(c)
                continue
            }
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
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
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired surrogate in a \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in a \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate in a \\u escape") }
                _appendUTF8(u, to: &out)
            default:
                throw fail("unknown escape")
            }
        }
    }

    mutating func number() throws -> _JSON {
        let start = i
        var negative = false
        if bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var magnitude: UInt64 = 0
        var overflow = false
        let digitsStart = i
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(bytes[i] - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            magnitude = m2
            i += 1
        }
        guard i > digitsStart else { throw fail("expected a digit") }
        if bytes[digitsStart] == UInt8(ascii: "0"), i - digitsStart > 1 { throw fail("leading zero in a number") }
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            let s = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > s else { throw fail("expected a digit after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            let s = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > s else { throw fail("expected a digit in the exponent") }
        }
        if isInteger, !overflow, magnitude <= UInt64(Int64.max) {
            return .int(negative ? -Int64(magnitude) : Int64(magnitude))
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw _JSONSyntaxError(offset: start, why: "number out of range")
        }
        return .double(d)
    }
}
