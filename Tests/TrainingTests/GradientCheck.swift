import EdgeRuntime
import XCTest
@testable import Training

/// Finite-difference helpers shared by the gradient tests.
extension XCTestCase {
    /// Central differences of `f` with respect to x[i] for a sample of indices, against `grad`.
    func check(_ what: String, _ x: UnsafeMutablePointer<Double>, count: Int, grad: [Double], samples: Int = 12,
               eps: Double = 1e-5, tolerance: Double = 1e-6, _ f: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var rng = SplitMix64(seed: UInt64(count) &* 31 &+ UInt64(what.count))
        let idx = count <= samples ? Array(0 ..< count) : (0 ..< samples).map { _ in Int(rng.next() % UInt64(count)) }
        for i in idx {
            let old = x[i]
            x[i] = old + eps
            let fp = f()
            x[i] = old - eps
            let fm = f()
            x[i] = old
            let fd = (fp - fm) / (2 * eps)
            let err = abs(fd - grad[i]) / max(1e-4, abs(fd) + abs(grad[i]))
            XCTAssertLessThan(err, tolerance, "\(what)[\(i)]: finite difference \(fd), backward \(grad[i])", file: file, line: line)
        }
    }

    /// Weights r for a test loss L = sum(r * output).
    func randomWeights(_ n: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< n).map { _ in Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
    }
}
