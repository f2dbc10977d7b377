import Dispatch
import EdgeFormat
import EdgeKernels

/// The runtime's parallel loops run on persistent worker threads (`edge_pool`, EdgeKernelsPool.h):
/// one process-wide pool per participant count, created at first use and kept for the process's life.
/// Its workers spin briefly after each job, so the few hundred small products of a decoding step do
/// not each pay a thread wake-up. A loop that finds its pool busy (a nested or concurrent loop) runs on
/// `DispatchQueue.concurrentPerform` instead, so results never depend on which was used.
enum WorkerPools {
    private static let lock = MutexLock()
    nonisolated(unsafe) private static var pools: [Int: OpaquePointer] = [:]
    nonisolated(unsafe) private static var failed: Set<Int> = []

    /// The pool for `participants` threads (the caller included), or nil if its threads could not start.
    static func pool(_ participants: Int) -> OpaquePointer? {
        lock.lock()
        defer { lock.unlock() }
        if let p = pools[participants] { return p }
        if failed.contains(participants) { return nil }
        guard let p = edge_pool_create(participants) else {
            failed.insert(participants)
            return nil
        }
        pools[participants] = p
        return p
    }

    /// Runs body(i) for i in 0..<n on the pool for `participants` threads (task i on participant
    /// i % participants); false, running nothing, when that pool is busy or unavailable.
    static func run(participants: Int, _ n: Int, _ body: (Int) -> Void) -> Bool {
        guard let pool = pool(participants) else { return false }
        return withoutActuallyEscaping(body) { escapable in
            var task = escapable
            return withUnsafeMutablePointer(to: &task) { ctx in
                edge_pool_run(pool, n, { ctx, i in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                }, ctx)
            }
        }
    }
}

/// Runs `body(c)` for c in 0..<chunks, concurrently (one thread per chunk) when chunks > 1.
@inline(__always) func parallelFor(_ chunks: Int, _ body: (Int) -> Void) {
    if chunks <= 1 {
        body(0)
    } else if !WorkerPools.run(participants: chunks, chunks, body) {
        DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
    }
}
