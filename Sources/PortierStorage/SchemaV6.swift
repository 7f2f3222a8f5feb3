// Schema v6: who caused each message to a recipient (R-USR-16): caps count per
// sender and recipient, with a larger total per recipient, so that no third
// party can spend someone else's allowance. Only adds (a column with a
// default, an index): the previous release keeps working on it.
let schemaV6 = #"""
ALTER TABLE recipient_messages ADD COLUMN sender text NOT NULL DEFAULT '';
CREATE INDEX recipient_messages_by_sender ON recipient_messages (recipient, sender, sent_at);
"""#
