#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// sd_notify(3) without libsystemd: a datagram to `NOTIFY_SOCKET` (a path, or
/// an abstract name starting with `@`). `READY=1` once serving, `RELOADING=1`
/// and `READY=1` around a SIGHUP reload, `STOPPING=1` when the drain begins.
/// Does nothing when not started by systemd with `Type=notify`.
struct SystemdNotifier: Sendable {
    let socketPath: String?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Takes `NOTIFY_SOCKET` out of the environment: the embedded PostgreSQL
    /// must not inherit it (systemd would log its messages as refused).
    static func takeFromEnvironment() -> SystemdNotifier {
        let notifier = SystemdNotifier()
        unsetenv("NOTIFY_SOCKET")
        return notifier
    }

    var isActive: Bool { socketPath != nil }

    /// Sends `state` ("READY=1\nSTATUS=…"); returns whether it was sent.
    @discardableResult
    func notify(_ state: String) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socketPath.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, message.count, Int32(MSG_NOSIGNAL), $0, length) }
        }
        return sent == message.count
    }

    /// `MONOTONIC_USEC=` for `RELOADING=1` (Type=notify-reload wants it).
    static var monotonicMicroseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
