import PortierDomain
import PortierProtocol

extension PortierService {
    /// `hello`: who is answering and with which limits.
    func hello(_ request: Request, context: RequestContext) -> OperationOutput {
        .result([
            "server": "portierd",
            "version": .string(configuration.version),
            "protocol": .int(Int64(ProtocolVersion.current)),
            "socket": .string(context.socket.rawValue),
            "limits": [
                "max_frame_bytes": .int(Int64(configuration.frameLimits.maximumFrameBytes)),
                "max_json_depth": .int(Int64(configuration.frameLimits.json.maximumDepth)),
                "max_object_keys": .int(Int64(configuration.frameLimits.json.maximumKeysPerObject)),
                "max_array_elements": .int(Int64(configuration.frameLimits.json.maximumArrayElements)),
                "max_values": .int(Int64(configuration.frameLimits.json.maximumValues)),
                "max_string_bytes": .int(Int64(configuration.frameLimits.json.maximumStringBytes)),
                "max_in_flight": .int(Int64(configuration.maximumInFlightPerConnection)),
                "max_watches": .int(Int64(configuration.watchesPerConnection)),
            ],
        ])
    }
}
