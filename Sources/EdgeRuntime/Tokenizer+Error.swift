/// Why a tokenizer.json document was refused. Every case names the offending field as a dotted
/// path (`pre_tokenizer.pretokenizers[1].type`); `description` is one line starting with
/// "tokenizer.json: ".
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The bytes are not UTF-8 JSON, or the top level is not an object.
    case invalidJSON(reason: String)
    /// A required field is absent (or null).
    case missingField(field: String)
    /// A field holds the wrong kind of JSON value.
    case wrongType(field: String, expected: String)
    /// A component or option this runtime does not implement (only byte-level BPE and BERT-style
    /// WordPiece are).
    case unsupported(field: String, value: String)
    /// A field's value is inconsistent: a merge naming a token that is not in the vocabulary, an id
    /// out of range, a regex that does not compile.
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidJSON(reason):
            return "tokenizer.json: not a valid JSON object: \(reason)"
        case let .missingField(field):
            return "tokenizer.json: missing field '\(field)'"
        case let .wrongType(field, expected):
            return "tokenizer.json: field '\(field)' should be \(expected)"
        case let .unsupported(field, value):
            return "tokenizer.json: \(field) '\(value)' is not supported"
        case let .invalidValue(field, reason):
            return "tokenizer.json: \(field): \(reason)"
        }
    }
}
