import Foundation

/// An owned buffer of `count` scalars: zero-initialised when made with `init(_:)`; made by a
/// `BufPool`, it reuses the memory of an earlier buffer of the same size and gives it back when released.
public final class Buf<R: TrainScalar> {
    public let p: UnsafeMutablePointer<R>
    public let count: Int
    /// Where the memory goes back to on release; nil: it is freed.
    let pool: BufPool?

    public init(_ count: Int) {
        self.count = count
        pool = nil
        p = .allocate(capacity: max(1, count))
        memset(p, 0, max(1, count) * MemoryLayout<R>.stride)
    }

    /// A buffer from `pool` (its contents are undefined unless `zeroed`).
    init(_ count: Int, pool: BufPool, zeroed: Bool) {
        self.count = count
        self.pool = pool
        let bytes = max(1, count) * MemoryLayout<R>.stride
        p = pool.take(bytes: bytes).bindMemory(to: R.self, capacity: max(1, count))
        if zeroed { memset(p, 0, bytes) }
    }

    public convenience init(_ values: [R]) {
        self.init(values.count)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit {
        if let pool { pool.give(UnsafeMutableRawPointer(p), bytes: max(1, count) * MemoryLayout<R>.stride) } else { p.deallocate() }
    }

    public var array: [R] { Array(UnsafeBufferPointer(start: p, count: count)) }
    public func zero() { memset(p, 0, count * MemoryLayout<R>.stride) }
    public func copy(from other: Buf<R>) { p.update(from: other.p, count: count) }
}

/// Memory of released pooled `Buf`s by size class, for the next buffer of that class: a training
/// step allocates the same activations and gradients as the one before, so after the first step it
/// takes them all from here instead of mapping (and the kernel zeroing) fresh pages. Sizes are
/// rounded up to a class (four per doubling), so sequences of different lengths (an encoder's
/// sentences) reuse each other's memory instead of each length keeping its own; the rounded-up
/// tail of a large block is never written, so its pages are never mapped.
/// Thread-safe. What it holds is freed with it.
final class BufPool: @unchecked Sendable {
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private let lock = NSLock()

    /// The size class of a request of `bytes` bytes: a multiple of 64 up to 4 KiB, then the next
    /// multiple of a quarter of the largest power of two not above it (at most 25% more).
    static func sizeClass(_ bytes: Int) -> Int {
        if bytes <= 4096 { return (bytes + 63) & ~63 }
        let step = (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) / 4
        return (bytes + step - 1) / step * step
    }

    /// Memory of at least `bytes` bytes, 64-byte aligned: a released block of its size class, else a new one.
    func take(bytes: Int) -> UnsafeMutableRawPointer {
        let size = Self.sizeClass(bytes)
        lock.lock()
        let reused = free[size]?.popLast()
        lock.unlock()
        return reused ?? UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    }

    /// Keeps `p` (from `take(bytes:)` with the same `bytes`) for the next request of its size class.
    func give(_ p: UnsafeMutableRawPointer, bytes: Int) {
        let size = Self.sizeClass(bytes)
        lock.lock()
        free[size, default: []].append(p)
        lock.unlock()
    }

    /// Frees everything kept.
    func drain() {
        lock.lock()
        for (_, list) in free { for p in list { p.deallocate() } }
        free = [:]
        lock.unlock()
    }

    deinit { drain() }
}
