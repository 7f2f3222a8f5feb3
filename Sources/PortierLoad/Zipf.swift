import Foundation

/// Zipf-skewed choice of an index in 0..<n: index k is chosen with probability
/// proportional to 1/(k+1)^s. A table of cumulative weights and a binary search.
public struct Zipf: Sendable {
    private let cumulative: [Double]

    public init(count: Int, exponent s: Double) {
        precondition(count > 0)
        var running = 0.0
        cumulative = (1...count).map { k in
            running += 1 / pow(Double(k), s)
            return running
        }
    }

    public func next<G: RandomNumberGenerator>(using rng: inout G) -> Int {
        let target = Double.random(in: 0..<cumulative.last!, using: &rng)
        var low = 0, high = cumulative.count - 1
        while low < high {
            let mid = (low + high) / 2
            if cumulative[mid] > target { high = mid } else { low = mid + 1 }
        }
        return low
    }

    /// A Zipf-like (s = 1) index in 0..<n without a table, for the users of one
    /// environment (sizes vary, tables per size would cost memory): log-uniform.
    public static func quick<G: RandomNumberGenerator>(_ n: Int, using rng: inout G) -> Int {
        let x = exp(Double.random(in: 0..<log(Double(n) + 1), using: &rng)) - 1
        return min(n - 1, Int(x))
    }
}
