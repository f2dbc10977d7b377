
/// A tokenizer read from a Hugging Face `tokenizer.json` document: byte-level BPE as used by
/// GPT-2, SmolLM/SmolLM2 and Llama-3 style models, or WordPiece as used by BERT-family encoders
/// (e.g. sentence-transformers' all-MiniLM-L6-v2). `encode` gives the ids Hugging Face's
/// `tokenizers` gives for `encode(text, add_special_tokens=False)`, `encodeWithSpecialTokens`
/// those of `encode(text, add_special_tokens=True)`.
///
/// Supported, byte-level BPE (`kind == .bytePairs`): model `BPE` (vocab; merges as "a b" strings
/// or ["a", "b"] pairs; `unk_token`, `fuse_unk`, `ignore_merges`), normalizer null or `NFC`,
/// pre-tokenizer `ByteLevel` (last), optionally after `Digits` and `Split` steps (a `Sequence`),
/// decoder `ByteLevel`.
///
/// Supported, WordPiece (`kind == .wordPiece`): model `WordPiece` (vocab, `unk_token`,
/// `continuing_subword_prefix`, `max_input_chars_per_word`), normalizer null or `BertNormalizer`
/// (`clean_text`, `handle_chinese_chars`, `strip_accents`, `lowercase`), pre-tokenizer
/// `BertPreTokenizer`, decoder null or `WordPiece` (`prefix`, `cleanup`).
///
/// Both: `added_tokens` (split out of the text first, with `lstrip`, `rstrip`, `single_word`,
/// `normalized`) and post-processors `TemplateProcessing`, `BertProcessing`, `RobertaProcessing`,
/// `ByteLevel` or a `Sequence` of them (used by `encodeWithSpecialTokens` only). The `truncation`
/// and `padding` blocks are ignored: callers truncate themselves. Anything else is refused with a
/// `TokenizerError` naming the field.
///
/// Encoding is thread-safe (the word cache is locked).
public final class Tokenizer: @unchecked Sendable {
    /// The kind of model a document holds.
    public enum Kind: Sendable {
        /// Byte-level BPE ("model": {"type": "BPE"}).
        case bytePairs
        /// WordPiece ("model": {"type": "WordPiece"}), BERT style.
        case wordPiece
    }

    private let model: _TokenizerModel
    /// The BertNormalizer of a WordPiece document (nil: no normalizer).
    private let bertNormalizer: _BertNormalizer?
    /// The decoder of a WordPiece document (nil: tokens joined with spaces).
    private let wordPieceDecoder: _WordPieceDecoder?
    /// id -> bytes the id decodes to.
    private let tokenBytes: _TokenStrings
    /// id -> UTF-8 bytes of the token string (vocabulary entry or added token content).
    private let tokenUTF8: _TokenStrings
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

    /// Which model the document holds.
    public let kind: Kind
    /// The id to put before a sequence for causal evaluation, if the caller gave one or, for a
    /// byte-level BPE document, the post-processor names one (TemplateProcessing's first special
    /// token, RobertaProcessing's `cls`). Nil for WordPiece documents unless the caller gave one:
    /// a BERT template's [CLS] is not a BOS (see `specialTokenPrefix`). `encode` never adds it.
    public let bosTokenID: Int32?
    /// The ids `encodeWithSpecialTokens` puts before the text's ids: the special tokens before `$A`
    /// in the post-processor's "single" template (BERT: [CLS]); empty without a post-processor.
    /// With `specialTokenSuffix`, lets a caller truncate the middle and add them back.
    public let specialTokenPrefix: [Int32]
    /// The ids `encodeWithSpecialTokens` puts after the text's ids (BERT: [SEP]).
    public let specialTokenSuffix: [Int32]
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
        bertNormalizer = config.bertNormalizer
        wordPieceDecoder = config.wordPieceDecoder
        tokenUTF8 = _TokenStrings(config.tokens)
        addedIDs = Dictionary(config.addedTokens.map { (Array($0.content.utf8), $0.id) }, uniquingKeysWith: { a, _ in a })
        specialIDs = Set(config.addedTokens.filter(\.special).map(\.id))
        rawMatcher = _AddedTokenMatcher(config.addedTokens.filter { !$0.normalized }, nfc: false)
        let templateBOS: Int32?
        switch config.model {
        case .bpe:
            kind = .bytePairs
            tokenBytes = _TokenStrings(config.tokens, transform: _ByteLevel.decode)
            normalizedMatcher = _AddedTokenMatcher(config.addedTokens.filter(\.normalized), nfc: config.normalizeNFC)
            templateBOS = config.templateBOS
        case .wordPiece:
            kind = .wordPiece
            tokenBytes = tokenUTF8
            let bert = config.bertNormalizer
            normalizedMatcher = _AddedTokenMatcher(config.addedTokens.filter(\.normalized),
                                                   normalize: { bert?.normalize($0) ?? $0 })
            templateBOS = nil
        }
        vocabularySize = Int(config.tokens.keys.max() ?? -1) + 1
        let bos = bosTokenID ?? templateBOS
        let bosField = bosTokenID == nil ? "post_processor" : "bosTokenID"
        for (field, id) in [(bosField, bos), ("eosTokenID", eosTokenID)] {
            if let id, config.tokens[id] == nil {
                throw TokenizerError.invalidValue(field: field, reason: "id \(id) is not a token of this tokenizer")
            }
        }
        for id in config.specialPrefix + config.specialSuffix where config.tokens[id] == nil {
            throw TokenizerError.invalidValue(field: "post_processor", reason: "id \(id) is not a token of this tokenizer")
        }
        specialTokenPrefix = config.specialPrefix
        specialTokenSuffix = config.specialSuffix
        self.bosTokenID = bos
        self.eosTokenID = eosTokenID
    }

    /// Token ids for `text`, without BOS/EOS or other special tokens of the post-processor.
    ///
    /// Added tokens (e.g. `<|endoftext|>`, `[MASK]`) written in the text become their ids; the rest
    /// is normalized, pre-tokenized into words and each word merged by BPE or cut by WordPiece.
    /// Complexity: O(n log n) in the text length (BPE; repeated words hit a cache), O(n) for
    /// WordPiece (words over `max_input_chars_per_word` scalars are not scanned).
    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3)
        var buffer: [UInt8] = []
        for segment in rawMatcher.split(Array(text.unicodeScalars)) {
            switch segment {
            case let .token(id):
                out.append(id)
            case let .text(raw):
                switch model {
                case let .bpe(bpe):
                    let normalized = normalizeNFC ? _nfc(raw) : raw
                    for inner in normalizedMatcher.split(normalized) {
                        switch inner {
                        case let .token(id): out.append(id)
                        case let .text(piece): encodePiece(piece, bpe, buffer: &buffer, into: &out)
                        }
                    }
                case let .wordPiece(wordPiece):
                    let normalized = bertNormalizer?.normalize(raw) ?? raw
                    for inner in normalizedMatcher.split(normalized) {
                        switch inner {
                        case let .token(id): out.append(id)
                        case let .text(piece): encodeWords(piece, wordPiece, into: &out)
                        }
                    }
                }
            }
        }
        return out
    }

    /// Token ids for `text` with the special tokens the document's post-processor adds to a single
    /// sequence: `specialTokenPrefix + encode(text) + specialTokenSuffix`, Hugging Face's
    /// `encode(text, add_special_tokens=True).ids` without truncation or padding. BERT:
    /// [CLS] ... [SEP]; a Llama-3 style template: its BOS first; no post-processor: `encode(text)`.
    public func encodeWithSpecialTokens(_ text: String) -> [Int32] {
        specialTokenPrefix + encode(text) + specialTokenSuffix
    }

    /// Text for `ids`. Byte-level BPE: their bytes joined, then decoded as UTF-8 with invalid
    /// sequences replaced by U+FFFD. WordPiece: the token strings joined by the WordPiece decoder
    /// (a space between words, continuations such as "##ing" glued on, " ." -> "." and the other
    /// cleanups of Hugging Face's decoder; without a decoder, joined with spaces). Ids that are not
    /// tokens contribute nothing.
    /// - Parameter skipSpecialTokens: leave out special added tokens such as `<|endoftext|>`, [CLS].
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        if kind == .wordPiece {
            var tokens: [String] = []
            for id in ids where !(skipSpecialTokens && specialIDs.contains(id)) {
                if let t = tokenUTF8[id] { tokens.append(String(decoding: t, as: UTF8.self)) }
            }
            return wordPieceDecoder?.decode(tokens) ?? tokens.joined(separator: " ")
        }
        var bytes: [UInt8] = []
        for id in ids where !(skipSpecialTokens && specialIDs.contains(id)) {
            if let b = tokenBytes[id] { bytes.append(contentsOf: b) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes one id stands for (empty for an unknown id); possibly part of a UTF-8
    /// character. See `TokenStreamDecoder` for printing generated text as it comes. For a
    /// WordPiece document: the UTF-8 of the token string as written ("##ing"), since spacing
    /// depends on the neighbouring tokens (use `decode`).
    public func decodeBytes(_ id: Int32) -> [UInt8] {
        tokenBytes[id].map(Array.init) ?? []
    }

    /// The id of a vocabulary entry or added token, given as it is written in tokenizer.json
    /// (byte-level form, e.g. "Ġthe", or "<|endoftext|>"; WordPiece: "##ing", "[CLS]").
    public func tokenID(_ token: String) -> Int32? {
        let utf8 = Array(token.utf8)
        if let id = addedIDs[utf8] { return id }
        switch model {
        case let .bpe(bpe): return bpe.vocab.id(utf8)
        case let .wordPiece(wordPiece): return wordPiece.vocab.id(utf8)
        }
    }

    /// The token string of an id as tokenizer.json writes it, or nil for an unknown id.
    public func token(_ id: Int32) -> String? {
        tokenUTF8[id].map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `id` is a special added token (skipped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int32) -> Bool {
        specialIDs.contains(id)
    }

    /// Pre-tokenizes one stretch of normalized text between added tokens (BertPreTokenizer) and
    /// appends the WordPiece ids of its words.
    private func encodeWords(_ piece: [Unicode.Scalar], _ model: _WordPieceModel, into out: inout [Int32]) {
        var words: [Range<Int>] = []
        _bertPreTokenize(piece, into: &words)
        var bytes: [UInt8] = []
        var starts: [Int] = []
        for word in words {
            bytes.removeAll(keepingCapacity: true)
            starts.removeAll(keepingCapacity: true)
            if word.count > model.maxInputCharsPerWord {
                out.append(model.unkID)
                continue
            }
            for s in piece[word] {
                starts.append(bytes.count)
                _appendUTF8(s, to: &bytes)
            }
            model.encodeWord(bytes, starts: starts, into: &out)
        }
    }

    /// Pre-tokenizes one stretch of text between added tokens and appends the BPE ids of its words.
    private func encodePiece(_ piece: [Unicode.Scalar], _ model: _BPEModel, buffer: inout [UInt8], into out: inout [Int32]) {
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
