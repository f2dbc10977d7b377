#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Tensors are read lazily straight from it, so a
/// checkpoint larger than RAM can be converted. The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?

    /// Maps `path` read-only.
    /// - Throws: `FormatError.io` naming the file when it cannot be opened, is not a regular file, or cannot be mapped.
    public init(path: String) throws {
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
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw FormatError.io(file: path, what: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
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
    public func release(_ offset: Int, _ count: Int) {
        guard let base, count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset / page) * page
        let len = min(size - start, count + (offset - start))
        madvise(UnsafeMutableRawPointer(mutating: base + start), len, MADV_DONTNEED)
    }
}
