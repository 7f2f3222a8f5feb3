import NIOCore
import Synchronization

/// Summarises repeated log lines of one kind (R-SEC-5): in each interval the
/// first `perInterval` lines of a kind are written; the rest are counted, and
/// the first line of that kind in a later interval comes with one summary
/// line saying how many were left out. A hundred clients that never read
/// their replies then cost a few lines a second, not one per request.
public final class LogThrottle: Sendable {
    private struct Window {
        var start: NIODeadline
        var written = 0
        var suppressed = 0
    }

    private let windows = Mutex<[String: Window]>([:])
    let perInterval: Int
    let interval: TimeAmount

    public init(perInterval: Int = 10, interval: TimeAmount = .seconds(1)) {
        self.perInterval = perInterval
        self.interval = interval
    }

    /// Whether to write a line of `kind` now, and how many of that kind were
    /// left out in the interval that just ended (to be said once), if any.
    public func admit(_ kind: String, now: NIODeadline) -> (write: Bool, leftOut: Int?) {
        windows.withLock { all in
            var window = all[kind] ?? Window(start: now)
            var leftOut: Int?
            if now - window.start >= interval {
                if window.suppressed > 0 { leftOut = window.suppressed }
                window = Window(start: now)
            }
            let write = window.written < perInterval
            if write { window.written += 1 } else { window.suppressed += 1 }
            all[kind] = window
            return (write, leftOut)
        }
    }
}
