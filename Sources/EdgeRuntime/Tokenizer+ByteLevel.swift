/// GPT-2's byte-level alphabet (`bytes_to_unicode` in GPT-2's encoder.py): every byte maps to one
/// printable character, so any byte string is a string of vocabulary symbols. Printable Latin-1
/// bytes map to themselves; the other 68 bytes map, in order, to U+0100 ... U+0143.
enum _ByteLevel {
    /// `scalar[b]`: the character standing for byte `b`.
    static let scalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            let value = printable ? UInt32(b) : next
            if !printable { next += 1 }
            table[b] = Unicode.Scalar(value)!  // value < 0x144: always a valid scalar
        }
        return table
    }()

    /// `utf8[b]`: the UTF-8 bytes of `scalar[b]` (one or two bytes).
    static let utf8: [[UInt8]] = scalar.map { Array(String($0).utf8) }

    /// Inverse of `scalar`, indexed by scalar value (-1 where the value is no byte's character).
    static let byte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalar.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// The bytes a token string (given as UTF-8) decodes to, as the Hugging Face `ByteLevel`
    /// decoder does it: each character back to its byte, or, when some character is not in the
    /// alphabet (added tokens can hold anything), the token's own UTF-8 bytes.
    static func decode(_ token: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        var i = 0
        while i < token.count {
            // Alphabet characters are at most U+0143: one byte, or two with a lead byte C2...C5.
            let b0 = token[i]
            var value: Int
            if b0 < 0x80 {
                value = Int(b0)
                i += 1
            } else if (0xC2...0xC5).contains(b0), i + 1 < token.count, token[i + 1] & 0xC0 == 0x80 {
                value = Int(b0 & 0x1F) << 6 | Int(token[i + 1] & 0x3F)
                i += 2
            } else {
                return token
            }
            guard value < byte.count, byte[value] >= 0 else { return token }
            out.append(UInt8(byte[value]))
        }
        return out
    }
}

/// Turns a stream of token ids into text as it is generated, never printing half a UTF-8
/// character: bytes that might still be completed by the next token are held back.
///
/// The concatenation of everything `push` and `finish` return equals
/// `tokenizer.decode(allIDs)` (invalid UTF-8 becomes U+FFFD the same way).
public struct TokenStreamDecoder {
    private let tokenizer: Tokenizer
    private var pending: [UInt8] = []

    /// A decoder with nothing pending.
    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// Adds one token and returns the text that is now complete (possibly empty).
    public mutating func push(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.decodeBytes(id))
        let keep = Self.incompleteSuffixLength(pending)
        let ready = pending[..<(pending.count - keep)]
        let text = String(decoding: ready, as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Returns whatever is still held back (an unfinished character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the trailing bytes that form a valid but unfinished UTF-8 sequence (0 to 3).
    static func incompleteSuffixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // The lead byte is at most 3 bytes back (a 4-byte sequence missing its last byte).
        var lead = n - 1
        while lead >= 0, lead >= n - 3, bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0, lead >= n - 3 else { return 0 }
        let b0 = bytes[lead]
        let length: Int
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return 0
        }
        let have = n - lead
        guard have < length else { return 0 }
        if have >= 2 {
            // Second-byte limits that rule out overlong forms, surrogates and values > U+10FFFF.
            let b1 = bytes[lead + 1]
            let range: ClosedRange<UInt8>
            switch b0 {
            case 0xE0: range = 0xA0...0xBF
            case 0xED: range = 0x80...0x9F
            case 0xF0: range = 0x90...0xBF
            case 0xF4: range = 0x80...0x8F
            default: range = 0x80...0xBF
            }
            guard range.contains(b1) else { return 0 }
        }
        return have
    }
}
