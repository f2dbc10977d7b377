#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// What the runtime modules need from the operating system, on the C library alone: they import
// neither Foundation nor FoundationEssentials, which would make the static `edge-run` 7 MB larger
// (docs/performance.md, "The runtime binary"). A lock, printf-style formatting, paths and folders,
// whole-file reads, the processor count.

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

/// Whether something exists at `path` (following symbolic links).
public func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}

/// `path` made absolute (against the working directory) and cleaned without touching the disk:
/// empty and `.` components dropped, `..` removing the one before it, no trailing slash.
public func absolutePath(_ path: String) -> String {
    var full = path
    if !full.hasPrefix("/"), let cwd = getcwd(nil, 0) {
        full = String(cString: cwd) + "/" + full
        free(cwd)
    }
    var parts: [Substring] = []
    for part in full.split(separator: "/", omittingEmptySubsequences: true) {
        switch part {
        case ".": continue
        case "..": _ = parts.popLast()
        default: parts.append(part)
        }
    }
    return "/" + parts.joined(separator: "/")
}

/// The canonical path of an existing file (`realpath`: absolute, symbolic links resolved), nil
/// when nothing is there.
public func realPath(_ path: String) -> String? {
    guard let r = realpath(path, nil) else { return nil }
    defer { free(r) }
    return String(cString: r)
}

/// Creates the folder `path` and any missing parents (`mkdir -p`, mode 0755).
/// - Returns: whether `path` is a folder afterwards.
@discardableResult
public func makeDirectories(_ path: String) -> Bool {
    if isDirectory(path) { return true }
    let full = absolutePath(path)
    var prefix = ""
    for part in full.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return false }
    }
    return isDirectory(full)
}

/// Calls `body` with the name of each entry of the folder `path`, `.` and `..` left out, in the
/// order `readdir` gives them.
/// - Returns: false when the folder cannot be opened.
@discardableResult
public func forEachDirectoryEntry(_ path: String, _ body: (String) -> Void) -> Bool {
    guard let dir = opendir(path) else { return false }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { body(name) }
    }
    return true
}

/// All bytes of the file at `path`, read to its end (a pipe or `/dev/stdin` too); nil when it
/// cannot be opened or read (missing, a folder, no permission).
public func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var st = stat()
    var out: [UInt8] = []
    if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { out.reserveCapacity(Int(st.st_size)) }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 { return out }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        out.append(contentsOf: chunk[0 ..< n])
    }
}

/// Seconds on a monotonic clock (`CLOCK_MONOTONIC`) from an arbitrary start: subtract two readings
/// for an elapsed time.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The processors this process may run on, as Foundation's `ProcessInfo.activeProcessorCount`
/// counts them on Linux: the online processors, capped by a cgroup CPU quota (v2 `cpu.max`, v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`) rounded up. At least 1.
public func activeProcessorCount() -> Int {
    let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #if os(Linux)
    func text(_ path: String) -> String? {
        readWholeFile(path).map { String(decoding: $0, as: UTF8.self).split(whereSeparator: \.isWhitespace).joined(separator: " ") }
    }
    var quota: (Double, Double)?
    if let v2 = text("/sys/fs/cgroup/cpu.max")?.split(separator: " "), v2.count == 2, let q = Double(v2[0]), let p = Double(v2[1]) {
        quota = (q, p)
    } else if let q = text("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").flatMap(Double.init),
              let p = text("/sys/fs/cgroup/cpu/cpu.cfs_period_us").flatMap(Double.init) {
        quota = (q, p)
    }
    if let (q, p) = quota, q > 0, p > 0 { return max(1, min(online, Int((q / p).rounded(.up)))) }
    #endif
    return online
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
