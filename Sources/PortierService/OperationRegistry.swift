import PortierProtocol

/// One operation of docs/rules.md §11: its wire name, the capability a peer needs for
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
    /// The keys its `params` may hold (its params type's `keys`).
    let paramKeys: Set<String>
    /// Decodes the params (once, into the operation's params type), then runs it.
    let run: @Sendable (PortierService, Request, RequestContext) async throws -> OperationOutput

    var supportSocketOnly: Bool { capability == .support }

    init<Params: OperationParams>(
        _ name: String, _ capability: Capabilities, reads: Bool = false, _: Params.Type,
        _ run: @escaping @Sendable (PortierService, Params, Request, RequestContext) async throws -> OperationOutput
    ) {
        self.name = name
        self.capability = capability
        self.reads = reads
        paramKeys = Params.keys
        self.run = { service, request, context in
            let params: Params = try decodeParams(request.params)
            return try await run(service, params, request, context)
        }
    }
}

/// Rejects keys the params type does not read, then decodes it.
///
/// Kept out of line: inlined into the async closure above, the release build's
/// coroutine splitting crashed the Swift 6.3.1 compiler (signal 11 in
/// `emitSetAndGetSwiftErrorValueAround`).
@inline(never)
private func decodeParams<Params: OperationParams>(_ params: JSONObject) throws -> Params {
    try params.rejectUnknownKeys(allowed: Params.keys)
    return try Params(params)
}

extension PortierService {
    /// Every operation, in the order of docs/rules.md §11.
    static let registry: [Operation] = [
        Operation("hello", .check, reads: true, NoParams.self) { s, _, r, c in s.hello(r, context: c) },
        Operation("ping", .check, reads: true, NoParams.self) { _, _, _, _ in .result([:]) },
        Operation("signup", .manage, SignupParams.self) { s, p, _, _ in try await s.signup(p) },
        Operation("user.activate", .manage, TokenPasswordParams.self) { s, p, r, c in try await s.activate(p, r, context: c) },
        Operation("user.authenticate", .manage, LoginParams.self) { s, p, r, c in try await s.authenticate(p, r, context: c) },
        Operation("environment.get", .manage, reads: true, NoParams.self) { s, _, r, _ in try await s.environmentGet(r) },
        Operation("user.invite", .manage, InviteParams.self) { s, p, r, _ in try await s.invite(p, r) },
        Operation("user.resend_invitation", .manage, UserParams.self) { s, p, r, _ in try await s.resendInvitation(p, r) },
        Operation("user.get", .manage, reads: true, UserParams.self) { s, p, r, _ in try await s.userGet(p, r) },
        Operation("user.list", .manage, reads: true, UserListParams.self) { s, p, r, _ in try await s.userList(p, r) },
        Operation("user.set_role", .manage, UserRoleParams.self) { s, p, r, _ in try await s.setRole(p, r) },
        Operation("user.block", .manage, UserParams.self) { s, p, r, _ in try await s.block(p, r) },
        Operation("user.unblock", .manage, UserParams.self) { s, p, r, _ in try await s.unblock(p, r) },
        Operation("user.remove", .manage, UserParams.self) { s, p, r, _ in try await s.remove(p, r) },
        Operation("user.offboard", .manage, OffboardParams.self) { s, p, r, _ in try await s.offboard(p, r) },
        Operation("user.email.add", .manage, EmailParams.self) { s, p, r, _ in try await s.emailAdd(p, r) },
        Operation("user.email.verify", .manage, EmailTokenParams.self) { s, p, r, _ in try await s.emailVerify(p, r) },
        Operation("user.email.remove", .manage, EmailParams.self) { s, p, r, _ in try await s.emailRemove(p, r) },
        Operation("organisation.create", .manage, OrganisationCreateParams.self) { s, p, r, _ in try await s.organisationCreate(p, r) },
        Operation("organisation.activate", .manage, OrganisationParams.self) { s, p, r, _ in try await s.organisationActivate(p, r) },
        Operation("organisation.update", .manage, OrganisationUpdateParams.self) { s, p, r, _ in try await s.organisationUpdate(p, r) },
        Operation("organisation.get", .manage, reads: true, OrganisationParams.self) { s, p, r, _ in try await s.organisationGet(p, r) },
        Operation("organisation.list", .manage, reads: true, ListParams<ListedOrganisations>.self) { s, p, r, _ in try await s.organisationList(p, r) },
        Operation("member.add", .manage, MemberAddParams.self) { s, p, r, _ in try await s.memberAdd(p, r) },
        Operation("member.set_role", .manage, MemberRoleParams.self) { s, p, r, _ in try await s.memberSetRole(p, r) },
        Operation("member.remove", .manage, MemberParams.self) { s, p, r, _ in try await s.memberRemove(p, r) },
        Operation("member.list", .manage, reads: true, MemberListParams.self) { s, p, r, _ in try await s.memberList(p, r) },
        Operation("partnership.propose", .manage, ProposeParams.self) { s, p, r, _ in try await s.partnershipPropose(p, r) },
        Operation("partnership.accept", .manage, PartnershipParams.self) { s, p, r, _ in try await s.partnershipAnswer(p, r, accept: true) },
        Operation("partnership.decline", .manage, PartnershipParams.self) { s, p, r, _ in try await s.partnershipAnswer(p, r, accept: false) },
        Operation("partnership.end", .manage, PartnershipParams.self) { s, p, r, _ in try await s.partnershipEnd(p, r) },
        Operation("partnership.list", .manage, reads: true, ListParams<ListedPartnerships>.self) { s, p, r, _ in try await s.partnershipList(p, r) },
        Operation("inbox.list", .manage, reads: true, ListParams<ListedRequests>.self) { s, p, r, _ in try await s.inboxList(p, r) },
        Operation("inbox.accept", .manage, InboxAnswerParams.self) { s, p, r, _ in try await s.inboxAnswer(p, r, accept: true) },
        Operation("inbox.decline", .manage, InboxAnswerParams.self) { s, p, r, _ in try await s.inboxAnswer(p, r, accept: false) },
        Operation("audit.list", .manage, reads: true, ListParams<ListedEvents>.self) { s, p, r, _ in try await s.auditList(p, r) },
        Operation("check", .check, reads: true, CheckQuestion.self) { s, p, r, _ in try await s.check(p, r) },
        Operation("check.bulk", .check, reads: true, CheckBulkParams.self) { s, p, r, _ in try await s.checkBulk(p, r) },
        Operation("lookup.organisations", .check, reads: true, LookupOrganisationsParams.self) { s, p, r, _ in try await s.lookupOrganisations(p, r) },
        Operation("lookup.users", .check, reads: true, LookupUsersParams.self) { s, p, r, _ in try await s.lookupUsers(p, r) },
        Operation("outbox.list", .mail, reads: true, ListParams<ListedMessages>.self) { s, p, _, _ in try await s.outboxList(p) },
        Operation("outbox.ack", .mail, OutboxAckParams.self) { s, p, _, _ in try await s.outboxAck(p) },
        Operation("support.appoint_admin", .support, AppointAdministratorParams.self) { s, p, r, c in try await s.appointAdministrator(p, r, context: c) },
        Operation("support.metrics", .support, reads: true, NoParams.self) { s, _, _, c in try s.supportMetrics(context: c) },
        Operation("user.password.forgot", .manage, EmailParams.self) { s, p, _, _ in try await s.passwordForgot(p) },
        Operation("user.password.reset", .manage, TokenPasswordParams.self) { s, p, r, c in try await s.passwordReset(p, r, context: c) },
        Operation("user.password.change", .manage, PasswordChangeParams.self) { s, p, r, c in try await s.passwordChange(p, r, context: c) },
        Operation("watch", .check, reads: true, WatchParams.self) { s, p, r, c in try await s.watch(p, r, context: c) },
        Operation("watch.cancel", .check, reads: true, WatchCancelParams.self) { s, p, _, c in try s.watchCancel(p, context: c) },
    ]

    /// The registry by wire name (names are unique: a duplicate stops the process at first use).
    static let registryByName: [String: Operation] = Dictionary(uniqueKeysWithValues: registry.map { ($0.name, $0) })
}
