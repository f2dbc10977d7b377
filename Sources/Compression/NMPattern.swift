import Foundation

/// An N:M semi-structured sparsity pattern: along the input dimension of every row, each group of
/// M consecutive weights (columns `g*M ..< (g+1)*M`, starting at column 0) holds at most N non-zeros.
///
/// When the column count is not a multiple of M, the last group of a row is partial: of its
/// `len < M` weights it keeps `keep(len) = round(N * len / M)` (halves rounded up, so a lone
/// column of 2:4 is kept), and a detection requires at most that many non-zeros there.
public struct NMPattern: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Weights kept per full group.
    public let n: Int
    /// Group length.
    public let m: Int

    /// The largest group length a recipe may ask for.
    public static let maxM = 64

    /// The patterns `detect` reports, sparsest first (for one density, the smaller group first,
    /// since 2:4 implies 4:8).
    public static let common: [NMPattern] = [(1, 8), (1, 4), (2, 8), (1, 2), (2, 4), (4, 8)].map { NMPattern(uncheckedN: $0.0, m: $0.1) }

    /// A pattern with 1 <= n < m <= `maxM`; nil otherwise.
    public init?(n: Int, m: Int) {
        guard n >= 1, n < m, m <= Self.maxM else { return nil }
        self.init(uncheckedN: n, m: m)
    }

    private init(uncheckedN n: Int, m: Int) {
        self.n = n
        self.m = m
    }

    /// Parses `"N:M"` (decimal integers, 1 <= N < M <= 64); nil for anything else.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              parts.allSatisfy({ $0.count <= 3 }), let n = Int(parts[0]), let m = Int(parts[1]) else { return nil }
        self.init(n: n, m: m)
    }

    /// `"N:M"`.
    public var description: String { "\(n):\(m)" }

    /// The fraction of weights a dense tensor loses: 1 - N/M.
    public var sparsity: Double { 1 - Double(n) / Double(m) }

    /// Weights kept in a group of `length` (1...M) columns: N for a full group, round(N*length/M)
    /// with halves up for the partial last group.
    public func keep(inGroupOf length: Int) -> Int {
        length >= m ? n : (n * length * 2 + m) / (2 * m)
    }

    /// Zeroes, in each group of each row of a row-major [rows, cols] matrix, all but the
    /// `keep(len)` largest |w| (ties: the lower column is kept). Returns how many positions it
    /// dropped (`len - keep(len)` per group, whether or not the value there was zero already).
    @discardableResult
    public func apply(to values: inout [Float], rows: Int, cols: Int) -> Int {
        var dropped = 0
        var magnitude = [Float](repeating: 0, count: m)
        values.withUnsafeMutableBufferPointer { v in
            for r in 0 ..< rows {
                var start = 0
                while start < cols {
                    let len = min(m, cols - start)
                    let base = r * cols + start
                    let k = keep(inGroupOf: len)
                    for j in 0 ..< len { magnitude[j] = v[base + j].magnitude }
                    // Rank of j: how many weights of the group come before it (larger |w|, or equal
                    // |w| at a lower column); the k of rank < k stay. O(M^2) per group, no sorting.
                    for j in 0 ..< len {
                        var rank = 0
                        for i in 0 ..< len where magnitude[i] > magnitude[j] || (magnitude[i] == magnitude[j] && i < j) { rank += 1 }
                        if rank >= k { v[base + j] = 0 }
                    }
                    dropped += len - k
                    start += len
                }
            }
        }
        return dropped
    }

    /// Whether every group of every row of `values` ([rows, cols], row-major) holds at most
    /// `keep(len)` non-zeros.
    public func isSatisfied(by values: [Float], rows: Int, cols: Int) -> Bool {
        guard rows >= 0, cols >= 0, values.count == rows * cols else { return false }
        return values.withUnsafeBufferPointer { v in
            for r in 0 ..< rows {
                var start = 0
                while start < cols {
                    let len = min(m, cols - start)
                    let base = r * cols + start
                    var nonzero = 0
                    for j in 0 ..< len where v[base + j] != 0 { nonzero += 1 }
                    if nonzero > keep(inGroupOf: len) { return false }
                    start += len
                }
            }
            return true
        }
    }

    /// The sparsest of `common` that a [rows, cols] row-major matrix satisfies, as (n, m); nil when
    /// none does, when it has no non-zero value, when it has no full group of that M, or when the
    /// shape and value count disagree. For `compress inspect`.
    public static func detect(values: [Float], rows: Int, cols: Int) -> (n: Int, m: Int)? {
        guard rows > 0, cols > 0, values.count == rows * cols, values.contains(where: { $0 != 0 }) else { return nil }
        for p in common where cols >= p.m && p.isSatisfied(by: values, rows: rows, cols: cols) { return (p.n, p.m) }
        return nil
    }
}

extension RecipeFields {
    /// Reads how much a pruning pass removes: `sparsity` (0 <= s < 1, unstructured) or `pattern`
    /// ("N:M", which implies sparsity 1 - N/M), exactly one of them. With a pattern a `scope` field
    /// is refused (N:M groups are per row); without one the pass reads its own `scope`.
    /// - Throws: `RecipeError` naming the field.
    mutating func pruneAmount() throws -> (sparsity: Double, pattern: NMPattern?) {
        // a number's presence, before `double` checks its range with the right message
        let anyNumber = -Double.greatestFiniteMagnitude ... Double.greatestFiniteMagnitude
        if let text = try optionalString("pattern") {
            guard let p = NMPattern(parsing: text) else {
                throw error("pattern", "is '\(text)'; expected \"N:M\" with integers 1 <= N < M <= \(NMPattern.maxM), e.g. \"2:4\"")
            }
            if try optionalDouble("sparsity", range: anyNumber) != nil {
                throw error("sparsity", "cannot be combined with 'pattern' (\(p) implies sparsity \(fmt(p.sparsity))); give one of them")
            }
            if try optionalString("scope") != nil {
                throw error("scope", "cannot be combined with 'pattern' (N:M groups are per row)")
            }
            return (p.sparsity, p)
        }
        if try optionalDouble("sparsity", range: anyNumber) == nil {
            throw error("sparsity", "is required (or give 'pattern', e.g. \"2:4\")")
        }
        return (try double("sparsity", default: nil, range: 0 ... 1, openUpper: true), nil)
    }
}
