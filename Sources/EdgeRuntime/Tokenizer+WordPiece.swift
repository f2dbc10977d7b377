/// The WordPiece model of a `tokenizer.json` ("model": {"type": "WordPiece", ...}) as BERT-family
/// models use it: each pre-tokenized word is cut greedily into the longest vocabulary entries from
/// the left, pieces after the first written with `continuing_subword_prefix` ("##").
final class _WordPieceModel: Sendable {
    /// Token string (UTF-8) -> id, every vocabulary entry.
    let vocab: _VocabIndex
    /// Entries that start with the continuing-subword prefix, keyed by what follows the prefix.
    private let continuations: _VocabIndex
    let unkID: Int32
    /// Words with more scalars than this become `unkID` whole.
    let maxInputCharsPerWord: Int

    init(vocab: [[UInt8]: Int32], prefix: [UInt8], unkID: Int32, maxInputCharsPerWord: Int) {
        self.vocab = _VocabIndex(vocab)
        var continuations: [[UInt8]: Int32] = [:]
        for (token, id) in vocab where token.count >= prefix.count && token.starts(with: prefix) {
            continuations[Array(token[prefix.count...])] = id
        }
        self.continuations = _VocabIndex(continuations)
        self.unkID = unkID
        self.maxInputCharsPerWord = maxInputCharsPerWord
    }

    /// Appends the ids of one word (UTF-8 bytes; `starts` holds the byte offset of each of its
    /// scalars). A word that cannot be cut into vocabulary entries becomes one `unkID`, as in
    /// Hugging Face's `WordPiece::tokenize`.
    func encodeWord(_ word: [UInt8], starts: [Int], into out: inout [Int32]) {
        guard !word.isEmpty else { return }
        if starts.count > maxInputCharsPerWord {
            out.append(unkID)
            return
        }
        let mark = out.count
        var first = 0  // index in `starts` of the scalar the next piece begins with
        while first < starts.count {
            let begin = starts[first]
            let table = first == 0 ? vocab : continuations
            let longest = table.longestKey  // longer candidates are skipped
            // Try the longest candidate first, one scalar shorter each time.
            var last = starts.count  // piece = scalars first..<last
            var found: Int32?
            while last > first {
                let end = last == starts.count ? word.count : starts[last]
                if end - begin <= longest, let id = table.id(word[begin..<end]) {
                    found = id
                    break
                }
                last -= 1
            }
            guard let id = found else {
                out.removeSubrange(mark...)
                out.append(unkID)
                return
            }
            out.append(id)
            first = last
        }
    }
}

/// Hugging Face's `WordPiece` decoder: tokens after the first are glued on when they start with the
/// prefix (which is removed) and joined with a space otherwise; with `cleanup`, each token (with the
/// space put before it) has the tokenization artifacts of `_wordPieceCleanup` undone.
struct _WordPieceDecoder {
    var prefix: String
    var cleanup: Bool

    func decode(_ tokens: [String]) -> String {
        var out = ""
        for (i, token) in tokens.enumerated() {
            var t = token
            if i != 0 {
                if t.utf8.starts(with: prefix.utf8) {  // always, for an empty prefix (Rust's strip_prefix)
                    t = String(decoding: t.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
                } else {
                    t = " " + t
                }
            }
            if cleanup { t = _wordPieceCleanup(t) }
            out += t
        }
        return out
    }
}

/// The replacements of Hugging Face's `decoders::wordpiece::cleanup`, in its order, on UTF-8 bytes.
func _wordPieceCleanup(_ s: String) -> String {
    var bytes = Array(s.utf8)
    guard bytes.contains(0x20) else { return s }
    for (from, to) in _cleanupRules {
        bytes = _replaceAll(bytes, from, to)
    }
    return String(decoding: bytes, as: UTF8.self)
}

private let _cleanupRules: [([UInt8], [UInt8])] = [
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
    (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
].map { (Array($0.0.utf8), Array($0.1.utf8)) }

/// Non-overlapping occurrences of `from` replaced left to right (Rust's `str::replace`).
private func _replaceAll(_ s: [UInt8], _ from: [UInt8], _ to: [UInt8]) -> [UInt8] {
    guard s.count >= from.count else { return s }
    var out: [UInt8] = []
    out.reserveCapacity(s.count)
    var i = 0
    while i < s.count {
        if s[i] == from[0], i + from.count <= s.count, s[i..<(i + from.count)].elementsEqual(from) {
            out.append(contentsOf: to)
            i += from.count
        } else {
            out.append(s[i])
            i += 1
        }
    }
    return out
}
