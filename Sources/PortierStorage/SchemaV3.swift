// Schema v3: messages per recipient address (R-USR-16).
//
// Global, like the email directory: a stranger's mailbox is the same whichever
// environment writes to it, so the cap counts every environment's messages. It
// holds the normalised address and the time, nothing else, and is pruned after
// a day by the janitor.
let schemaV3 = #"""
CREATE TABLE recipient_messages (
    recipient text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recipient_messages_by_recipient ON recipient_messages (recipient, sent_at);
GRANT SELECT, INSERT ON recipient_messages TO portier_app;
GRANT SELECT, DELETE ON recipient_messages TO portier_janitor;
"""#
