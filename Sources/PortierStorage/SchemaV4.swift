// Schema v4: password recovery (R-USR-14), admin_appointed notices (R-SUP-1),
// and withdrawn outbox messages (§11).
//
// A withdrawn message (its invitation revoked or replaced before the mailer
// took it) is marked acknowledged with its token erased, so it leaves
// `outbox.list` and the partial index, and acknowledging it later is the same
// no-op as acknowledging twice; `withdrawn_at` says why it went.
let schemaV4 = #"""
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
    CHECK (purpose IN ('activation', 'email_verification', 'password_reset')) NOT VALID;
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('activation', 'email_verification', 'membership_request', 'partnership_request',
                    'domain_join', 'password_reset', 'admin_appointed')) NOT VALID;
ALTER TABLE outbox ADD COLUMN withdrawn_at timestamptz;
-- Checked apart, without the exclusive lock of ADD CONSTRAINT on big tables.
ALTER TABLE tokens VALIDATE CONSTRAINT tokens_purpose_check;
ALTER TABLE outbox VALIDATE CONSTRAINT outbox_kind_check;
"""#
