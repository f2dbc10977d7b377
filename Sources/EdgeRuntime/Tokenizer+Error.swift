/// Why a tokenizer description was refused. Every case names the source ("tokenizer.json" or
/// "GGUF") and the offending field as a dotted path (`pre_tokenizer.pretokenizers[1].type`);
/// `description` is one line.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The bytes are not JSON, or the top level is not an object.
    case invalidJSON(source: String, reason: String)
    /// A required field is absent (or null).
    case missingField(source: String, field: String)
    /// A field holds the wrong kind of JSON value.
    case wrongType(source: String, field: String, expected: String)
    /// A component or option this runtime does not implement (only byte-level BPE is).
    case unsupported(source: String, field: String, value: String)
    /// A field's value is inconsistent: a merge naming a token that is not in the vocabulary, an id
    /// out of range, a regex that does not compile.
    case invalidValue(source: String, field: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidJSON(source, reason):
            return "\(source): not a valid JSON object: \(reason)"
        case let .missingField(source, field):
            return "\(source): missing field '\(field)'"
        case let .wrongType(source, field, expected):
            return "\(source): field '\(field)' should be \(expected)"
        case let .unsupported(source, field, value):
            return "\(source): \(field) '\(value)' is not supported"
        case let .invalidValue(source, field, reason):
            return "\(source): \(field): \(reason)"
        }
    }
}
