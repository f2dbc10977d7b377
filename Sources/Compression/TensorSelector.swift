import EdgeFormat
import Foundation

/// Which tensors a pass touches: by role (`kinds`), by name pattern (`include` / `exclude`, shell
/// globs where `*` matches any run of characters), and by layer (`exclude_layers`, negative indices
/// count from the end: -1 is the last layer). Shared by every pass.
public struct TensorSelector: Equatable, Sendable {
    public var kinds: Set<TensorKind>
    public var include: [String]
    public var exclude: [String]
    public var excludeLayers: [Int]

    public init(kinds: Set<TensorKind>, include: [String] = ["*"], exclude: [String] = [], excludeLayers: [Int] = []) {
        self.kinds = kinds
        self.include = include
        self.exclude = exclude
        self.excludeLayers = excludeLayers
    }

    /// Whether the tensor `name` of a model with `numLayers` layers is selected. Kind and layer come
    /// from the name's `TensorID`; a name that is not canonical counts as `.linear` of no layer.
    public func selects(_ name: String, numLayers: Int) -> Bool {
        let id = TensorID(name: name)
        guard kinds.contains(id?.kind ?? .linear) else { return false }
        guard include.contains(where: { Glob.matches($0, name) }) else { return false }
        if exclude.contains(where: { Glob.matches($0, name) }) { return false }
        if let layer = id?.layer {
            for l in excludeLayers where (l >= 0 ? l : numLayers + l) == layer { return false }
        }
        return true
    }

    /// A JSON description for the pass record.
    var record: JSONValue {
        .object([
            "kinds": .array(kinds.map(\.rawValue).sorted().map { .string($0) }),
            "include": .array(include.map { .string($0) }),
            "exclude": .array(exclude.map { .string($0) }),
            "exclude_layers": .array(excludeLayers.map { .number(Double($0)) }),
        ])
    }
}

/// Shell-style globs: `*` matches any run (including dots), `?` one character; everything else literally.
public enum Glob {
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(text.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
