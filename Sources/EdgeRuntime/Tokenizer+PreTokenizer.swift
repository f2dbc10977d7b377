
/// GPT-2's pre-tokenizer regex, as `ByteLevel(use_regex: true)` applies it.
let _gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

/// What a `Split` pre-tokenizer does with the pieces its pattern matches (Hugging Face's
/// `SplitDelimiterBehavior`).
enum _SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// What a split step looks for.
enum _SplitPattern {
    /// A literal string (`{"String": "..."}`).
    case literal([Unicode.Scalar])
    /// GPT-2's regex, matched by the hand-written scanner `_gpt2Split`.
    case gpt2
    /// Any other regex (`{"Regex": "..."}`), matched by the standard library's `Regex` on Unicode scalars.
    case regex(Regex<AnyRegexOutput>)
    /// One match per numeric character (Rust's `char::is_numeric`: categories Nd, Nl, No).
    case numeric
}

/// One pre-tokenizer step before the final ByteLevel step.
struct _SplitStep {
    var pattern: _SplitPattern
    var behavior: _SplitBehavior
    var invert: Bool

    /// Splits one piece; empty pieces are dropped.
    func apply(_ piece: [Unicode.Scalar], into out: inout [[Unicode.Scalar]]) {
        if piece.isEmpty { return }
        let matches = _SplitStep.segments(matchRanges(piece), count: piece.count)
        for range in Self.combine(matches, behavior: behavior, invert: invert) where !range.isEmpty {
            out.append(Array(piece[range]))
        }
    }

    /// Non-overlapping matches, left to right.
    func matchRanges(_ piece: [Unicode.Scalar]) -> [Range<Int>] {
        switch pattern {
        case .gpt2:
            return _gpt2Split(piece[...])
        case .numeric:
            return piece.indices.filter { _isNumeric(piece[$0]) }.map { $0..<($0 + 1) }
        case let .literal(needle):
            var out: [Range<Int>] = []
            guard !needle.isEmpty, needle.count <= piece.count else { return out }
            var i = 0
            while i + needle.count <= piece.count {
                if piece[i] == needle[0], piece[i..<(i + needle.count)].elementsEqual(needle) {
                    out.append(i..<(i + needle.count))
                    i += needle.count
                } else {
                    i += 1
                }
            }
            return out
        case let .regex(regex):
            return _regexMatches(regex, in: piece)
        }
    }

    /// The matches plus the gaps between them, covering the piece: (range, isMatch).
    static func segments(_ matches: [Range<Int>], count: Int) -> [(Range<Int>, Bool)] {
        var out: [(Range<Int>, Bool)] = []
        var prev = 0
        for m in matches {
            if prev < m.lowerBound { out.append((prev..<m.lowerBound, false)) }
            out.append((m, true))
            prev = m.upperBound
        }
        if prev < count { out.append((prev..<count, false)) }
        return out
    }

    /// Hugging Face's `NormalizedString::split`: applies `invert`, then the behaviour.
    static func combine(_ segments: [(Range<Int>, Bool)], behavior: _SplitBehavior, invert: Bool) -> [Range<Int>] {
        let segs = segments.map { ($0.0, $0.1 != invert) }
        switch behavior {
        case .isolated:
            return segs.map(\.0)
        case .removed:
            return segs.filter { !$0.1 }.map(\.0)
        case .mergedWithPrevious:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (range, isMatch) in segs {
                if isMatch, !previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    out.append(range)
                }
                previousMatch = isMatch
            }
            return out
        case .mergedWithNext:
            var reversed: [Range<Int>] = []
            var previousMatch = false
            for (range, isMatch) in segs.reversed() {
                if isMatch, !previousMatch, let last = reversed.last {
                    reversed[reversed.count - 1] = range.lowerBound..<last.upperBound
                } else {
                    reversed.append(range)
                }
                previousMatch = isMatch
            }
            return reversed.reversed()
        case .contiguous:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (range, isMatch) in segs {
                if isMatch == previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    out.append(range)
                }
                previousMatch = isMatch
            }
            return out
        }
    }
}

// MARK: - Character classes

/// Character classes of the GPT-2 regex: `\p{L}`, `\p{N}`, `\s` (Unicode White_Space, as
/// Oniguruma's `\s` in Hugging Face's tokenizers), everything else.
enum _CharClass: UInt8 {
    case other, letter, number, space
}

@inline(__always)
func _charClass(_ s: Unicode.Scalar) -> _CharClass {
    let v = s.value
    if v < 0x80 {
        switch v {
        case 0x41...0x5A, 0x61...0x7A: return .letter
        case 0x30...0x39: return .number
        case 0x09...0x0D, 0x20: return .space
        default: return .other
        }
    }
    let p = s.properties
    if p.isWhitespace { return .space }
    switch p.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
        return .letter
    case .decimalNumber, .letterNumber, .otherNumber:
        return .number
    default:
        return .other
    }
}

/// Rust's `char::is_numeric` (general categories Nd, Nl, No), used by the Digits pre-tokenizer.
@inline(__always)
func _isNumeric(_ s: Unicode.Scalar) -> Bool {
    if s.value < 0x80 { return (0x30...0x39).contains(s.value) }
    return _charClass(s) == .number
}

/// Rust regex's `\w` (Alphabetic, marks, decimal digits, connector punctuation, join controls),
/// used for the `single_word` check of added tokens.
func _isWordCharacter(_ s: Unicode.Scalar) -> Bool {
    let p = s.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

// MARK: - GPT-2 scanner

/// Splits `s` the way GPT-2's regex does (leftmost-first alternation with backtracking):
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// The regex matches every character, so the returned ranges are contiguous and cover `s`.
/// Complexity: O(n).
func _gpt2Split(_ s: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
    var out: [Range<Int>] = []
    let end = s.endIndex
    var i = s.startIndex
    while i < end {
        let c = s[i]
        // 's 't 're 've 'm 'll 'd (ASCII, case-sensitive)
        if c == "'", i + 1 < end {
            let n1 = s[i + 1]
            if n1 == "s" || n1 == "t" || n1 == "m" || n1 == "d" {
                out.append(i..<(i + 2))
                i += 2
                continue
            }
            if i + 2 < end {
                let n2 = s[i + 2]
                if (n1 == "r" && n2 == "e") || (n1 == "v" && n2 == "e") || (n1 == "l" && n2 == "l") {
                    out.append(i..<(i + 3))
                    i += 3
                    continue
                }
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
        var j = i
        if c == " ", i + 1 < end, _charClass(s[i + 1]) != .space { j = i + 1 }
        let cls = _charClass(s[j])
        if cls != .space {
            var k = j + 1
            while k < end, _charClass(s[k]) == cls { k += 1 }
            out.append(i..<k)
            i = k
            continue
        }
        // `\s+(?!\S)` then `\s+`: a whitespace run, leaving its last character to prefix the next
        // word when a non-space follows.
        var k = i + 1
        while k < end, _charClass(s[k]) == .space { k += 1 }
        if k < end, k - i >= 2 { k -= 1 }
        out.append(i..<k)
        i = k
    }
    return out
}

// MARK: - Regex splitting

/// Rewrites an Oniguruma pattern (what Hugging Face `tokenizers` compiles) for the standard
/// library's `Regex`, spelling out the shorthand classes whose Unicode meaning differs between
/// engines: `\s` / `\S` -> `\p{White_Space}` / `\P{White_Space}`; `\d` / `\D` -> `\p{Nd}` / `\P{Nd}`
/// (decimal digits only: Swift's `\d` also takes ², ½ and Ⅻ); `\w` / `\W` -> letters, marks, decimal
/// digits and connector punctuation, or anything else.
func _icuPattern(_ pattern: String) -> String {
    var out = ""
    var escaped = false
    for ch in pattern {
        if escaped {
            switch ch {
            case "s": out += #"\p{White_Space}"#
            case "S": out += #"\P{White_Space}"#
            case "d": out += #"\p{Nd}"#
            case "D": out += #"\P{Nd}"#
            case "w": out += #"[\p{L}\p{M}\p{Nd}\p{Pc}]"#
            case "W": out += #"[^\p{L}\p{M}\p{Nd}\p{Pc}]"#
            default: out += "\\" + String(ch)
            }
            escaped = false
        } else if ch == "\\" {
            escaped = true
        } else {
            out.append(ch)
        }
    }
    if escaped { out += "\\" }
    return out
}

/// Matches of `regex` in `piece`, as scalar index ranges.
func _regexMatches(_ regex: Regex<AnyRegexOutput>, in piece: [Unicode.Scalar]) -> [Range<Int>] {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: piece)
    let text = String(view)
    let scalars = text.unicodeScalars
    var out: [Range<Int>] = []
    // Scalar offsets, walked forward from the previous match (matches come in order).
    var index = scalars.startIndex, offset = 0
    func advance(to target: String.Index) -> Int {
        offset += scalars.distance(from: index, to: target)
        index = target
        return offset
    }
    for m in text.matches(of: regex) {
        let lo = advance(to: m.range.lowerBound), hi = advance(to: m.range.upperBound)
        out.append(lo ..< hi)
    }
    return out
}
