#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore

/// Why the socket could not be opened, in words that say what to do.
enum SocketProblem {
    static func explain(_ error: any Error, path: String, support: Bool) -> String {
        let variable = support ? "PORTIER_SUPPORT_SOCKET" : "PORTIER_SOCKET"
        let code = (error as? IOError)?.errnoCode
        switch code {
        case ENOENT?:
            return "no portierd listening at \(path): is it running? Set --socket or \(variable)"
        case ECONNREFUSED?:
            return "nothing accepts connections at \(path) (a socket file left by a stopped portierd?): is it running? Set --socket or \(variable)"
        case EACCES?, EPERM?:
            var info = stat()
            let group = stat(path, &info) == 0 ? getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "\(info.st_gid)" : "?"
            return "permission denied on \(path): join its group \(group) (then log in again), or ask for access"
        case ENOTSOCK?:
            return "\(path) is not a socket: set --socket or \(variable) to portierd's socket"
        default:
            return "cannot connect to \(path): \(error)"
        }
    }
}
