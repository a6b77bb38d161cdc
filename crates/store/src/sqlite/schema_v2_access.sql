-- certbind schema, version 2: users, policies and the audit log.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- NULL: one of the account's root keys.
ALTER TABLE access_keys ADD COLUMN user_id INTEGER REFERENCES users(id);
CREATE INDEX access_keys_user ON access_keys(user_id);

CREATE TABLE policies (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE user_policies (
    user_id   INTEGER NOT NULL REFERENCES users(id),
    policy_id INTEGER NOT NULL REFERENCES policies(id),
    PRIMARY KEY (user_id, policy_id)
) WITHOUT ROWID;
CREATE INDEX user_policies_policy ON user_policies(policy_id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    account_id  INTEGER,
    user_name   TEXT,
    key_id      TEXT,
    source      TEXT,
    dialect     TEXT NOT NULL,
    action      TEXT NOT NULL,
    resources   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error_code  TEXT,
    request_id  TEXT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log(account_id, id);
