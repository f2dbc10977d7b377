#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file atomically: bytes go to a temporary file in the destination's folder, which is
/// renamed over the destination only by `commit()`. If the writer is dropped without `commit()`
/// (an error, a signal handler calling `AtomicOutput.removeAllPending()`), the temporary file is
/// removed and the destination is untouched.
public final class AtomicOutput {
    public let destination: String
    public let temporaryPath: String
    private var handle: UnsafeMutablePointer<FILE>?
    private var committed = false
    public private(set) var bytesWritten: Int = 0

    private static let lock = MutexLock()
    nonisolated(unsafe) private static var pending: Set<String> = []

    /// Opens a temporary file beside `destination`.
    /// - Parameter protecting: paths that must never be overwritten (the inputs); refusing them is the caller's first line of defence.
    public init(destination: String, protecting inputs: [String] = []) throws {
        let dest = absolutePath(destination)
        // A destination that does not exist yet cannot be an input; one that does is compared by its real path.
        if let real = realPath(dest), inputs.contains(where: { realPath($0) == real }) {
            throw FormatError.io(file: destination, what: "refusing to overwrite the input file")
        }
        self.destination = dest
        let (dir, name) = splitPath(dest)
        guard isDirectory(dir) else {
            throw FormatError.io(file: destination, what: "output folder \(dir) does not exist")
        }
        temporaryPath = dir + "/." + name + ".tmp-\(getpid())"
        guard let h = fopen(temporaryPath, "wb") else {
            throw FormatError.io(file: destination, what: "cannot create \(temporaryPath): \(String(cString: strerror(errno)))")
        }
        handle = h
        Self.lock.lock(); Self.pending.insert(temporaryPath); Self.lock.unlock()
    }

    deinit { abandon() }

    /// Appends bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let handle else { throw FormatError.io(file: destination, what: "write after close") }
        guard bytes.count > 0 else { return }
        if fwrite(bytes.baseAddress, 1, bytes.count, handle) != bytes.count {
            throw FormatError.io(file: destination, what: "write failed: \(String(cString: strerror(errno)))")
        }
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Appends zero bytes until the file length is a multiple of `alignment`.
    public func pad(to alignment: Int) throws {
        let r = bytesWritten % alignment
        if r != 0 { try write([UInt8](repeating: 0, count: alignment - r)) }
    }

    /// Overwrites bytes at `offset` (already written), e.g. a header patched at the end.
    public func patch(at offset: Int, _ bytes: [UInt8]) throws {
        guard let handle, offset >= 0, offset + bytes.count <= bytesWritten else {
            throw FormatError.io(file: destination, what: "patch outside written range")
        }
        fflush(handle)
        fseeko(handle, off_t(offset), SEEK_SET)
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, handle) }
        fseeko(handle, 0, SEEK_END)
    }

    /// Flushes, syncs and renames the temporary file over the destination.
    public func commit() throws {
        guard let h = handle else { throw FormatError.io(file: destination, what: "commit after close") }
        let ok = fflush(h) == 0 && fsync(fileno(h)) == 0
        fclose(h)
        handle = nil
        guard ok else {
            unlink(temporaryPath)
            throw FormatError.io(file: destination, what: "flush failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporaryPath, destination) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw FormatError.io(file: destination, what: "cannot move output into place: \(msg)")
        }
        committed = true
        Self.lock.lock(); Self.pending.remove(temporaryPath); Self.lock.unlock()
    }

    /// Closes and deletes the temporary file (no-op after `commit()`).
    public func abandon() {
        if let h = handle { fclose(h); handle = nil }
        if !committed {
            unlink(temporaryPath)
            Self.lock.lock(); Self.pending.remove(temporaryPath); Self.lock.unlock()
        }
    }

    /// Removes every temporary file and staging folder not yet committed; for signal handlers (SIGINT/SIGTERM).
    public static func removeAllPending() {
        lock.lock(); let paths = pending; let folders = pendingFolders; lock.unlock()
        for p in paths { unlink(p) }
        for f in folders { AtomicFolder.removeFlat(f) }
    }

    fileprivate static func registerFolder(_ path: String, _ add: Bool) {
        lock.lock()
        if add { pendingFolders.insert(path) } else { pendingFolders.remove(path) }
        lock.unlock()
    }
    nonisolated(unsafe) private static var pendingFolders: Set<String> = []
}

/// Writes a folder of files all or nothing: files go to a staging folder beside the destination
/// (`.NAME.tmp-PID`), and `commit()` moves them into place, renaming the staging folder when the
/// destination does not exist yet, else renaming each file into it. Dropped without `commit()`,
/// the staging folder and its files are removed and the destination is untouched (not even created).
public final class AtomicFolder {
    public let destination: String
    /// Where the files are written before `commit()`.
    public let stagingPath: String
    private var committed = false

    public init(destination: String) throws {
        let dest = absolutePath(destination)
        self.destination = dest
        let (parent, name) = splitPath(dest)
        guard makeDirectories(parent) else {
            throw FormatError.io(file: destination, what: "cannot create the parent folder \(parent)")
        }
        stagingPath = parent + "/." + name + ".tmp-\(getpid())"
        Self.removeFlat(stagingPath)
        guard mkdir(stagingPath, 0o755) == 0 else {
            throw FormatError.io(file: destination, what: "cannot create \(stagingPath): \(String(cString: strerror(errno)))")
        }
        AtomicOutput.registerFolder(stagingPath, true)
    }

    deinit { if !committed { abandon() } }

    /// Moves every staged file into the destination.
    public func commit() throws {
        if !fileExists(destination) {
            guard rename(stagingPath, destination) == 0 else {
                let msg = String(cString: strerror(errno))
                abandon()
                throw FormatError.io(file: destination, what: "cannot move the output folder into place: \(msg)")
            }
        } else {
            guard isDirectory(destination) else {
                abandon()
                throw FormatError.io(file: destination, what: "exists and is not a folder")
            }
            var names: [String] = []
            forEachDirectoryEntry(stagingPath) { names.append($0) }
            for name in names.sorted() {
                guard rename(stagingPath + "/" + name, destination + "/" + name) == 0 else {
                    let msg = String(cString: strerror(errno))
                    abandon()
                    throw FormatError.io(file: destination + "/" + name, what: "cannot move into place: \(msg)")
                }
            }
            rmdir(stagingPath)
        }
        committed = true
        AtomicOutput.registerFolder(stagingPath, false)
    }

    /// Removes the staging folder and what it holds.
    public func abandon() {
        Self.removeFlat(stagingPath)
        AtomicOutput.registerFolder(stagingPath, false)
    }

    /// Removes a folder of plain files (one level), with calls that are safe in a signal handler.
    static func removeFlat(_ path: String) {
        forEachDirectoryEntry(path) { unlink(path + "/" + $0) }
        rmdir(path)
    }
}

/// An absolute, clean path (`absolutePath`) split into its folder and last component.
private func splitPath(_ path: String) -> (folder: String, name: String) {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return ("/", String(path.dropFirst())) }
    return (String(path[..<slash]), String(path[path.index(after: slash)...]))
}
