import EdgeFormat

/// One merge rule: the rank (its line in `merges`, lower merges first) and the id it produces.
struct _Merge {
    var rank: Int32
    var id: Int32
}

/// The byte-level BPE model of a `tokenizer.json` ("model": {"type": "BPE", ...}), working on raw
/// bytes: vocabulary keys are the UTF-8 bytes of the byte-level token strings, and a word starts as
/// one symbol per byte.
final class _BPEModel: @unchecked Sendable {
    /// Token string (UTF-8 bytes of its byte-level form) -> id.
    let vocab: _VocabIndex
    /// (left id, right id) packed by `pairKey` -> merge.
    let merges: [UInt64: _Merge]
    /// `byteIDs[b]`: id of the one-character token for byte `b`, or -1 if the vocabulary lacks it.
    let byteIDs: [Int32]
    /// Id used for symbols missing from the vocabulary; nil drops them (as Hugging Face does).
    let unkID: Int32?
    /// Consecutive unknown symbols become one `unkID`.
    let fuseUnk: Bool
    /// A word that is a vocabulary entry is taken whole, without merging (Llama-3 style).
    let ignoreMerges: Bool

    /// Words shorter than this many bytes are cached (as Hugging Face's BPE cache does).
    private static let cacheMaxWordLength = 256
    /// Entries kept in the word cache; once full, new words are no longer added.
    private static let cacheCapacity = 10_000
    private var cache: [[UInt8]: [Int32]] = [:]
    private let cacheLock = MutexLock()

    init(vocab: [[UInt8]: Int32], merges: [UInt64: _Merge], unkID: Int32?, fuseUnk: Bool, ignoreMerges: Bool) {
        self.vocab = _VocabIndex(vocab)
        self.merges = merges
        self.byteIDs = _ByteLevel.utf8.map { vocab[$0] ?? -1 }
        self.unkID = unkID
        self.fuseUnk = fuseUnk
        self.ignoreMerges = ignoreMerges
    }

    @inline(__always)
    static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the ids of one pre-tokenized word (raw bytes, before the byte-level mapping).
    func encodeWord(_ word: ArraySlice<UInt8>, into out: inout [Int32]) {
        guard !word.isEmpty else { return }
        let cacheable = word.count < Self.cacheMaxWordLength
        let key = Array(word)
        if cacheable {
            cacheLock.lock()
            let hit = cache[key]
            cacheLock.unlock()
            if let hit {
                out.append(contentsOf: hit)
                return
            }
        }
        let ids = merge(word)
        out.append(contentsOf: ids)
        if cacheable {
            cacheLock.lock()
            if cache.count < Self.cacheCapacity { cache[key] = ids }
            cacheLock.unlock()
        }
    }

    /// Runs the merges on one word: start from one symbol per byte, then repeatedly apply the
    /// lowest-ranked merge present (leftmost on ties) until none applies.
    /// Complexity: O(n log n) in the word length n (a heap of candidate pairs).
    private func merge(_ word: ArraySlice<UInt8>) -> [Int32] {
        if ignoreMerges {
            var mapped: [UInt8] = []
            mapped.reserveCapacity(word.count * 2)
            for b in word { mapped.append(contentsOf: _ByteLevel.utf8[Int(b)]) }
            if let id = vocab.id(mapped) { return [id] }
        }
        // Initial symbols, with unknown bytes mapped to unkID (fused if asked) or dropped.
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        var lastWasUnk = false
        for b in word {
            let id = byteIDs[Int(b)]
            if id >= 0 {
                ids.append(id)
                lastWasUnk = false
            } else if let unkID {
                if !(fuseUnk && lastWasUnk) { ids.append(unkID) }
                lastWasUnk = true
            }
        }
        let n = ids.count
        if n < 2 { return ids }

        // Doubly linked list over symbol positions; merged-away positions are marked dead.
        var next = [Int](0..<n).map { $0 + 1 }
        next[n - 1] = -1
        var prev = [Int](0..<n).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = _MergeHeap()
        for i in 0..<(n - 1) {
            if let m = merges[Self.pairKey(ids[i], ids[i + 1])] {
                heap.push(_MergeCandidate(rank: m.rank, pos: Int32(i), id: m.id))
            }
        }
        while let top = heap.pop() {
            let pos = Int(top.pos)
            guard alive[pos] else { continue }
            let right = next[pos]
            guard right >= 0,
                  let m = merges[Self.pairKey(ids[pos], ids[right])], m.id == top.id
            else { continue }  // stale candidate: a neighbour changed since it was pushed
            ids[pos] = m.id
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[next[right]] = pos }
            if prev[pos] >= 0, let l = merges[Self.pairKey(ids[prev[pos]], ids[pos])] {
                heap.push(_MergeCandidate(rank: l.rank, pos: Int32(prev[pos]), id: l.id))
            }
            if next[pos] >= 0, let r = merges[Self.pairKey(ids[pos], ids[next[pos]])] {
                heap.push(_MergeCandidate(rank: r.rank, pos: Int32(pos), id: r.id))
            }
        }
        var result: [Int32] = []
        var i = 0
        while i >= 0 {
            result.append(ids[i])
            i = next[i]
        }
        return result
    }
}

/// A possible merge of the symbol at `pos` with its right neighbour into `id`.
struct _MergeCandidate {
    var rank: Int32
    var pos: Int32
    var id: Int32

    /// Lower rank first, then the leftmost position (the order Hugging Face's BPE uses).
    @inline(__always)
    func precedes(_ other: _MergeCandidate) -> Bool {
        rank != other.rank ? rank < other.rank : pos < other.pos
    }
}

/// A binary min-heap of merge candidates.
struct _MergeHeap {
    private var items: [_MergeCandidate] = []

    mutating func push(_ item: _MergeCandidate) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> _MergeCandidate? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var parent = 0
        let count = items.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            var best = left
            if left + 1 < count, items[left + 1].precedes(items[left]) { best = left + 1 }
            guard items[best].precedes(items[parent]) else { break }
            items.swapAt(best, parent)
            parent = best
        }
        return first
    }
}
