#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// What the runtime modules need beyond FoundationEssentials (they do not link Foundation, whose ICU
// data would make the static `edge-run` tens of megabytes): a lock, printf-style formatting, a
// directory test.

/// A mutual-exclusion lock (pthread), with NSLock's `lock()` / `unlock()`.
public final class MutexLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
}

/// `format` (C printf syntax: integers as `%ld`, doubles as `%f`/`%.3f`/`%g`, `%%`) with `args`,
/// as `String(format:)` makes it; strings are interpolated by the caller, not passed.
public func cFormat(_ format: String, _ args: CVarArg...) -> String {
    withVaList(args) { va in
        var buffer = [CChar](repeating: 0, count: 512)
        let n = Int(vsnprintf(&buffer, buffer.count, format, va))
        guard n >= buffer.count else { return String(cString: buffer) }
        // Longer than the first buffer: format again into one that fits (a va_list is used once).
        return withVaList(args) { again in
            var big = [CChar](repeating: 0, count: n + 1)
            _ = vsnprintf(&big, big.count, format, again)
            return String(cString: big)
        }
    }
}

/// Two lowercase hex digits per byte.
public func hexString<S: Sequence>(_ bytes: S, separator: String = "") -> String where S.Element == UInt8 {
    let digits = Array("0123456789abcdef")
    return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 15)]]) }.joined(separator: separator)
}

/// Whether `path` names a directory (following symbolic links).
public func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// Writes `text` to standard error at once (unbuffered, as FileHandle.standardError did).
public func writeStandardError(_ text: String) {
    var t = text
    t.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stderr) }
    fflush(stderr)
}

/// Writes `text` to standard output and flushes it (streamed output such as generated tokens).
public func writeStandardOutput(_ text: String) {
    var t = text
    t.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
    fflush(stdout)
}
