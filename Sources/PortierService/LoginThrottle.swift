import Foundation
import Synchronization

/// Online guessing is throttled (R-USR-4): failed logins are counted per
/// address and client, and per address alone with a higher limit, over a
/// sliding window; past either, logins for that address (from that client, or
/// from every client) answer `rate_limited` until the window has passed, with
/// the right password too, and alike for addresses that do not exist (so the
/// answer tells nothing). A lockout from one client does not lock the address
/// out from the others until the higher per-address limit is reached.
///
/// Not tenant data: kept in memory, per instance (several instances each count
/// what they see, so the effective limits are at most the instance count
/// times these; documented). Bounded: at most `maximumEntries` keys; past it,
/// expired entries go first, then the oldest.
final class LoginThrottle: Sendable {
    struct Limits: Sendable, Equatable {
        var perClient: Int
        var perAddress: Int
        var windowSeconds: Double
        var maximumEntries: Int
    }

    private struct Entry {
        var failures: [Double] = []
        var touched: Double = 0
    }

    private let limits: Limits
    private let entries = Mutex<[String: Entry]>([:])
    private let clock: @Sendable () -> Double

    init(limits: Limits, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.limits = limits
        self.clock = clock
    }

    private static func keys(_ address: String, _ client: String?) -> (address: String, client: String?) {
        ("a:" + address, client.map { "c:" + address + "\u{1}" + $0 })
    }

    /// Whether a login for `address` from `client` must be refused now.
    func isLimited(_ address: String, client: String?) -> Bool {
        let now = clock()
        let (a, c) = Self.keys(address, client)
        return entries.withLock { e in
            if recent(e[a], now) >= limits.perAddress { return true }
            if let c, recent(e[c], now) >= limits.perClient { return true }
            return false
        }
    }

    /// Counts a failed login.
    func failed(_ address: String, client: String?) {
        let now = clock()
        let (a, c) = Self.keys(address, client)
        entries.withLock { e in
            for key in [a, c].compactMap({ $0 }) {
                var entry = e[key] ?? Entry()
                entry.failures.removeAll { now - $0 >= limits.windowSeconds }
                entry.failures.append(now)
                // The limits are all a key ever needs to remember.
                if entry.failures.count > max(limits.perAddress, limits.perClient) { entry.failures.removeFirst() }
                entry.touched = now
                e[key] = entry
            }
            if e.count > limits.maximumEntries { trim(&e, now) }
        }
    }

    /// Forgets an address's failures (a completed password reset, R-USR-14).
    func clear(_ address: String) {
        let a = "a:" + address
        let prefix = "c:" + address + "\u{1}"
        entries.withLock { e in
            e[a] = nil
            for key in e.keys where key.hasPrefix(prefix) { e[key] = nil }
        }
    }

    /// Keys tracked now (for tests).
    var count: Int { entries.withLock { $0.count } }

    private func recent(_ entry: Entry?, _ now: Double) -> Int {
        entry?.failures.reduce(0) { $0 + (now - $1 < limits.windowSeconds ? 1 : 0) } ?? 0
    }

    private func trim(_ e: inout [String: Entry], _ now: Double) {
        e = e.filter { now - $0.value.touched < limits.windowSeconds }
        if e.count > limits.maximumEntries {
            let oldest = e.sorted { $0.value.touched < $1.value.touched }.prefix(e.count - limits.maximumEntries * 9 / 10)
            for (key, _) in oldest { e[key] = nil }
        }
    }
}
