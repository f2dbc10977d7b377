import Foundation

/// Builds a Hugging Face `tokenizer.json` document from a GGUF vocabulary, so every input carries
/// its tokenizer in one form. Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is converted.
///
/// The document mirrors what Hugging Face ships for GPT-2 / SmolLM2 / Llama-3 style tokenizers
/// (key order included): `added_tokens` from control tokens (`special: true`) and user-defined
/// tokens (`special: false`), no normalizer, a pre-tokenizer chosen by `tokenizer.ggml.pre`,
/// ByteLevel post-processor and decoder, and a BPE model with the vocabulary in id order and the
/// merges in pair form (`[["a", "b"], ...]`). Output is deterministic (same vocabulary, same bytes).
public enum TokenizerJSON {
    /// GGUF token types (`tokenizer.ggml.token_type`).
    public enum TokenType: Int {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// The pre-tokenizer families llama.cpp distinguishes for byte-level BPE, as HF writes them.
    public enum PreTokenizer: Equatable, Sendable {
        /// GPT-2: `ByteLevel(add_prefix_space=false, use_regex=true)`.
        case gpt2
        /// StarCoder / SmolLM: `Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]`.
        case digitsByteLevel
        /// Llama 3: `Sequence[Split(llama-3 regex, Isolated), ByteLevel(use_regex=false)]`.
        case llama3

        /// The family for a `tokenizer.ggml.pre` name, or nil when the name is not known here.
        public init?(ggufName: String) {
            switch ggufName {
            case "gpt-2", "default": self = .gpt2
            case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b": self = .digitsByteLevel
            case "llama-bpe", "llama3", "llama-v3", "falcon3", "dbrx", "smaug-bpe": self = .llama3
            default: return nil
            }
        }
    }

    /// What `fromGGUF` made of a file's tokenizer metadata.
    public struct Result {
        /// The `tokenizer.json` document, nil when the file's tokenizer is absent or not convertible.
        public let json: Data?
        /// Why there is no document, or what was approximated (an unknown pre-tokenizer name); nil when exact.
        public let warning: String?
    }

    /// The Llama-3 pre-tokenizer split pattern (as in Meta-Llama-3's tokenizer.json).
    public static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Converts the `tokenizer.ggml.*` metadata of a GGUF file.
    /// - Returns: the document, or nil plus a warning for a missing or non-BPE tokenizer; an unknown
    ///   `tokenizer.ggml.pre` falls back to GPT-2 pre-tokenization with a warning naming it.
    /// - Throws: `CheckpointError.badConfig` naming the key when tokens, token types or merges are
    ///   missing, of the wrong type, of inconsistent length, or malformed.
    public static func fromGGUF(_ metadata: [String: GGUFValue], file: String) throws -> Result {
        guard let modelValue = metadata["tokenizer.ggml.model"] else {
            return Result(json: nil, warning: "the GGUF file has no tokenizer (no tokenizer.ggml.model)")
        }
        guard let model = modelValue.string else {
            throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.model", why: "is a \(modelValue.typeName), expected a string")
        }
        guard model == "gpt2" else {
            let kind = model == "llama" ? " (SentencePiece)" : ""
            return Result(json: nil, warning: "GGUF tokenizer model '\(model)'\(kind) is not converted (only byte-level BPE 'gpt2' is); the output has no tokenizer")
        }
        let tokens = try strings(metadata, "tokenizer.ggml.tokens", file: file)
        guard !tokens.isEmpty else {
            throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.tokens", why: "is empty")
        }
        let merges = try strings(metadata, "tokenizer.ggml.merges", file: file)
        var types: [Int]? = nil
        if let tv = metadata["tokenizer.ggml.token_type"] {
            guard let a = tv.array else {
                throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.token_type", why: "is a \(tv.typeName), expected an array of integers")
            }
            var t: [Int] = []
            t.reserveCapacity(a.count)
            for (i, v) in a.enumerated() {
                guard let x = v.int else {
                    throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.token_type", why: "element \(i) is a \(v.typeName), expected an integer")
                }
                t.append(x)
            }
            guard t.count == tokens.count else {
                throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.token_type",
                                                why: "has \(t.count) entries but tokenizer.ggml.tokens has \(tokens.count)")
            }
            types = t
        }
        let preName = metadata["tokenizer.ggml.pre"]?.string ?? "default"
        let pre = PreTokenizer(ggufName: preName)
        let warning = pre == nil ? "unknown tokenizer.ggml.pre '\(preName)': using GPT-2 pre-tokenization" : nil
        let pairs = try splitMerges(merges, file: file)
        // llama.cpp adds BOS when tokenizer.ggml.add_bos_token is true (Llama 2/3, TinyLlama); the
        // document says so with a TemplateProcessing post-processor, which the runtime reads.
        var bos: Int?
        if case .bool(true)? = metadata["tokenizer.ggml.add_bos_token"] {
            guard let id = metadata["tokenizer.ggml.bos_token_id"]?.int, tokens.indices.contains(id) else {
                throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.bos_token_id",
                                                why: "is missing or outside the vocabulary, but tokenizer.ggml.add_bos_token is true")
            }
            bos = id
        }
        return Result(json: byteLevelBPE(tokens: tokens, tokenTypes: types, merges: pairs, preTokenizer: pre ?? .gpt2, addBOS: bos),
                      warning: warning)
    }

    /// The `tokenizer.json` document of a byte-level BPE vocabulary.
    /// - Parameters:
    ///   - tokens: token strings by id (byte-level alphabet, e.g. "Ġthe").
    ///   - tokenTypes: GGUF token types by id (nil: all normal).
    ///   - merges: merge pairs in rank order.
    ///   - preTokenizer: the pre-tokenizer family.
    /// A token string that occurs twice keeps its first id in `vocab`.
    ///   - addBOS: the id of a BOS token every encoding starts with (a TemplateProcessing post-processor), or nil.
    public static func byteLevelBPE(tokens: [String], tokenTypes: [Int]?, merges: [(String, String)],
                                    preTokenizer: PreTokenizer, addBOS: Int? = nil) -> Data {
        var w = JSONWriter()
        w.raw(#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":["#)
        var first = true
        for (id, tok) in tokens.enumerated() {
            let t = tokenTypes.map { $0[id] }
            guard t == TokenType.control.rawValue || t == TokenType.userDefined.rawValue else { continue }
            let special = t == TokenType.control.rawValue
            if !first { w.raw(",") }
            first = false
            w.raw(#"{"id":\#(id),"content":"#)
            w.string(tok)
            w.raw(#","single_word":false,"lstrip":false,"rstrip":false,"normalized":\#(!special),"special":\#(special)}"#)
        }
        w.raw(#"],"normalizer":null,"pre_tokenizer":"#)
        let byteLevel = #"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#
        switch preTokenizer {
        case .gpt2:
            w.raw(byteLevel)
        case .digitsByteLevel:
            w.raw(#"{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},\#(byteLevel)]}"#)
        case .llama3:
            w.raw(#"{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"#)
            w.string(llama3Pattern)
            w.raw(#"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}"#)
        }
        let byteLevelPost = #"{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}"#
        if let bos = addBOS {
            w.raw(#","post_processor":{"type":"Sequence","processors":[\#(byteLevelPost),{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"#)
            w.string(tokens[bos])
            w.raw(#","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"#)
            w.string(tokens[bos])
            w.raw(#","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"#)
            w.string(tokens[bos])
            w.raw(#","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"#)
            w.string(tokens[bos])
            w.raw(#":{"id":"#)
            w.string(tokens[bos])
            w.raw(#","ids":[\#(bos)],"tokens":["#)
            w.string(tokens[bos])
            w.raw("]}}}]}")
        } else {
            w.raw(#","post_processor":"# + byteLevelPost)
        }
        w.raw(#","decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}"#)
        w.raw(#","model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":\#(preTokenizer == .llama3),"vocab":{"#)
        var seen = Set<String>()
        seen.reserveCapacity(tokens.count)
        first = true
        for (id, tok) in tokens.enumerated() where seen.insert(tok).inserted {
            if !first { w.raw(",") }
            first = false
            w.string(tok)
            w.raw(":\(id)")
        }
        w.raw(#"},"merges":["#)
        for (i, (a, b)) in merges.enumerated() {
            w.raw(i == 0 ? "[" : ",[")
            w.string(a)
            w.raw(",")
            w.string(b)
            w.raw("]")
        }
        w.raw("]}}")
        return Data(w.bytes)
    }

    // MARK: - Helpers

    private static func strings(_ metadata: [String: GGUFValue], _ key: String, file: String) throws -> [String] {
        guard let v = metadata[key] else { throw CheckpointError.badConfig(file: file, field: key, why: "is missing") }
        guard let a = v.array else { throw CheckpointError.badConfig(file: file, field: key, why: "is a \(v.typeName), expected an array of strings") }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for (i, e) in a.enumerated() {
            guard let s = e.string else {
                throw CheckpointError.badConfig(file: file, field: key, why: "element \(i) is a \(e.typeName), expected a string")
            }
            out.append(s)
        }
        return out
    }

    /// Splits GGUF merges ("a b") at the first space after the first character, as llama.cpp does.
    private static func splitMerges(_ merges: [String], file: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() {
            let u = m.utf8
            guard let first = u.first, first != UInt8(ascii: " "),
                  let sp = u.dropFirst().firstIndex(of: UInt8(ascii: " ")) else {
                throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.merges", why: "entry \(i) '\(m)' is not of the form 'left right'")
            }
            let right = u.index(after: sp)
            guard right != u.endIndex else {
                throw CheckpointError.badConfig(file: file, field: "tokenizer.ggml.merges", why: "entry \(i) '\(m)' has an empty right side")
            }
            out.append((String(m[..<sp]), String(m[right...])))
        }
        return out
    }
}

/// Minimal JSON text builder: raw fragments plus correctly escaped strings (RFC 8259).
private struct JSONWriter {
    var bytes: [UInt8] = []

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x00 ..< 0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += Array(#"\u00"#.utf8) + [hex[Int(c >> 4)], hex[Int(c & 0x0F)]]
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
