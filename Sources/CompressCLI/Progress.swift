import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on stderr. Drawn only when stderr is a terminal, and only once the work
/// has run for more than a second, so short runs and logs stay clean.
final class ProgressBar {
    private let label: String
    private let start = Date()
    private let enabled: Bool
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(label: String) {
        self.label = label
        enabled = isatty(STDERR_FILENO) == 1
    }

    func update(done: Int, total: Int, item: String = "") {
        guard enabled, total > 0 else { return }
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        guard elapsed > 1, now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        let width = 30
        let frac = Double(done) / Double(total)
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        var eta = ""
        if done > 0, done < total {
            let remaining = elapsed / frac - elapsed
            eta = " eta \(Self.time(remaining))"
        }
        let shown = item.count > 32 ? "…" + item.suffix(31) : item
        let line = "\(label) [\(bar)] \(done)/\(total) \(Self.time(elapsed))\(eta) \(shown)"
        FileHandle.standardError.write(("\r\u{1B}[K" + line).data(using: .utf8)!)
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
    }

    static func time(_ s: Double) -> String {
        s < 60 ? String(format: "%.1fs", s) : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
    }
}
