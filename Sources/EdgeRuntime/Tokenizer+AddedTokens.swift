/// A stretch of input after added tokens have been split out.
enum _Segment {
    /// Text to normalize and pre-tokenize.
    case text([Unicode.Scalar])
    /// An added token found in the text.
    case token(Int32)
}

/// Finds added tokens in text the way Hugging Face's `AddedVocabulary` does: exact matches,
/// leftmost first and the longest at that position, never overlapping; then `single_word`,
/// `lstrip` and `rstrip` are applied.
struct _AddedTokenMatcher {
    private struct Entry {
        var id: Int32
        var content: [Unicode.Scalar]
        var singleWord: Bool
        var lstrip: Bool
        var rstrip: Bool
    }

    /// First scalar value -> tokens starting with it, longest first.
    private let byFirst: [UInt32: [Entry]]

    /// - Parameter nfc: match the NFC form of the contents (tokens matched on normalized text).
    init(_ tokens: [_AddedToken], nfc: Bool) {
        self.init(tokens, normalize: nfc ? _nfc : { $0 })
    }

    /// - Parameter normalize: what the document's normalizer makes of a token's content (tokens
    ///   matched on normalized text are looked for in that form).
    init(_ tokens: [_AddedToken], normalize: ([Unicode.Scalar]) -> [Unicode.Scalar]) {
        var table: [UInt32: [Entry]] = [:]
        for t in tokens {
            let content = normalize(Array(t.content.unicodeScalars))
            guard let first = content.first else { continue }
            table[first.value, default: []].append(
                Entry(id: t.id, content: content, singleWord: t.singleWord, lstrip: t.lstrip, rstrip: t.rstrip))
        }
        for key in table.keys {
            // Stable: equal lengths keep their tokenizer.json order.
            table[key] = table[key]!.enumerated()
                .sorted { ($0.element.content.count, -$0.offset) > ($1.element.content.count, -$1.offset) }
                .map(\.element)
        }
        byFirst = table
    }

    /// Splits `s` into text and added tokens; empty text segments are left out.
    func split(_ s: [Unicode.Scalar]) -> [_Segment] {
        if s.isEmpty { return [] }
        if byFirst.isEmpty { return [.text(s)] }
        let n = s.count
        var out: [_Segment] = []
        var textStart = 0
        var i = 0
        while i < n {
            guard let candidates = byFirst[s[i].value],
                  let entry = candidates.first(where: { e in
                      i + e.content.count <= n && s[i..<(i + e.content.count)].elementsEqual(e.content)
                  })
            else {
                i += 1
                continue
            }
            var start = i
            var stop = i + entry.content.count
            if entry.singleWord {
                let startsWord = start == 0 || !_isWordCharacter(s[start - 1])
                let endsWord = stop == n || !_isWordCharacter(s[stop])
                if !(startsWord && endsWord) {
                    i = stop  // the match is consumed even though it is not used
                    continue
                }
            }
            if entry.lstrip {
                while start > textStart, s[start - 1].properties.isWhitespace { start -= 1 }
            }
            if entry.rstrip {
                while stop < n, s[stop].properties.isWhitespace { stop += 1 }
            }
            if textStart < start { out.append(.text(Array(s[textStart..<start]))) }
            out.append(.token(entry.id))
            textStart = stop
            i = stop
        }
        if textStart < n { out.append(.text(Array(s[textStart...]))) }
        return out
    }
}
