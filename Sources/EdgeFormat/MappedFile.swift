#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a file's bytes are held in memory (`MappedFile`).
public enum Residency: String, CaseIterable, Sendable {
    /// A read-only map of the file: nothing is copied and the pages are the page cache's (4 KB
    /// pages on Linux), read lazily, so a checkpoint larger than RAM can be converted.
    case map
    /// A private read-only copy in anonymous memory, in transparent huge pages (2 MB) where the
    /// kernel offers them. Decoding streams every weight once per token, and through 4 KB pages that is a
    /// TLB miss every 4 KB and a hardware prefetcher that stops at each page's end; SmolLM2-135M's int8
    /// files decoded 12-22% faster from the copy, f32 and 4-bit files about as fast (docs/performance.md,
    /// "Weights in huge pages"). The same bytes; the same resident memory once every page is read.
    case copy
    /// `copy` where the kernel has transparent huge pages enabled (Linux, `enabled` not `never`) and
    /// the file takes at most half of the memory available now (a copy cannot be paged out to the
    /// file as a map can), else `map`.
    case auto

    /// What `auto` resolves to on this machine for a file of `bytes`.
    public static func automatic(bytes: Int) -> Residency {
        guard hugePagesAvailable, let available = availableMemory() else { return .map }
        return bytes <= available / 2 ? .copy : .map
    }

    /// MemAvailable from /proc/meminfo, in bytes; nil where there is none.
    static func availableMemory() -> Int? {
        guard let text = readWholeFile("/proc/meminfo").map({ String(decoding: $0, as: UTF8.self) }),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kb = line.dropFirst("MemAvailable:".count).split(separator: " ").first.flatMap({ Int($0) }) else { return nil }
        return Checked.mul(kb, 1024)
    }

    /// Whether madvise(MADV_HUGEPAGE) can give anonymous memory huge pages here (Linux's setting
    /// `always` or `madvise`; no such file elsewhere).
    public static let hugePagesAvailable: Bool = {
        guard let bytes = readWholeFile("/sys/kernel/mm/transparent_hugepage/enabled") else { return false }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.contains("[always]") || text.contains("[madvise]")
    }()
}

/// A whole file in memory, read-only: mapped (the default), or copied into huge pages
/// (`Residency`). Tensors are read lazily straight from it. The bytes live as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    /// `.map` or `.copy`: how the bytes are held (never `.auto`).
    public let residency: Residency
    private let base: UnsafeRawPointer?
    /// The whole anonymous region of a copy (its start is rounded up to 2 MB inside it).
    private let region: (start: UnsafeMutableRawPointer, length: Int)?

    /// Maps `path` read-only, or copies it (`residency`).
    /// - Throws: `FormatError.io` naming the file when it cannot be opened, is not a regular file, or cannot be mapped or read.
    public init(path: String, residency: Residency = .map) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw FormatError.io(file: path, what: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw FormatError.io(file: path, what: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError.io(file: path, what: "not a regular file")
        }
        size = Int(st.st_size)
        let resolved = residency == .auto ? Residency.automatic(bytes: size) : residency
        if size == 0 {
            base = nil
            region = nil
            self.residency = resolved
            return
        }
        if resolved == .copy {
            (base, region) = try Self.copy(fd: fd, size: size, path: path)
            self.residency = .copy
            return
        }
        region = nil
        self.residency = .map
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw FormatError.io(file: path, what: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    /// Reads the file into anonymous memory aligned to 2 MB and asks for huge pages, then makes it read-only.
    private static func copy(fd: Int32, size: Int, path: String) throws -> (UnsafeRawPointer, (UnsafeMutableRawPointer, Int)) {
        guard Checked.add(size, 4 << 20) != nil else {
            throw FormatError.io(file: path, what: "\(size) bytes cannot be copied into memory")
        }
        guard let (raw, length, start) = hugeAlignedMemory(bytes: size) else {
            throw FormatError.io(file: path, what: "cannot allocate \(size) bytes to copy it into: \(String(cString: strerror(errno)))")
        }
        var done = 0
        while done < size {
            let n = pread(fd, start + done, min(size - done, 1 << 30), off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let why = n < 0 ? String(cString: strerror(errno)) : "the file ended after \(done) of \(size) bytes"
                munmap(raw, length)
                throw FormatError.io(file: path, what: "cannot read: \(why)")
            }
            done += n
        }
        _ = mprotect(raw, length, PROT_READ)
        return (UnsafeRawPointer(start), (raw, length))
    }

    deinit {
        if let region {
            munmap(region.start, region.length)
        } else if let base {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
    }

    /// All bytes of the file. Valid while `self` is alive.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// A cursor over the whole file.
    public func cursor() -> ByteCursor { ByteCursor(bytes, file: path) }

    /// The bytes `offset ..< offset + count`, or a `FormatError.invalid` naming `what` when out of bounds.
    public func range(_ offset: Int, _ count: Int, what: String) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, let end = Checked.add(offset, count), end <= size else {
            throw FormatError.invalid(file: path, what: "\(what): bytes \(offset)..<\(offset &+ count) lie outside the file (\(size) bytes)")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< end])
    }

    /// Tells the kernel the range will not be needed soon (lets a larger-than-RAM conversion stream).
    /// A copy keeps its bytes (releasing anonymous pages would zero them).
    public func release(_ offset: Int, _ count: Int) {
        guard let base, count > 0, residency == .map else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset / page) * page
        let len = min(size - start, count + (offset - start))
        madvise(UnsafeMutableRawPointer(mutating: base + start), len, MADV_DONTNEED)
    }
}

/// Writable anonymous memory for weights made at load (`EdgeModel`'s dense copies of sparse
/// matrices): aligned to 2 MB and given huge pages where the kernel offers them, as a file's
/// `Residency.copy` is, since decoding streams these bytes once per token (docs/performance.md).
/// Zero-filled; unmapped when the last reference goes.
public final class AnonymousMemory: @unchecked Sendable {
    private let raw: UnsafeMutableRawPointer?, length: Int
    /// The memory, `bytes` long.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Nil when the memory cannot be had (or `bytes` is negative or too large).
    public init?(bytes: Int) {
        guard bytes >= 0 else { return nil }
        guard bytes > 0 else {
            (raw, length) = (nil, 0)
            self.bytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let (p, length, start) = hugeAlignedMemory(bytes: bytes) else { return nil }
        (raw, self.length) = (p, length)
        self.bytes = UnsafeMutableRawBufferPointer(start: start, count: bytes)
    }

    deinit {
        if let raw { munmap(raw, length) }
    }
}

/// Anonymous read-write memory for `bytes` (> 0) from a 2 MB boundary: `raw` and `length` are the
/// whole mapping (for munmap), `start` the aligned start. Huge pages are asked for over the 2 MB
/// stretches that the bytes fill, and refused for the last, partly filled one: a huge page there
/// would be resident in full, up to 2 MB more than the bytes (about 1 MB on average, which the
/// runtime's peak-memory line counts). Nil when the size overflows or the memory cannot be had.
func hugeAlignedMemory(bytes: Int) -> (raw: UnsafeMutableRawPointer, length: Int, start: UnsafeMutableRawPointer)? {
    let huge = 2 << 20
    guard bytes > 0, let rounded = Checked.add(bytes, 2 * huge - 1) else { return nil }
    let length = rounded / huge * huge
    guard let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
        return nil
    }
    let start = raw + (huge - Int(bitPattern: raw) % huge) % huge
    #if os(Linux)
    let whole = bytes / huge * huge
    if whole > 0 { _ = madvise(start, whole, MADV_HUGEPAGE) }
    _ = madvise(start + whole, length - (start - raw) - whole, MADV_NOHUGEPAGE)
    #endif
    return (raw, length, start)
}
