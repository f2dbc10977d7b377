import EdgeFormat

/// A JSON object with its dotted path, so every error names the field it is about.
struct _JSONObject {
    let members: [(key: [UInt8], value: RawJSON)]
    let path: String

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value, or nil when the key is absent or null (the last one if repeated).
    func value(_ key: String) -> RawJSON? {
        let k = Array(key.utf8)
        guard let v = members.last(where: { $0.key == k })?.value else { return nil }
        if case .null = v { return nil }
        return v
    }

    private func wrongType(_ key: String, _ expected: String) -> TokenizerError {
        TokenizerError.wrongType(field: field(key), expected: expected)
    }

    func object(_ key: String) throws -> _JSONObject? {
        guard let v = value(key) else { return nil }
        guard case let .object(m) = v else { throw wrongType(key, "an object") }
        return _JSONObject(members: m, path: field(key))
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case let .string(bytes) = v else { throw wrongType(key, "a string") }
        return String(decoding: bytes, as: UTF8.self)
    }

    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw TokenizerError.missingField(field: field(key)) }
        return s
    }

    func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let v = value(key) else { return defaultValue }
        guard case let .bool(b) = v else { throw wrongType(key, "true or false") }
        return b
    }

    func array(_ key: String) throws -> [RawJSON]? {
        guard let v = value(key) else { return nil }
        guard case let .array(a) = v else { throw wrongType(key, "an array") }
        return a
    }

    /// Element `index` of array `key` as an object.
    func element(_ a: [RawJSON], _ key: String, _ index: Int) throws -> _JSONObject {
        let f = "\(field(key))[\(index)]"
        guard case let .object(m) = a[index] else {
            throw TokenizerError.wrongType(field: f, expected: "an object")
        }
        return _JSONObject(members: m, path: f)
    }

    /// A token id: an integer in 0...Int32.max.
    /// - Parameter f: the field's path, built only for an error.
    func id(_ v: RawJSON?, field f: @autoclosure () -> String) throws -> Int32 {
        guard case let .int(n) = v else {
            throw TokenizerError.wrongType(field: f(), expected: "an integer token id")
        }
        guard let id = Int32(exactly: n), id >= 0 else {
            throw TokenizerError.invalidValue(field: f(), reason: "token id \(n) is out of range 0...\(Int32.max)")
        }
        return id
    }
}

/// An entry of `added_tokens`.
struct _AddedToken {
    var id: Int32
    var content: String
    var singleWord: Bool
    var lstrip: Bool
    var rstrip: Bool
    /// Matched against the normalized text (true) or the raw text (false).
    var normalized: Bool
    var special: Bool
}

/// The model of a tokenizer.json document.
enum _TokenizerModel {
    case bpe(_BPEModel)
    case wordPiece(_WordPieceModel)
}

/// Everything `Tokenizer` needs, read and checked from a tokenizer.json document.
struct _TokenizerConfig {
    var model: _TokenizerModel
    /// id -> UTF-8 bytes of the token string, from the model vocabulary with added tokens overriding.
    var tokens: [Int32: [UInt8]] = [:]
    var addedTokens: [_AddedToken] = []
    // Byte-level BPE documents.
    var normalizeNFC = false
    var splitSteps: [_SplitStep] = []
    var addPrefixSpace = false
    var useRegex = false
    // WordPiece documents.
    /// The BertNormalizer, or nil for "normalizer": null.
    var bertNormalizer: _BertNormalizer?
    /// The WordPiece decoder, or nil for "decoder": null (tokens joined with spaces).
    var wordPieceDecoder: _WordPieceDecoder?
    /// First special token of a TemplateProcessing post-processor's "single" template, if any.
    var templateBOS: Int32?
    /// The ids the post-processor puts before and after a single sequence.
    var specialPrefix: [Int32] = []
    var specialSuffix: [Int32] = []

    init(json: [UInt8]) throws {
        let parsed: RawJSON
        do {
            // Nesting beyond 64 levels is refused: no tokenizer.json comes near it.
            parsed = try json.withUnsafeBytes { try RawJSON.parse($0, maxDepth: 64, uniqueKeys: false) }
        } catch let e as JSONParseError {
            throw TokenizerError.invalidJSON(reason: "\(e.why) at byte \(e.offset)")
        }
        guard case let .object(members) = parsed else {
            throw TokenizerError.invalidJSON(reason: "the top level is not an object")
        }
        let root = _JSONObject(members: members, path: "")
        let modelObject = try root.object("model")
        if let modelObject, try modelObject.string("type") == "WordPiece" {
            model = try Self.wordPiece(root, modelObject, tokens: &tokens, bert: &bertNormalizer,
                                       decoder: &wordPieceDecoder)
        } else {
            model = .bpe(try Self.bytePairs(root, modelObject, tokens: &tokens, normalizeNFC: &normalizeNFC,
                                            splitSteps: &splitSteps, addPrefixSpace: &addPrefixSpace,
                                            useRegex: &useRegex))
        }

        if let list = try root.array("added_tokens") {
            for i in list.indices {
                let t = try root.element(list, "added_tokens", i)
                let content = try t.requiredString("content")
                let token = _AddedToken(
                    id: try t.id(t.value("id"), field: t.field("id")), content: content,
                    singleWord: try t.bool("single_word", default: false),
                    lstrip: try t.bool("lstrip", default: false), rstrip: try t.bool("rstrip", default: false),
                    normalized: try t.bool("normalized", default: true), special: try t.bool("special", default: false))
                if content.isEmpty { continue }  // Hugging Face ignores empty added tokens
                addedTokens.append(token)
                tokens[token.id] = Array(content.utf8)
            }
        }
        let post = try root.object("post_processor")
        templateBOS = try Self.templateBOS(post)
        (specialPrefix, specialSuffix) = try Self.specialTokens(post)
    }

    /// The parts of a byte-level BPE document: normalizer, pre-tokenizer, decoder and model.
    private static func bytePairs(
        _ root: _JSONObject, _ modelObject: _JSONObject?, tokens: inout [Int32: [UInt8]], normalizeNFC: inout Bool,
        splitSteps: inout [_SplitStep], addPrefixSpace: inout Bool, useRegex: inout Bool
    ) throws -> _BPEModel {
        // Components other than the model first: they are cheap to check and most likely to be refused.
        normalizeNFC = try Self.normalizer(root.object("normalizer"))
        let pre = try root.object("pre_tokenizer")
        guard let pre else { throw TokenizerError.missingField(field: "pre_tokenizer") }
        var steps: [(_JSONObject, String)] = []
        try Self.flatten(pre, into: &steps)
        for (step, type) in steps where !["ByteLevel", "Digits", "Split"].contains(type) {
            throw TokenizerError.unsupported(field: step.field("type"), value: type)
        }
        guard let last = steps.last, last.1 == "ByteLevel" else {
            throw TokenizerError.unsupported(
                field: "pre_tokenizer",
                value: steps.map(\.1).joined(separator: ", ") + " (byte-level BPE needs ByteLevel as the last step)")
        }
        splitSteps = []
        for (step, type) in steps.dropLast() {
            switch type {
            case "Digits":
                let individual = try step.bool("individual_digits", default: false)
                splitSteps.append(_SplitStep(pattern: .numeric, behavior: individual ? .isolated : .contiguous, invert: false))
            case "Split":
                splitSteps.append(try Self.split(step))
            default:  // "ByteLevel" before the last step
                throw TokenizerError.unsupported(field: step.field("type"),
                                                 value: "\(type) before the last pre-tokenizer step")
            }
        }
        addPrefixSpace = try last.0.bool("add_prefix_space", default: true)
        useRegex = try last.0.bool("use_regex", default: true)

        if let decoder = try root.object("decoder") {
            let type = try decoder.requiredString("type")
            guard type == "ByteLevel" else {
                throw TokenizerError.unsupported(field: decoder.field("type"), value: type)
            }
        }

        guard let model = modelObject else {
            throw TokenizerError.missingField(field: "model")
        }
        let (bpe, vocabTokens) = try Self.bpe(model)
        tokens = vocabTokens
        return bpe
    }

    /// The parts of a WordPiece (BERT) document: BertNormalizer (or none), BertPreTokenizer,
    /// WordPiece decoder (or none) and the WordPiece model.
    private static func wordPiece(
        _ root: _JSONObject, _ m: _JSONObject, tokens: inout [Int32: [UInt8]], bert: inout _BertNormalizer?,
        decoder: inout _WordPieceDecoder?
    ) throws -> _TokenizerModel {
        if let n = try root.object("normalizer") {
            let type = try n.requiredString("type")
            guard type == "BertNormalizer" else {
                throw TokenizerError.unsupported(field: n.field("type"), value: type)
            }
            let lowercase = try n.bool("lowercase", default: true)
            bert = _BertNormalizer(
                cleanText: try n.bool("clean_text", default: true),
                handleChineseChars: try n.bool("handle_chinese_chars", default: true),
                stripAccents: try n.bool("strip_accents", default: lowercase),  // null follows lowercase
                lowercase: lowercase)
        }
        guard let pre = try root.object("pre_tokenizer") else {
            throw TokenizerError.missingField(field: "pre_tokenizer")
        }
        let preType = try pre.requiredString("type")
        guard preType == "BertPreTokenizer" else {
            throw TokenizerError.unsupported(field: pre.field("type"), value: preType)
        }
        if let d = try root.object("decoder") {
            let type = try d.requiredString("type")
            guard type == "WordPiece" else {
                throw TokenizerError.unsupported(field: d.field("type"), value: type)
            }
            decoder = _WordPieceDecoder(prefix: try d.string("prefix") ?? "##",
                                        cleanup: try d.bool("cleanup", default: true))
        }

        guard let vocabObject = try m.object("vocab") else {
            throw TokenizerError.missingField(field: m.field("vocab"))
        }
        var vocab: [[UInt8]: Int32] = [:]
        vocab.reserveCapacity(vocabObject.members.count)
        tokens.reserveCapacity(vocabObject.members.count)
        for (token, value) in vocabObject.members {
            let id = try m.id(value, field: "\(vocabObject.path)[\(String(decoding: token, as: UTF8.self).debugDescription)]")
            vocab[token] = id
            tokens[id] = token
        }
        let unk = try m.string("unk_token") ?? "[UNK]"
        guard let unkID = vocab[Array(unk.utf8)] else {
            throw TokenizerError.invalidValue(field: m.field("unk_token"),
                                              reason: "\(unk.debugDescription) is not in the vocabulary")
        }
        var maxChars = 100
        if let v = m.value("max_input_chars_per_word") {
            guard case let .int(n) = v, n >= 0 else {
                throw TokenizerError.wrongType(field: m.field("max_input_chars_per_word"),
                                               expected: "a non-negative integer")
            }
            maxChars = Int(clamping: n)
        }
        let prefix = try m.string("continuing_subword_prefix") ?? "##"
        return .wordPiece(_WordPieceModel(vocab: vocab, prefix: Array(prefix.utf8), unkID: unkID,
                                          maxInputCharsPerWord: maxChars))
    }

    /// The ids a post-processor adds around a single sequence when asked to add special tokens:
    /// TemplateProcessing's "single" template (special tokens before and after `$A`), `cls` and
    /// `sep` of BertProcessing / RobertaProcessing, nothing for ByteLevel; a Sequence applies its
    /// processors in turn, each wrapping what the previous ones gave.
    private static func specialTokens(_ p: _JSONObject?) throws -> (prefix: [Int32], suffix: [Int32]) {
        guard let p else { return ([], []) }
        let type = try p.requiredString("type")
        switch type {
        case "Sequence":
            var prefix: [Int32] = [], suffix: [Int32] = []
            let list = try p.array("processors") ?? []
            for i in list.indices {
                let (a, b) = try specialTokens(p.element(list, "processors", i))
                prefix = a + prefix
                suffix += b
            }
            return (prefix, suffix)
        case "TemplateProcessing":
            guard let single = try p.array("single") else { return ([], []) }
            let map = try p.object("special_tokens")
            var prefix: [Int32] = [], suffix: [Int32] = []
            var seenSequence = false
            for i in single.indices {
                let item = try p.element(single, "single", i)
                if try item.object("Sequence") != nil {
                    seenSequence = true
                    continue
                }
                guard let special = try item.object("SpecialToken") else {
                    throw TokenizerError.wrongType(field: item.path, expected: "a SpecialToken or a Sequence")
                }
                let name = try special.requiredString("id")
                guard let entry = try map?.object(name) else {
                    throw TokenizerError.invalidValue(field: special.field("id"),
                                                      reason: "\(name.debugDescription) is not in special_tokens")
                }
                let ids = try entry.array("ids") ?? []
                let values = try ids.indices.map { try entry.id(ids[$0], field: "\(entry.field("ids"))[\($0)]") }
                if seenSequence { suffix += values } else { prefix += values }
            }
            return (prefix, suffix)
        case "RobertaProcessing", "BertProcessing":
            var out: [[Int32]] = []
            for key in ["cls", "sep"] {
                guard let pair = try p.array(key), pair.count == 2 else {
                    throw TokenizerError.wrongType(field: p.field(key), expected: "a [token, id] pair")
                }
                out.append([try p.id(pair[1], field: p.field(key) + "[1]")])
            }
            return (out[0], out[1])
        case "ByteLevel":
            return ([], [])
        default:
            throw TokenizerError.unsupported(field: p.field("type"), value: type)
        }
    }

    /// null, NFC, or a Sequence of NFC; returns whether NFC applies.
    private static func normalizer(_ n: _JSONObject?) throws -> Bool {
        guard let n else { return false }
        let type = try n.requiredString("type")
        switch type {
        case "NFC":
            return true
        case "Sequence":
            var nfc = false
            let list = try n.array("normalizers") ?? []
            for i in list.indices { nfc = try normalizer(n.element(list, "normalizers", i)) || nfc }
            return nfc
        default:
            throw TokenizerError.unsupported(field: n.field("type"), value: type)
        }
    }

    /// The pre-tokenizer steps in order, nested Sequences flattened.
    private static func flatten(_ p: _JSONObject, into steps: inout [(_JSONObject, String)]) throws {
        let type = try p.requiredString("type")
        if type == "Sequence" {
            let list = try p.array("pretokenizers") ?? []
            for i in list.indices { try flatten(p.element(list, "pretokenizers", i), into: &steps) }
        } else {
            steps.append((p, type))
        }
    }

    private static func split(_ step: _JSONObject) throws -> _SplitStep {
        guard let pattern = try step.object("pattern") else {
            throw TokenizerError.missingField(field: step.field("pattern"))
        }
        let behaviorName = try step.requiredString("behavior")
        guard let behavior = _SplitBehavior(rawValue: behaviorName) else {
            throw TokenizerError.unsupported(field: step.field("behavior"), value: behaviorName)
        }
        let invert = try step.bool("invert", default: false)
        if let literal = try pattern.string("String") {
            guard !literal.isEmpty else {
                throw TokenizerError.invalidValue(field: pattern.field("String"), reason: "empty pattern")
            }
            return _SplitStep(pattern: .literal(Array(literal.unicodeScalars)), behavior: behavior, invert: invert)
        }
        guard let regex = try pattern.string("Regex") else {
            throw TokenizerError.missingField(field: pattern.field("Regex"))
        }
        if regex == _gpt2Pattern { return _SplitStep(pattern: .gpt2, behavior: behavior, invert: invert) }
        do {
            let compiled = try Regex(_icuPattern(regex)).matchingSemantics(.unicodeScalar)
            return _SplitStep(pattern: .regex(compiled), behavior: behavior, invert: invert)
        } catch {
            throw TokenizerError.invalidValue(field: pattern.field("Regex"),
                                              reason: "the regex does not compile")
        }
    }

    /// The BPE model and its id -> token table.
    private static func bpe(_ m: _JSONObject) throws -> (_BPEModel, [Int32: [UInt8]]) {
        let type = try m.string("type") ?? "BPE"
        guard type == "BPE" else { throw TokenizerError.unsupported(field: m.field("type"), value: type) }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = try m.string(key), !v.isEmpty {
                throw TokenizerError.unsupported(field: m.field(key), value: v)
            }
        }
        if try m.bool("byte_fallback", default: false) {
            throw TokenizerError.unsupported(field: m.field("byte_fallback"), value: "true")
        }
        switch m.value("dropout") {
        case let .double(d) where d > 0: throw TokenizerError.unsupported(field: m.field("dropout"), value: "\(d)")
        case let .int(n) where n > 0: throw TokenizerError.unsupported(field: m.field("dropout"), value: "\(n)")
        default: break
        }
        guard let vocabObject = try m.object("vocab") else {
            throw TokenizerError.missingField(field: m.field("vocab"))
        }
        var vocab: [[UInt8]: Int32] = [:]
        vocab.reserveCapacity(vocabObject.members.count)
        var tokens: [Int32: [UInt8]] = [:]
        tokens.reserveCapacity(vocabObject.members.count)
        for (token, value) in vocabObject.members {
            let id = try m.id(value, field: "\(vocabObject.path)[\(String(decoding: token, as: UTF8.self).debugDescription)]")
            vocab[token] = id
            tokens[id] = token
        }

        var merges: [UInt64: _Merge] = [:]
        let mergeList = try m.array("merges") ?? []
        merges.reserveCapacity(mergeList.count)
        for (rank, entry) in mergeList.enumerated() {
            func f() -> String { "\(m.field("merges"))[\(rank)]" }
            func badMerge() -> TokenizerError {
                TokenizerError.wrongType(field: f(), expected: "\"a b\" or [\"a\", \"b\"]")
            }
            let l: [UInt8], r: [UInt8]
            switch entry {
            case let .string(line):
                guard let space = line.firstIndex(of: 0x20) else {
                    let text = String(decoding: line, as: UTF8.self)
                    throw TokenizerError.invalidValue(field: f(), reason: "merge \(text.debugDescription) has no space")
                }
                l = Array(line[..<space])
                r = Array(line[(space + 1)...])
            case let .array(pair) where pair.count == 2:
                guard case let .string(a) = pair[0], case let .string(b) = pair[1] else { throw badMerge() }
                l = a
                r = b
            default:
                throw badMerge()
            }
            guard let lid = vocab[l], let rid = vocab[r], let nid = vocab[l + r] else {
                let missing = String(decoding: vocab[l] == nil ? l : vocab[r] == nil ? r : l + r, as: UTF8.self)
                throw TokenizerError.invalidValue(field: f(),
                                                  reason: "\(missing.debugDescription) is not in the vocabulary")
            }
            // A repeated pair keeps its last rank, as Hugging Face's merge map does.
            merges[_BPEModel.pairKey(lid, rid)] = _Merge(rank: Int32(clamping: rank), id: nid)
        }

        var unkID: Int32?
        if let unk = try m.string("unk_token") {
            guard let id = vocab[Array(unk.utf8)] else {
                throw TokenizerError.invalidValue(field: m.field("unk_token"),
                                                  reason: "\(unk.debugDescription) is not in the vocabulary")
            }
            unkID = id
        }
        let model = _BPEModel(vocab: vocab, merges: merges, unkID: unkID,
                              fuseUnk: try m.bool("fuse_unk", default: false),
                              ignoreMerges: try m.bool("ignore_merges", default: false))
        return (model, tokens)
    }

    /// The id a post-processor puts first when asked to add special tokens: the first special token
    /// of TemplateProcessing's "single" template (Llama-3's `<|begin_of_text|>`), or the `cls` of
    /// RobertaProcessing / BertProcessing; searched through Sequence post-processors.
    private static func templateBOS(_ p: _JSONObject?) throws -> Int32? {
        guard let p else { return nil }
        switch try p.string("type") {
        case "Sequence":
            let list = try p.array("processors") ?? []
            for i in list.indices {
                if let id = try templateBOS(p.element(list, "processors", i)) { return id }
            }
            return nil
        case "TemplateProcessing":
            guard let single = try p.array("single"), !single.isEmpty,
                  let special = try p.element(single, "single", 0).object("SpecialToken"),
                  let name = try special.string("id"),
                  let map = try p.object("special_tokens"), let entry = try map.object(name),
                  let ids = try entry.array("ids"), let id = ids.first
            else { return nil }
            return try p.id(id, field: "\(entry.path).ids[0]")
        case "RobertaProcessing", "BertProcessing":
            guard let cls = try p.array("cls"), cls.count == 2 else { return nil }
            return try p.id(cls[1], field: p.field("cls") + "[1]")
        default:
            return nil
        }
    }
}
