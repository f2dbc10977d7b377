@_spi(_Unicode) import Swift

/// Hugging Face's `BertNormalizer` ("normalizer": {"type": "BertNormalizer", ...}), applied in its
/// order: clean the text, space out CJK ideographs, strip accents, lowercase.
struct _BertNormalizer {
    /// Drop U+0000, U+FFFD and control/format/private-use characters; turn whitespace into " ".
    var cleanText: Bool
    /// Put a space before and after every CJK ideograph (`_isChineseCharacter`).
    var handleChineseChars: Bool
    /// NFD, then drop nonspacing marks. `strip_accents: null` in tokenizer.json follows `lowercase`.
    var stripAccents: Bool
    /// Unicode lowercase mapping, one scalar at a time (full mappings: "İ" -> "i̇").
    var lowercase: Bool

    func normalize(_ input: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var s = input
        if cleanText {
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            for c in s {
                let v = c.value
                if v == 0 || v == 0xFFFD || _HFUnicode.isControl(c) { continue }
                out.append(_HFUnicode.isWhitespace(c) ? " " : c)
            }
            s = out
        }
        if handleChineseChars, s.contains(where: _isChineseCharacter) {
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count + 16)
            for c in s {
                if _isChineseCharacter(c) {
                    out.append(" ")
                    out.append(c)
                    out.append(" ")
                } else {
                    out.append(c)
                }
            }
            s = out
        }
        if stripAccents, !s.allSatisfy({ $0.value < 0x80 }) {
            s = _nfd(s).filter { !_HFUnicode.isNonspacingMark($0) }
        }
        if lowercase {
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            for c in s {
                let v = c.value
                if v < 0x80 {
                    out.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(UInt8(v + 0x20)) : c)
                } else if c.properties.changesWhenLowercased {
                    out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
                } else {
                    out.append(c)
                }
            }
            s = out
        }
        return s
    }
}

/// Hugging Face's `BertPreTokenizer`: splits on whitespace (removed) and on every punctuation
/// character (each one a word of its own). Appends the words' scalar ranges in `s`.
func _bertPreTokenize(_ s: [Unicode.Scalar], into words: inout [Range<Int>]) {
    var start = 0
    for (i, c) in s.enumerated() {
        if _HFUnicode.isWhitespace(c) {
            if start < i { words.append(start..<i) }
            start = i + 1
        } else if _HFUnicode.isPunctuation(c) {
            if start < i { words.append(start..<i) }
            words.append(i..<(i + 1))
            start = i + 1
        }
    }
    if start < s.count { words.append(start..<s.count) }
}

/// The CJK ideograph blocks of Hugging Face's `is_chinese_char` (Hangul, kana and CJK punctuation
/// are not among them).
func _isChineseCharacter(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
         0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
        return true
    default:
        return false
    }
}

/// NFD of a run of scalars, by the standard library's normalizer (no Foundation).
func _nfd(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
    if scalars.allSatisfy({ $0.value < 0xC0 }) { return scalars }  // nothing below U+00C0 decomposes
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    if #available(macOS 13.0, iOS 16.0, watchOS 9.0, tvOS 16.0, *) {
        return Array(String(view)._nfd)
    }
    // Older Apple systems lack the standard library's NFD: accented letters keep their accents.
    return scalars
}

/// The character classes Hugging Face's BERT components use, as its Rust code computes them.
///
/// Whitespace is Rust's `char::is_whitespace` (the Unicode White_Space property) plus \t \n \r.
/// Punctuation, control characters and nonspacing marks come from the `unicode_categories` crate,
/// whose tables are Unicode 8.0: characters assigned later have no category there (they are never
/// punctuation, control or marks), and the seven characters whose category changed since keep their
/// Unicode 8.0 one. Checked against `tokenizers` 0.23.3 for every code point (all-MiniLM-L6-v2,
/// each character alone and inside a word).
enum _HFUnicode {
    @inline(__always)
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return c.properties.isWhitespace
    }

    /// Categories Cc, Cf, Co (Cs cannot occur in a Swift string) as of Unicode 8.0, except \t \n \r.
    @inline(__always)
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return (v < 0x20 && v != 0x09 && v != 0x0A && v != 0x0D) || v == 0x7F }
        switch category(c) {
        case .control?, .format?, .privateUse?: return true
        default: return false
        }
    }

    /// ASCII punctuation (33-47, 58-64, 91-96, 123-126) or categories P* as of Unicode 8.0.
    @inline(__always)
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 {
            return (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126)
        }
        if v == 0x166D || v == 0x111C9 { return true }  // Po in Unicode 8.0, So and Mn today
        switch category(c) {
        case .connectorPunctuation?, .dashPunctuation?, .openPunctuation?, .closePunctuation?,
             .initialPunctuation?, .finalPunctuation?, .otherPunctuation?:
            return true
        default:
            return false
        }
    }

    /// Category Mn as of Unicode 8.0.
    @inline(__always)
    static func isNonspacingMark(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case ..<0x300: return false
        case 0x1734, 0x1171E: return true  // Mn in Unicode 8.0, Mc today
        case 0x1885, 0x1886, 0xA9BD, 0x111C9: return false  // Lo, Mc, Mc, Po in Unicode 8.0; Mn today
        default: return category(c) == .nonspacingMark
        }
    }

    /// The general category, or nil for a character not assigned in Unicode 8.0.
    static func category(_ c: Unicode.Scalar) -> Unicode.GeneralCategory? {
        let p = c.properties
        guard let age = p.age, age.major < 8 || (age.major == 8 && age.minor == 0) else { return nil }
        return p.generalCategory
    }
}
