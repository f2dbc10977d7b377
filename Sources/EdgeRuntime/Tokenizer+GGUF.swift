import Foundation

extension Tokenizer {
    /// Llama-3's pre-tokenizer regex (llama.cpp's `llama-bpe`).
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The tokenizer.json document equivalent to a GGUF file's tokenizer metadata, for
    /// `Tokenizer(json:)`: a GGUF holds the same vocabulary and merges, and names its
    /// pre-tokenizer instead of describing it.
    ///
    /// - Parameters:
    ///   - model: `tokenizer.ggml.model`; only "gpt2" (byte-level BPE) is supported.
    ///   - pre: `tokenizer.ggml.pre`: "gpt-2", "smollm", or "llama-bpe" / "llama3" / "llama-v3".
    ///   - tokens: `tokenizer.ggml.tokens`, in id order.
    ///   - tokenTypes: `tokenizer.ggml.token_type` (empty: all normal). Control tokens (3) become
    ///     special added tokens, user-defined ones (4) plain added tokens.
    ///   - merges: `tokenizer.ggml.merges`, "a b" strings.
    /// - Throws: `TokenizerError` (source "GGUF") for another model or pre-tokenizer, or
    ///   mismatched counts.
    public static func tokenizerJSON(ggufModel model: String, pre: String, tokens: [String],
                                     tokenTypes: [Int32], merges: [String]) throws -> Data {
        let source = "GGUF"
        guard model == "gpt2" else {
            throw TokenizerError.unsupported(source: source, field: "tokenizer.ggml.model", value: model)
        }
        guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
            throw TokenizerError.invalidValue(
                source: source, field: "tokenizer.ggml.token_type",
                reason: "\(tokenTypes.count) entries for \(tokens.count) tokens")
        }
        let byteLevel = #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": "#
        let preTokenizer: String
        var ignoreMerges = false
        switch pre {
        case "gpt-2":
            preTokenizer = byteLevel + "true}"
        case "smollm":
            preTokenizer = #"{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, "#
                + byteLevel + "true}]}"
        case "llama-bpe", "llama3", "llama-v3":
            var pattern = ""
            _appendJSONString(llama3Pattern, to: &pattern)
            preTokenizer = #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "#
                + pattern + #"}, "behavior": "Isolated", "invert": false}, "# + byteLevel + "false}]}"
            ignoreMerges = true
        default:
            throw TokenizerError.unsupported(source: source, field: "tokenizer.ggml.pre", value: pre)
        }
        var added: [String] = []
        var vocab = ""
        vocab.reserveCapacity(tokens.count * 16)
        for (i, token) in tokens.enumerated() {
            var quoted = ""
            _appendJSONString(token, to: &quoted)
            if i > 0 { vocab += ", " }
            vocab += quoted + ": \(i)"
            let type = tokenTypes.isEmpty ? 1 : tokenTypes[i]
            if type == 3 || type == 4 {
                added.append(#"{"id": \#(i), "content": \#(quoted), "single_word": false, "lstrip": false, "#
                    + #""rstrip": false, "normalized": false, "special": \#(type == 3)}"#)
            }
        }
        var mergeList = ""
        mergeList.reserveCapacity(merges.count * 12)
        for (i, merge) in merges.enumerated() {
            if i > 0 { mergeList += ", " }
            _appendJSONString(merge, to: &mergeList)
        }
        let document = #"{"version": "1.0", "added_tokens": ["# + added.joined(separator: ", ") + "], "
            + #""normalizer": null, "pre_tokenizer": "# + preTokenizer + ", "
            + #""decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}, "#
            + #""model": {"type": "BPE", "ignore_merges": \#(ignoreMerges), "vocab": {"# + vocab
            + "}, \"merges\": [" + mergeList + "]}}"
        return Data(document.utf8)
    }
}
