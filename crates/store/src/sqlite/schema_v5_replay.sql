-- certbind schema, version 5: signed requests remembered for their validity window, so a
-- captured request is refused when sent again, after a restart and on any node sharing
-- the store.
--
-- `scope` names what the key is (a dialect's nonce or signature), `key` its value
-- (bounded in length by the dialects), `action` what the request asked for the first
-- time (a signature that does not cover the action must not be re-sent as another
-- action), `seen_at` when it first arrived (unix seconds), `expires_at` when the request would be refused anyway (its timestamp out of
-- the window), after which the row is pruned.
CREATE TABLE seen_requests (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    action     TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX seen_requests_expiry ON seen_requests (expires_at);
