import Foundation
import TestSupport
import XCTest

// The runtime tests read their fixtures through TestSupport's `FixtureModel` (the Checkpoint
// importer); the independent check is scripts/reference_forward.py, which reads the fixture
// folders itself with numpy.

/// The reference forward could not be run or gave no logits.
struct ReferenceFailure: Error, CustomStringConvertible { var description: String }

/// Logits of `tokens` from scripts/reference_forward.py (numpy, float64) for a fixture folder.
func referenceLogits(_ fixture: String, _ tokens: [Int32]) throws -> [[Double]] {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(fixture)-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: out) }
    let r = try runPython([scriptPath("reference_forward.py"), fixturePath(fixture),
                           "--tokens", tokens.map(String.init).joined(separator: ","), "--out", out.path])
    guard r.code == 0 else { throw ReferenceFailure(description: "reference_forward.py exited with \(r.code): \(r.stderr)") }
    let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any]
    guard let rows = doc?["logits"] as? [[Double]] else { throw ReferenceFailure(description: "reference output has no logits") }
    return rows
}

/// max |a - b| / max |b|: the error relative to the reference's scale.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var diff = 0.0, scale = 0.0
    for (x, y) in zip(a, b) {
        diff = max(diff, abs(Double(x) - y))
        scale = max(scale, abs(y))
    }
    return scale == 0 ? diff : diff / scale
}

/// `relativeError` against a float32 reference.
func relativeError(_ a: [Float], _ b: [Float]) -> Double { relativeError(a, b.map(Double.init)) }
