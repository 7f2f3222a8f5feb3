import NIOCore
import PortierTransport
import Testing

@Suite("Repeated log lines (R-SEC-5)")
struct LogThrottleTests {
    @Test("R-SEC-5: past a few lines of a kind per interval the rest are counted, and said once in the next interval")
    func summarised() {
        let throttle = LogThrottle(perInterval: 10, interval: .seconds(1))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let first = (0..<1000).map { throttle.admit("slow request", now: start + .milliseconds(Int64($0 % 900))) }
        #expect(first.filter(\.write).count == 10, "ten lines written in the interval")
        #expect(first.allSatisfy { $0.leftOut == nil })
        #expect(throttle.admit("request failed", now: start).write, "another kind has its own allowance")
        let next = throttle.admit("slow request", now: start + .seconds(1))
        #expect(next.write)
        #expect(next.leftOut == 990, "the 990 left out are summarised in one line")
        #expect(throttle.admit("slow request", now: start + .seconds(3)).leftOut == nil, "nothing left out in the interval before")
    }
}
