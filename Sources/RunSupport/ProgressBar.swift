import EdgeFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-line progress bar with an ETA on stderr, shared by `compress` and `edge-run`. Drawn only
/// when stderr is a terminal and the work has run for more than a second, so short runs, pipes
/// and logs stay clean.
public final class ProgressBar {
    private let label: String
    private let start = monotonicSeconds()
    private let enabled: Bool
    private var lastDraw = -Double.infinity
    private var drawn = false

    public init(label: String) {
        self.label = label
        enabled = isatty(STDERR_FILENO) == 1
    }

    /// Redraws the bar for `done` of `total` units (at most ten times a second), naming `item`.
    public func update(done: Int, total: Int, item: String = "") {
        guard enabled, total > 0 else { return }
        let now = monotonicSeconds()
        let elapsed = now - start
        guard elapsed > 1, now - lastDraw > 0.1 || done == total else { return }
        lastDraw = now
        let width = 30
        let frac = Double(done) / Double(total)
        let filled = min(width, Int(frac * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let eta = done > 0 && done < total ? " eta \(Self.time(elapsed / frac - elapsed))" : ""
        let shown = item.count > 56 ? "…" + item.suffix(55) : item
        writeStandardError("\r\u{1B}[K\(label) [\(bar)] \(done)/\(total) \(Self.time(elapsed))\(eta) \(shown)")
        drawn = true
    }

    /// Clears the bar if it was drawn.
    public func finish() {
        if drawn { writeStandardError("\r\u{1B}[K") }
    }

    static func time(_ s: Double) -> String {
        s < 60 ? cFormat("%.1fs", s) : cFormat("%ldm%02lds", Int(s) / 60, Int(s) % 60)
    }
}
