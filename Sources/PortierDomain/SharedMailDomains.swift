/// Mail domains shared by unrelated people: never claimed by an environment (R-ENV-4).
///
/// The built-in list ships with the server; configuration can add to it, never remove.
public struct SharedMailDomains: Sendable {
    /// The list that ships with Portier.
    public static let builtIn: Set<String> = [
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.nl", "hotmail.co.uk",
        "live.com", "live.nl", "msn.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "icloud.com",
        "me.com", "mac.com", "aol.com", "gmx.com", "gmx.net", "gmx.de", "web.de", "mail.com",
        "proton.me", "protonmail.com", "pm.me", "zoho.com", "yandex.com", "fastmail.com",
        "ziggo.nl", "kpnmail.nl", "planet.nl", "home.nl", "xs4all.nl", "telfort.nl", "casema.nl",
        "upcmail.nl", "quicknet.nl", "hetnet.nl", "online.nl", "chello.nl", "tiscali.nl",
    ]

    public let domains: Set<String>

    /// The built-in list plus `additions` (normalised; invalid names are refused).
    public init(additions: [String] = []) throws(PortierError) {
        var all = Self.builtIn
        for raw in additions { all.insert(try Domain(raw).name) }
        self.domains = all
    }

    public func isShared(_ domain: String) -> Bool { domains.contains(domain) }
}
