
/// A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` document, as used by
/// GPT-2, SmolLM/SmolLM2 and Llama-3 style models. `encode` gives the ids Hugging Face's
/// `tokenizers` gives for `encode(text, add_special_tokens=False)`.
///
/// Supported: model `BPE` (vocab; merges as "a b" strings or ["a", "b"] pairs; `unk_token`,
/// `fuse_unk`, `ignore_merges`), normalizer null or `NFC`, pre-tokenizer `ByteLevel` (last),
/// optionally after `Digits` and `Split` steps (a `Sequence`), decoder `ByteLevel`, and
/// `added_tokens` (split out of the text first, with `lstrip`, `rstrip`, `single_word`,
/// `normalized`). Anything else is refused with a `TokenizerError` naming the field.
///
/// Encoding is thread-safe (the word cache is locked).
public final class Tokenizer: @unchecked Sendable {
    private let model: _BPEModel
    /// id -> bytes the id decodes to.
    private let tokenBytes: [Int32: [UInt8]]
    /// id -> UTF-8 bytes of the token string (vocabulary entry or added token content).
    private let tokenUTF8: [Int32: [UInt8]]
    /// Added token content (UTF-8) -> id.
    private let addedIDs: [[UInt8]: Int32]
    private let specialIDs: Set<Int32>
    /// Added tokens matched against the raw text, then those matched against the normalized text.
    private let rawMatcher: _AddedTokenMatcher
    private let normalizedMatcher: _AddedTokenMatcher
    private let normalizeNFC: Bool
    private let splitSteps: [_SplitStep]
    private let addPrefixSpace: Bool
    private let useRegex: Bool

    /// The id to put before a sequence, if the caller gave one or the document's TemplateProcessing
    /// post-processor names one. `encode` never adds it.
    public let bosTokenID: Int32?
    /// The end-of-sequence id the caller gave, if any.
    public let eosTokenID: Int32?
    /// One more than the largest id (vocabulary and added tokens).
    public let vocabularySize: Int

    /// Reads a `tokenizer.json` document.
    /// - Parameters:
    ///   - json: the document's bytes.
    ///   - bosTokenID: overrides the BOS id (tokenizer.json rarely states it: config.json does).
    ///   - eosTokenID: the EOS id, for callers that stop generation on it.
    /// - Throws: `TokenizerError` naming the field that is missing, malformed or unsupported.
    public init(json: [UInt8], bosTokenID: Int32? = nil, eosTokenID: Int32? = nil) throws {
        let config = try _TokenizerConfig(json: json)
        model = config.model
        normalizeNFC = config.normalizeNFC
        splitSteps = config.splitSteps
        addPrefixSpace = config.addPrefixSpace
        useRegex = config.useRegex
        tokenUTF8 = config.tokens
        tokenBytes = config.tokens.mapValues(_ByteLevel.decode)
        addedIDs = Dictionary(config.addedTokens.map { (Array($0.content.utf8), $0.id) }, uniquingKeysWith: { a, _ in a })
        specialIDs = Set(config.addedTokens.filter(\.special).map(\.id))
        rawMatcher = _AddedTokenMatcher(config.addedTokens.filter { !$0.normalized }, nfc: false)
        normalizedMatcher = _AddedTokenMatcher(config.addedTokens.filter(\.normalized), nfc: config.normalizeNFC)
        vocabularySize = Int(config.tokens.keys.max() ?? -1) + 1
        let bos = bosTokenID ?? config.templateBOS
        let bosField = bosTokenID == nil ? "post_processor" : "bosTokenID"
        for (field, id) in [(bosField, bos), ("eosTokenID", eosTokenID)] {
            if let id, config.tokens[id] == nil {
                throw TokenizerError.invalidValue(field: field, reason: "id \(id) is not a token of this tokenizer")
            }
        }
        self.bosTokenID = bos
        self.eosTokenID = eosTokenID
    }

    /// Token ids for `text`, without BOS/EOS.
    ///
    /// Added tokens (e.g. `<|endoftext|>`) written in the text become their ids; the rest is
    /// normalized, pre-tokenized into words and each word merged by BPE.
    /// Complexity: O(n log n) in the text length; repeated words hit a cache.
    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3)
        var buffer: [UInt8] = []
        for segment in rawMatcher.split(Array(text.unicodeScalars)) {
            switch segment {
            case let .token(id):
                out.append(id)
            case let .text(raw):
                let normalized = normalizeNFC ? _nfc(raw) : raw
                for inner in normalizedMatcher.split(normalized) {
                    switch inner {
                    case let .token(id): out.append(id)
                    case let .text(piece): encodePiece(piece, buffer: &buffer, into: &out)
                    }
                }
            }
        }
        return out
    }

    /// Text for `ids`: their bytes joined, then decoded as UTF-8 with invalid sequences replaced
    /// by U+FFFD. Ids that are not tokens contribute nothing.
    /// - Parameter skipSpecialTokens: leave out special added tokens such as `<|endoftext|>`.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where !(skipSpecialTokens && specialIDs.contains(id)) {
            if let b = tokenBytes[id] { bytes.append(contentsOf: b) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes one id stands for (empty for an unknown id); possibly part of a UTF-8
    /// character. See `TokenStreamDecoder` for printing generated text as it comes.
    public func decodeBytes(_ id: Int32) -> [UInt8] {
        tokenBytes[id] ?? []
    }

    /// The id of a vocabulary entry or added token, given as it is written in tokenizer.json
    /// (byte-level form, e.g. "Ġthe", or "<|endoftext|>").
    public func tokenID(_ token: String) -> Int32? {
        let utf8 = Array(token.utf8)
        return addedIDs[utf8] ?? model.vocab[utf8]
    }

    /// The token string of an id as tokenizer.json writes it, or nil for an unknown id.
    public func token(_ id: Int32) -> String? {
        tokenUTF8[id].map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `id` is a special added token (skipped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int32) -> Bool {
        specialIDs.contains(id)
    }

    /// Pre-tokenizes one stretch of text between added tokens and appends the BPE ids of its words.
    private func encodePiece(_ piece: [Unicode.Scalar], buffer: inout [UInt8], into out: inout [Int32]) {
        guard !piece.isEmpty else { return }
        var pieces = [piece]
        for step in splitSteps {
            var next: [[Unicode.Scalar]] = []
            for p in pieces { step.apply(p, into: &next) }
            pieces = next
        }
        for var p in pieces where !p.isEmpty {
            if addPrefixSpace, p[0] != " " { p.insert(" ", at: 0) }
            let words = useRegex ? _gpt2Split(p[...]) : [0..<p.count]
            for word in words {
                buffer.removeAll(keepingCapacity: true)
                for s in p[word] { _appendUTF8(s, to: &buffer) }
                model.encodeWord(buffer[...], into: &out)
            }
        }
    }
}

/// NFC of a run of scalars.
func _nfc(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
    // ASCII is already NFC.
    if scalars.allSatisfy({ $0.value < 0x80 }) { return scalars }
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    // The standard library's normalizer (the one String comparison uses), not Foundation's.
    return Array(String(decoding: String(view)._nfcCodeUnits, as: UTF8.self).unicodeScalars)
}

@inline(__always)
func _appendUTF8(_ s: Unicode.Scalar, to out: inout [UInt8]) {
    let v = s.value
    switch v {
    case 0..<0x80:
        out.append(UInt8(v))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | (v >> 6)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | (v >> 12)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    default:
        out.append(UInt8(0xF0 | (v >> 18)))
        out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    }
}
