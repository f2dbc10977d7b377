
/// A `Decoder` over a parsed `JSONValue` (used by `JSONValue.decode(_:)`). Unlike Foundation's
/// `JSONDecoder` it reports every failure, including a number out of range for its field, as a
/// `DecodingError` whose coding path names the field.
struct _JSONValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case let .object(o) = value else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: "expected an object, found \(value.kindName)"))
        }
        return KeyedDecodingContainer(_KeyedContainer<Key>(object: o, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case let .array(a) = value else {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "expected an array, found \(value.kindName)"))
        }
        return _UnkeyedContainer(array: a, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { _SingleContainer(value: value, codingPath: codingPath) }
}

/// An integer coding key for array positions in coding paths.
struct _IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ i: Int) { intValue = i }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { return nil }
}

extension JSONValue {
    /// "an object", "a number", ... for messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Converts to a primitive type, or throws a `DecodingError` at `path`.
    func primitive<T>(_ type: T.Type, at path: [CodingKey]) throws -> T {
        func mismatch(_ expected: String) -> DecodingError {
            .typeMismatch(T.self, .init(codingPath: path, debugDescription: "expected \(expected), found \(kindName)"))
        }
        if T.self == Bool.self {
            guard case let .bool(b) = self else { throw mismatch("a boolean") }
            return b as! T
        }
        if T.self == String.self {
            guard case let .string(s) = self else { throw mismatch("a string") }
            return s as! T
        }
        guard case let .number(d) = self else { throw mismatch("a number") }
        if T.self == Double.self { return d as! T }
        if T.self == Float.self {
            guard let f = Float(exactly: d) ?? (abs(d) <= Double(Float.greatestFiniteMagnitude) ? Float(d) : nil) else {
                throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "number \(d) does not fit a Float"))
            }
            return f as! T
        }
        func integer<I: FixedWidthInteger>(_: I.Type) throws -> I {
            guard let i = I(exactly: d) else {
                throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "number \(d) is not an integer in \(I.min)...\(I.max)"))
            }
            return i
        }
        switch T.self {
        case is Int.Type: return try integer(Int.self) as! T
        case is Int8.Type: return try integer(Int8.self) as! T
        case is Int16.Type: return try integer(Int16.self) as! T
        case is Int32.Type: return try integer(Int32.self) as! T
        case is Int64.Type: return try integer(Int64.self) as! T
        case is UInt.Type: return try integer(UInt.self) as! T
        case is UInt8.Type: return try integer(UInt8.self) as! T
        case is UInt16.Type: return try integer(UInt16.self) as! T
        case is UInt32.Type: return try integer(UInt32.self) as! T
        case is UInt64.Type: return try integer(UInt64.self) as! T
        default: throw mismatch("\(T.self)")
        }
    }

    /// Decodes any `Decodable` at `path`: primitives directly, everything else through a nested decoder.
    func decoded<T: Decodable>(_ type: T.Type, at path: [CodingKey]) throws -> T {
        switch T.self {
        case is Bool.Type, is String.Type, is Double.Type, is Float.Type, is Int.Type, is Int8.Type, is Int16.Type,
             is Int32.Type, is Int64.Type, is UInt.Type, is UInt8.Type, is UInt16.Type, is UInt32.Type, is UInt64.Type:
            return try primitive(T.self, at: path)
        case is JSONValue.Type:
            return self as! T
        default:
            return try T(from: _JSONValueDecoder(value: self, codingPath: path))
        }
    }
}

private struct _KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: [String: JSONValue]
    let codingPath: [CodingKey]

    var allKeys: [Key] { object.keys.sorted().compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    func value(_ key: Key) throws -> JSONValue {
        guard let v = object[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing key \(key.stringValue)"))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let v = try value(key)
        if v == .null, T.self != JSONValue.self {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [key], debugDescription: "null"))
        }
        return try v.decoded(T.self, at: codingPath + [key])
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decode(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decode(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decode(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decode(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decode(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decode(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decode(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decode(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decode(type, key) }

    private func decode<T>(_ type: T.Type, _ key: Key) throws -> T {
        let v = try value(key)
        if v == .null { throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [key], debugDescription: "null")) }
        return try v.primitive(T.self, at: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try _JSONValueDecoder(value: value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try _JSONValueDecoder(value: value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder {
        _JSONValueDecoder(value: object["super"] ?? .null, codingPath: codingPath)
    }

    func superDecoder(forKey key: Key) throws -> Decoder {
        _JSONValueDecoder(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct _UnkeyedContainer: UnkeyedDecodingContainer {
    let array: [JSONValue]
    let codingPath: [CodingKey]
    var currentIndex = 0

    init(array: [JSONValue], codingPath: [CodingKey]) {
        self.array = array
        self.codingPath = codingPath
    }

    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    mutating func next<T>(_ type: T.Type) throws -> (JSONValue, [CodingKey]) {
        let path = codingPath + [_IndexKey(currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: path, debugDescription: "the array has only \(array.count) elements"))
        }
        defer { currentIndex += 1 }
        return (array[currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, path) = try next(T.self)
        if v == .null, T.self != JSONValue.self {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: path, debugDescription: "null"))
        }
        return try v.decoded(T.self, at: path)
    }

    private mutating func prim<T>(_ type: T.Type) throws -> T {
        let (v, path) = try next(T.self)
        if v == .null { throw DecodingError.valueNotFound(T.self, .init(codingPath: path, debugDescription: "null")) }
        return try v.primitive(T.self, at: path)
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try prim(type) }
    mutating func decode(_ type: String.Type) throws -> String { try prim(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try prim(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try prim(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try prim(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try prim(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try prim(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try prim(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try prim(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try prim(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try prim(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try prim(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try prim(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try prim(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, path) = try next([String: Any].self)
        return try _JSONValueDecoder(value: v, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (v, path) = try next([Any].self)
        return try _JSONValueDecoder(value: v, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder {
        let (v, path) = try next(Any.self)
        return _JSONValueDecoder(value: v, codingPath: path)
    }
}

private struct _SingleContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]

    func decodeNil() -> Bool { value == .null }

    private func prim<T>(_ type: T.Type) throws -> T {
        if value == .null { throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "null")) }
        return try value.primitive(T.self, at: codingPath)
    }

    func decode(_ type: Bool.Type) throws -> Bool { try prim(type) }
    func decode(_ type: String.Type) throws -> String { try prim(type) }
    func decode(_ type: Double.Type) throws -> Double { try prim(type) }
    func decode(_ type: Float.Type) throws -> Float { try prim(type) }
    func decode(_ type: Int.Type) throws -> Int { try prim(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try prim(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try prim(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try prim(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try prim(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try prim(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try prim(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try prim(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try prim(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try prim(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if value == .null, T.self != JSONValue.self {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "null"))
        }
        return try value.decoded(T.self, at: codingPath)
    }
}
