import PortierProtocol

/// One operation of SPEC §11: its wire name, the capability a peer needs for
/// it (R-SEC-1), and what answers it. The registry below is the one list:
/// dispatch, `PortierService.operations` (metrics, the `Protocol/` check) and
/// the capability table all come from it, so an operation cannot be
/// dispatched without being listed, nor listed without being dispatched.
struct Operation: Sendable {
    let name: String
    /// What the connecting peer must hold. The transport enforces it with
    /// `Capabilities.required(for:)` before the request reaches the service; a
    /// test keeps the two equal.
    let capability: Capabilities
    /// Changes nothing: its transactions queue ahead of changes (`ReadLane`).
    let reads: Bool
    let run: @Sendable (PortierService, Request, RequestContext) async throws -> OperationOutput

    var supportSocketOnly: Bool { capability == .support }

    init(_ name: String, _ capability: Capabilities, reads: Bool = false,
         _ run: @escaping @Sendable (PortierService, Request, RequestContext) async throws -> OperationOutput) {
        self.name = name
        self.capability = capability
        self.reads = reads
        self.run = run
    }
}

extension PortierService {
    /// Every operation, in the order of SPEC §11.
    static let registry: [Operation] = [
        Operation("hello", .check, reads: true) { s, r, c in try s.hello(r, context: c) },
        Operation("ping", .check, reads: true) { s, r, _ in try s.ping(r) },
        Operation("signup", .manage) { s, r, _ in try await s.signup(r) },
        Operation("user.activate", .manage) { s, r, c in try await s.activate(r, context: c) },
        Operation("user.authenticate", .manage) { s, r, c in try await s.authenticate(r, context: c) },
        Operation("environment.get", .manage, reads: true) { s, r, _ in try await s.environmentGet(r) },
        Operation("user.invite", .manage) { s, r, _ in try await s.invite(r) },
        Operation("user.resend_invitation", .manage) { s, r, _ in try await s.resendInvitation(r) },
        Operation("user.get", .manage, reads: true) { s, r, _ in try await s.userGet(r) },
        Operation("user.list", .manage, reads: true) { s, r, _ in try await s.userList(r) },
        Operation("user.set_role", .manage) { s, r, _ in try await s.setRole(r) },
        Operation("user.block", .manage) { s, r, _ in try await s.block(r) },
        Operation("user.unblock", .manage) { s, r, _ in try await s.unblock(r) },
        Operation("user.remove", .manage) { s, r, _ in try await s.remove(r) },
        Operation("user.offboard", .manage) { s, r, _ in try await s.offboard(r) },
        Operation("user.email.add", .manage) { s, r, _ in try await s.emailAdd(r) },
        Operation("user.email.verify", .manage) { s, r, _ in try await s.emailVerify(r) },
        Operation("user.email.remove", .manage) { s, r, _ in try await s.emailRemove(r) },
        Operation("organisation.create", .manage) { s, r, _ in try await s.organisationCreate(r) },
        Operation("organisation.activate", .manage) { s, r, _ in try await s.organisationActivate(r) },
        Operation("organisation.update", .manage) { s, r, _ in try await s.organisationUpdate(r) },
        Operation("organisation.get", .manage, reads: true) { s, r, _ in try await s.organisationGet(r) },
        Operation("organisation.list", .manage, reads: true) { s, r, _ in try await s.organisationList(r) },
        Operation("member.add", .manage) { s, r, _ in try await s.memberAdd(r) },
        Operation("member.set_role", .manage) { s, r, _ in try await s.memberSetRole(r) },
        Operation("member.remove", .manage) { s, r, _ in try await s.memberRemove(r) },
        Operation("member.list", .manage, reads: true) { s, r, _ in try await s.memberList(r) },
        Operation("partnership.propose", .manage) { s, r, _ in try await s.partnershipPropose(r) },
        Operation("partnership.accept", .manage) { s, r, _ in try await s.partnershipAnswer(r, accept: true) },
        Operation("partnership.decline", .manage) { s, r, _ in try await s.partnershipAnswer(r, accept: false) },
        Operation("partnership.end", .manage) { s, r, _ in try await s.partnershipEnd(r) },
        Operation("partnership.list", .manage, reads: true) { s, r, _ in try await s.partnershipList(r) },
        Operation("inbox.list", .manage, reads: true) { s, r, _ in try await s.inboxList(r) },
        Operation("inbox.accept", .manage) { s, r, _ in try await s.inboxAnswer(r, accept: true) },
        Operation("inbox.decline", .manage) { s, r, _ in try await s.inboxAnswer(r, accept: false) },
        Operation("audit.list", .manage, reads: true) { s, r, _ in try await s.auditList(r) },
        Operation("check", .check, reads: true) { s, r, _ in try await s.check(r) },
        Operation("check.bulk", .check, reads: true) { s, r, _ in try await s.checkBulk(r) },
        Operation("lookup.organisations", .check, reads: true) { s, r, _ in try await s.lookupOrganisations(r) },
        Operation("lookup.users", .check, reads: true) { s, r, _ in try await s.lookupUsers(r) },
        Operation("outbox.list", .mail, reads: true) { s, r, _ in try await s.outboxList(r) },
        Operation("outbox.ack", .mail) { s, r, _ in try await s.outboxAck(r) },
        Operation("support.appoint_admin", .support) { s, r, c in try await s.appointAdministrator(r, context: c) },
        Operation("support.metrics", .support, reads: true) { s, r, c in try s.supportMetrics(r, context: c) },
        Operation("user.password.forgot", .manage) { s, r, _ in try await s.passwordForgot(r) },
        Operation("user.password.reset", .manage) { s, r, c in try await s.passwordReset(r, context: c) },
        Operation("user.password.change", .manage) { s, r, c in try await s.passwordChange(r, context: c) },
    ]

    /// The registry by wire name (names are unique: a duplicate stops the process at first use).
    static let registryByName: [String: Operation] = Dictionary(uniqueKeysWithValues: registry.map { ($0.name, $0) })
}
