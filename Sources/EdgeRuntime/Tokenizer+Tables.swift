/// Byte strings stored end to end in one buffer and found by slot (0 ..< count). The tables below
/// keep a whole vocabulary in it: one allocation, where one Swift array per token costs about 40
/// bytes of header and malloc rounding on top of a token's 6 or 7 bytes.
struct _PackedStrings: @unchecked Sendable {
    private let bytes: [UInt8]
    /// `ends[s]`: where slot s ends; slot s starts at `ends[s - 1]` (slot 0 at 0).
    private let ends: [Int]

    init<C: Collection>(_ strings: C) where C.Element == [UInt8] {
        var bytes: [UInt8] = [], ends: [Int] = []
        bytes.reserveCapacity(strings.reduce(0) { $0 + $1.count })  // exactly: appends would leave up to 2x
        ends.reserveCapacity(strings.count)
        for s in strings {
            bytes.append(contentsOf: s)
            ends.append(bytes.count)
        }
        self.bytes = bytes
        self.ends = ends
    }

    var count: Int { ends.count }

    /// The bytes of slot `s` (0 ..< count), sharing the buffer.
    subscript(s: Int) -> ArraySlice<UInt8> {
        bytes[(s == 0 ? 0 : ends[s - 1]) ..< ends[s]]
    }

    /// Whether slot `s` holds exactly `key`.
    @inline(__always)
    func equals(_ s: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = s == 0 ? 0 : ends[s - 1]
        guard ends[s] - start == key.count else { return false }
        return bytes.withUnsafeBufferPointer { b in
            for i in 0 ..< key.count where b[start + i] != key[i] { return false }
            return true
        }
    }
}

/// A token id -> byte string table (the token strings as tokenizer.json writes them, or the bytes
/// each id decodes to) in one buffer. Ids are looked up directly when they are 0 ..< count (every
/// real vocabulary), by binary search otherwise.
struct _TokenStrings: @unchecked Sendable {
    private let strings: _PackedStrings
    /// The id of each slot, ascending; nil when slot i holds id i.
    private let ids: [Int32]?

    /// The entries of `table`, each value passed through `transform`.
    init(_ table: [Int32: [UInt8]], transform: @escaping ([UInt8]) -> [UInt8] = { $0 }) {
        let sorted = table.keys.sorted()
        // Lazily (each string made twice: once counted, once stored), so that no array per token is
        // held at once beside the table's own.
        strings = _PackedStrings(sorted.lazy.map { transform(table[$0]!) })
        let dense = sorted.last.map { Int($0) == sorted.count - 1 } ?? true
        ids = dense ? nil : sorted
    }

    private func slot(_ id: Int32) -> Int? {
        guard let ids else { return id >= 0 && Int(id) < strings.count ? Int(id) : nil }
        var lo = 0, hi = ids.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ids[mid] < id { lo = mid + 1 } else { hi = mid }
        }
        return lo < ids.count && ids[lo] == id ? lo : nil
    }

    /// The bytes of `id`, or nil for an id the table does not hold.
    subscript(id: Int32) -> ArraySlice<UInt8>? {
        slot(id).map { strings[$0] }
    }
}

/// A byte string -> token id map (a vocabulary) with its keys in one buffer and open addressing over
/// slot numbers; lookups take a slice of a word without copying it.
struct _VocabIndex: @unchecked Sendable {
    private let keys: _PackedStrings
    private let values: [Int32]
    /// Slot of each bucket, or -1; a power of two at least twice the entries.
    private let buckets: [Int32]
    /// The longest key, in bytes (0 when empty).
    let longestKey: Int

    init(_ map: [[UInt8]: Int32]) {
        // Slot s is the map's s-th entry: its keys and values iterate in the same order.
        keys = _PackedStrings(map.keys)
        values = Array(map.values)
        longestKey = map.keys.lazy.map(\.count).max() ?? 0
        var size = 16
        while size < 2 * map.count { size *= 2 }
        var buckets = [Int32](repeating: -1, count: size)
        for (s, key) in map.keys.enumerated() {
            var b = key.withUnsafeBufferPointer(Self.hash) & (size - 1)
            while buckets[b] >= 0 { b = (b + 1) & (size - 1) }
            buckets[b] = Int32(s)
        }
        self.buckets = buckets
    }

    /// FNV-1a over the bytes, folded so the low bits (the bucket) depend on all of them.
    @inline(__always)
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    func id(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let mask = buckets.count - 1
        var b = Self.hash(key) & mask
        while true {
            let s = Int(buckets[b])
            if s < 0 { return nil }
            if keys.equals(s, key) { return values[s] }
            b = (b + 1) & mask
        }
    }

    func id(_ key: [UInt8]) -> Int32? { key.withUnsafeBufferPointer { id($0) } }
    func id(_ key: ArraySlice<UInt8>) -> Int32? { key.withUnsafeBufferPointer { id($0) } }
}
