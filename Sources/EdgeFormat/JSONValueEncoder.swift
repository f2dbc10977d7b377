/// An `Encoder` that builds a `JSONValue` tree (used by `JSONValue(encoding:)`), the counterpart of
/// `_JSONValueDecoder`. The tree is what Foundation's `JSONEncoder` (default strategies) writes and
/// `JSONValue.parse` reads back: nil optionals left out (`encodeIfPresent`), `encodeNil` as null,
/// an object that encodes nothing as `{}`, a `Float` as the binary64 of its shortest decimal form
/// (0.1 as 0.1, not 0.10000000149011612), integers as binary64 (exact up to 2^53). A non-finite
/// number throws `EncodingError.invalidValue` whose coding path names the field.
struct _JSONValueEncoder: Encoder {
    let node: _JSONNode
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// The tree of `value`.
    static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = _JSONNode()
        try value.encode(to: _JSONValueEncoder(node: root, codingPath: []))
        return root.value
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(_KeyedEncodingContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        node.becomeArray()
        return _UnkeyedEncodingContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { _SingleValueEncodingContainer(node: node, codingPath: codingPath) }
}

/// One value of the tree being built; containers hold it by reference and fill it in later.
final class _JSONNode {
    private var scalar: JSONValue?
    private var members: [String: _JSONNode]?
    private var elements: [_JSONNode]?

    func set(_ v: JSONValue) { scalar = v; members = nil; elements = nil }
    func becomeObject() { if members == nil { scalar = nil; elements = nil; members = [:] } }
    func becomeArray() { if elements == nil { scalar = nil; members = nil; elements = [] } }

    /// A new node stored under `key` (an object's member).
    func child(_ key: String) -> _JSONNode {
        let n = _JSONNode()
        members![key] = n
        return n
    }

    /// A new node appended (an array's element).
    func appended() -> _JSONNode {
        let n = _JSONNode()
        elements!.append(n)
        return n
    }

    var count: Int { elements?.count ?? 0 }

    var value: JSONValue {
        if let scalar { return scalar }
        if let elements { return .array(elements.map(\.value)) }
        return .object((members ?? [:]).mapValues(\.value))
    }
}

/// Writes one value into `node`: primitives directly, anything else through its `encode(to:)`.
struct _SingleValueEncodingContainer: SingleValueEncodingContainer {
    let node: _JSONNode
    let codingPath: [CodingKey]

    private func number<T: BinaryFloatingPoint>(_ v: T) throws -> JSONValue {
        guard v.isFinite else {
            throw EncodingError.invalidValue(v, .init(codingPath: codingPath, debugDescription: "Unable to encode \(T.self).\(v) directly in JSON."))
        }
        return .number(Double(v))
    }

    mutating func encodeNil() { node.set(.null) }
    mutating func encode(_ v: Bool) { node.set(.bool(v)) }
    mutating func encode(_ v: String) { node.set(.string(v)) }
    mutating func encode(_ v: Double) throws { node.set(try number(v)) }
    // JSONEncoder writes a Float's shortest decimal form, which parses back as that decimal's binary64.
    mutating func encode(_ v: Float) throws { _ = try number(v); node.set(.number(Double(v.description)!)) }
    mutating func encode(_ v: Int) { node.set(.number(Double(v))) }
    mutating func encode(_ v: Int8) { node.set(.number(Double(v))) }
    mutating func encode(_ v: Int16) { node.set(.number(Double(v))) }
    mutating func encode(_ v: Int32) { node.set(.number(Double(v))) }
    mutating func encode(_ v: Int64) { node.set(.number(Double(v))) }
    mutating func encode(_ v: UInt) { node.set(.number(Double(v))) }
    mutating func encode(_ v: UInt8) { node.set(.number(Double(v))) }
    mutating func encode(_ v: UInt16) { node.set(.number(Double(v))) }
    mutating func encode(_ v: UInt32) { node.set(.number(Double(v))) }
    mutating func encode(_ v: UInt64) { node.set(.number(Double(v))) }
    mutating func encode<T: Encodable>(_ v: T) throws { try v.encode(to: _JSONValueEncoder(node: node, codingPath: codingPath)) }
}

struct _KeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: _JSONNode
    let codingPath: [CodingKey]

    /// A single-value container for the member `key`.
    private func member(_ key: Key) -> _SingleValueEncodingContainer {
        _SingleValueEncodingContainer(node: node.child(key.stringValue), codingPath: codingPath + [key])
    }

    mutating func encodeNil(forKey key: Key) { var c = member(key); c.encodeNil() }
    // Also the witness of every primitive `encode(_:forKey:)`: the value's `encode(to:)` reaches the primitive.
    mutating func encode<T: Encodable>(_ v: T, forKey key: Key) throws { var c = member(key); try c.encode(v) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        superEncoder(forKey: key).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        superEncoder(forKey: key).unkeyedContainer()
    }

    mutating func superEncoder() -> Encoder {
        _JSONValueEncoder(node: node.child("super"), codingPath: codingPath + [_AnyKey("super")])
    }

    mutating func superEncoder(forKey key: Key) -> Encoder {
        _JSONValueEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key])
    }
}

struct _UnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let node: _JSONNode
    let codingPath: [CodingKey]
    var count: Int { node.count }

    /// A single-value container for a new last element.
    private func next() -> _SingleValueEncodingContainer {
        let path = codingPath + [_IndexKey(node.count)]
        return _SingleValueEncodingContainer(node: node.appended(), codingPath: path)
    }

    mutating func encodeNil() { var c = next(); c.encodeNil() }
    // Also the witness of every primitive `encode(_:)`: the value's `encode(to:)` reaches the primitive.
    mutating func encode<T: Encodable>(_ v: T) throws { var c = next(); try c.encode(v) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        superEncoder().container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer { superEncoder().unkeyedContainer() }

    mutating func superEncoder() -> Encoder {
        let path = codingPath + [_IndexKey(node.count)]
        return _JSONValueEncoder(node: node.appended(), codingPath: path)
    }
}
