import PortierProtocol

/// What an operation returns: its result object, and the revision token when it
/// committed a change.
public struct OperationOutput: Sendable {
    public let result: JSONObject
    public let revision: String?
}
