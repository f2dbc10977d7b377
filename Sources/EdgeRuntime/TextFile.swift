import EdgeFormat

/// Why a text file (evaluation, calibration or training text) cannot be used. `description` is
/// the one line the CLIs print.
public enum TextFileError: Error, Equatable, CustomStringConvertible {
    /// The file cannot be read: missing, a folder, or not readable.
    case unreadable(path: String, purpose: String)
    /// The bytes are not valid UTF-8.
    case notUTF8(path: String, purpose: String)
    /// The text is too short for what it is used for (`why` gives the numbers).
    case tooShort(path: String, purpose: String, why: String)

    public var description: String {
        switch self {
        case let .unreadable(p, purpose): return "\(p): cannot read the \(purpose): no such file or not readable"
        case let .notUTF8(p, purpose): return "\(p): cannot read the \(purpose): not valid UTF-8"
        case let .tooShort(p, purpose, why): return "\(p): the \(purpose) is too short: \(why)"
        }
    }
}

/// The one loader of the text files the tools read (`edge-run perplexity --text`, `compress verify
/// --text`, `--data` for calibration, distillation and training): the whole file, checked to be UTF-8.
public enum TextFile {
    /// Reads `path` as UTF-8 text.
    /// - Parameter purpose: what the text is for, in messages ("evaluation text", "calibration text").
    /// - Throws: `TextFileError.unreadable` or `.notUTF8` naming the file.
    public static func load(path: String, purpose: String) throws -> String {
        guard var bytes = readWholeFile(path) else { throw TextFileError.unreadable(path: path, purpose: purpose) }
        // A UTF-8 byte order mark is not text (Foundation's String(data:encoding: .utf8) dropped it too).
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw TextFileError.notUTF8(path: path, purpose: purpose) }
        return text
    }
}
