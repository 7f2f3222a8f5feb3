/// Mail domains shared by unrelated people: never claimed by an environment (R-ENV-4).
///
/// The list that ships with the server is the free-mail and disposable-mail
/// providers of two maintained public lists (generated into
/// `SharedMailDomainList.swift` by `Scripts/update-mail-domains.sh`, with its
/// sources, versions and licences). Configuration adds domains and marks listed
/// ones as not shared (false positives). Also never claimed: a subdomain of a
/// shared domain (`mail.gmail.com`) and a public suffix itself (`co.uk`,
/// `github.io`; `PublicSuffixList`). A lookup costs one set probe per label.
public struct SharedMailDomains: Sendable {
    /// Why a domain can never be claimed.
    public enum Reason: String, Sendable {
        case listed = "a shared mail domain"
        case subdomainOfListed = "a subdomain of a shared mail domain"
        case publicSuffix = "a public suffix"
    }

    /// The shipped list, parsed once.
    public static let listed: Set<String> = Set(listedText.split(separator: "\n").map(String.init))

    /// Domains configuration added.
    public let additions: Set<String>
    /// Listed domains configuration marked as not shared.
    public let notShared: Set<String>

    /// The shipped list with `additions` and without `notShared` (both normalised;
    /// invalid names are refused).
    public init(additions: [String] = [], notShared: [String] = []) throws(InvalidInput) {
        var added = Set<String>()
        for raw in additions { added.insert(try Domain(raw).name) }
        var removed = Set<String>()
        for raw in notShared { removed.insert(try Domain(raw).name) }
        self.additions = added
        self.notShared = removed
    }

    /// Whether `domain` (normalised) is shared: listed or added and not marked
    /// otherwise, or a public suffix.
    public func isShared(_ domain: String) -> Bool { reason(domain) != nil }

    /// Why `domain` (normalised) can never be claimed, or nil when it can be.
    public func reason(_ domain: String) -> Reason? {
        var candidate = Substring(domain)
        var own = true
        while true {
            let name = String(candidate)
            if (Self.listed.contains(name) || additions.contains(name)) && !notShared.contains(name) {
                return own ? .listed : .subdomainOfListed
            }
            guard let dot = candidate.firstIndex(of: "."), candidate[candidate.index(after: dot)...].contains(".") else { break }
            candidate = candidate[candidate.index(after: dot)...]
            own = false
        }
        return PublicSuffixList.isPublicSuffix(domain) ? .publicSuffix : nil
    }
}
