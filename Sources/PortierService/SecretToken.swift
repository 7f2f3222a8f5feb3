import Crypto
import Foundation
import PortierDomain

/// A single-use link token: `<environment number>.<256 random bits, base64url>`.
///
/// The environment prefix routes the lookup to one environment; only the SHA-256
/// of the whole token is stored (R-USR-2).
public struct SecretToken: Sendable, Equatable {
    public let text: String
    public let environment: EnvironmentID

    /// A fresh token for `environment`.
    public init(environment: EnvironmentID) {
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let encoded = secret.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        self.text = "\(environment.raw).\(encoded)"
        self.environment = environment
    }

    /// Parses a presented token; nil when it cannot be one of ours.
    public init?(presented: String) {
        let parts = presented.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let env = Int64(parts[0]), env > 0, (20...100).contains(parts[1].utf8.count) else { return nil }
        self.text = presented
        self.environment = EnvironmentID(env)
    }

    public var hash: [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }
}
