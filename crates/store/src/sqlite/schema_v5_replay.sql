-- certbind schema, version 5: signed requests remembered for their validity window, so a
-- captured request is refused when sent again, after a restart and on any node sharing
-- the store.
--
-- `scope` names what the key is (a dialect's nonce or signature), `key` is the value
-- (bounded in length by the dialects), `expires_at` is when a replay would be refused
-- anyway (its timestamp out of the window), after which the row may be pruned.
CREATE TABLE seen_requests (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX seen_requests_expiry ON seen_requests (expires_at);
