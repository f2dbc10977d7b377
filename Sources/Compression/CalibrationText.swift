import CalibrationSet
import EdgeFormat
import EdgeRuntime
import Foundation

/// The text calibration-driven passes read: a file given with `--data`, or, when a recipe needs
/// calibration and none is given, the bundled calibration set (about 400 KB of varied public-domain
/// English: fiction with dialogue, drama, technical documentation with lists and tables, a glossary;
/// `Fixtures/README.md` has its sources and licenses). The output's provenance names which one was
/// used (`metrics.calibration`).
public struct CalibrationText: Sendable {
    /// The file path, or `bundled` for the bundled set (the name errors and provenance use).
    public let source: String
    /// The text itself (UTF-8 checked).
    public let text: String
    /// SHA-256 (lowercase hex) of the text's bytes.
    public let sha256: String

    /// Whether this is the bundled calibration set.
    public var isBundled: Bool { source == Self.bundledSource }

    /// The `source` of the bundled set.
    public static let bundledSource = "bundled"

    /// Reads the calibration text at `path`.
    /// - Throws: `TextFileError` when the file cannot be read or is not UTF-8.
    public static func load(path: String) throws -> CalibrationText {
        let text = try TextFile.load(path: path, purpose: "calibration text")
        return CalibrationText(source: path, text: text)
    }

    /// The bundled calibration set, linked into the compressor.
    public static let bundled: CalibrationText = {
        var length = 0
        let bytes = UnsafeBufferPointer(start: edge_calibration_set(&length), count: length)
        return CalibrationText(source: bundledSource, text: String(decoding: bytes, as: UTF8.self))
    }()

    /// The text cut into sentences, for encoders (whose calibration and distillation read
    /// sentences): each non-empty line, cut after '.', '!' or '?' (and any closing quotes or
    /// brackets) where whitespace follows; runs of whitespace become one space. A file with one
    /// sentence per line gives its lines; a paragraph per line gives the paragraph's sentences.
    public var sentences: [String] { Self.sentences(of: text) }

    /// `sentences` of any text.
    public static func sentences(of text: String) -> [String] {
        var out: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(whereSeparator: \.isWhitespace)
            var current: [Substring] = []
            for w in words {
                current.append(w)
                let core = w.reversed().drop { "\"'’”)]}".contains($0) }
                if let end = core.first, ".!?".contains(end) {
                    out.append(current.joined(separator: " "))
                    current = []
                }
            }
            if !current.isEmpty { out.append(current.joined(separator: " ")) }
        }
        return out
    }

    init(source: String, text: String) {
        self.source = source
        self.text = text
        var h = SHA256()
        h.update(Array(text.utf8))
        sha256 = h.hexDigest()
    }

    /// What the output's provenance records: `{"source": "bundled" | file name, "bytes", "sha256"}`.
    /// A file is named by its last path component, so the same text gives the same bytes wherever it lies.
    public var record: JSONValue {
        .object(["source": .string(isBundled ? source : (source as NSString).lastPathComponent),
                 "bytes": .number(Double(text.utf8.count)), "sha256": .string(sha256)])
    }
}
