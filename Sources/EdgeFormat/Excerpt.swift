/// Input text shown inside error messages: control bytes escaped and long strings cut, so that an
/// error is always one short line whatever the file held (a newline in a recipe string, 4 KB of
/// binary in a GGUF key).
public enum Excerpt {
    /// `s` in single quotes with control characters escaped (`\n`, `\t`, `\u{1b}`) and cut to
    /// `limit` characters (then `…` and the full length).
    public static func quoted(_ s: String, limit: Int = 48) -> String {
        "'" + escaped(s, limit: limit) + "'"
    }

    /// `s` with control characters escaped and cut to `limit` characters, without quotes.
    public static func escaped(_ s: String, limit: Int = 48) -> String {
        escape(s, limit: limit, quotes: true)
    }

    private static func escape(_ s: String, limit: Int, quotes: Bool) -> String {
        var out = ""
        var shown = 0
        var total = 0
        for ch in s.unicodeScalars {
            total += 1
            guard shown < limit else { continue }
            shown += 1
            switch ch {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\" where quotes: out += "\\\\"
            case "'" where quotes: out += "\\'"
            default:
                if ch.value < 0x20 || ch.value == 0x7f || (0x80..<0xa0).contains(ch.value)
                    || ch.value == 0x2028 || ch.value == 0x2029 {
                    out += "\\u{\(String(ch.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        if total > shown { out += "…(\(total) characters)" }
        return out
    }

    /// A shape as `[a, b, c]`, cut after `limit` dimensions (then `…` and the count): a hostile
    /// header may list a hundred thousand.
    public static func shape(_ dims: [Int], limit: Int = 8) -> String {
        guard dims.count > limit else { return "\(dims)" }
        return "[" + dims.prefix(limit).map(String.init).joined(separator: ", ") + ", … (\(dims.count) dimensions)]"
    }

    /// A message made safe to print as one line of at most `limit` UTF-8 bytes: control
    /// characters escaped; when still too long, the middle is cut (the start names the file and
    /// the item, the end says what is wrong).
    public static func oneLine(_ message: String, limit: Int = 300) -> String {
        let flat = escape(message, limit: Int.max, quotes: false)
        guard flat.utf8.count > limit else { return flat }
        let marker = " … "
        let keep = (limit - marker.utf8.count) / 2
        let head = flat.prefixByUTF8(keep)
        let tail = String(String(flat.reversed()).prefixByUTF8(keep).reversed())
        return head + marker + tail
    }
}

extension String {
    /// The longest prefix whose UTF-8 form has at most `n` bytes (never splits a character).
    fileprivate func prefixByUTF8(_ n: Int) -> String {
        var count = 0
        var end = startIndex
        for i in indices {
            let c = self[i].utf8.count
            if count + c > n { break }
            count += c
            end = index(after: i)
        }
        return String(self[..<end])
    }
}
