-- certbind schema, version 1.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revision', 0);

CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE access_keys (
    key_id        TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    secret_sealed BLOB NOT NULL,
    enabled       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX access_keys_account ON access_keys(account_id);

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE certificates (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    name           TEXT NOT NULL,
    common_name    TEXT,
    sans           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    issuer         TEXT NOT NULL,
    serial         TEXT NOT NULL,
    not_before     INTEGER NOT NULL,
    not_after      INTEGER NOT NULL,
    fingerprint    TEXT NOT NULL,
    key_algorithm  TEXT NOT NULL,
    key_bits       INTEGER NOT NULL,
    chain_pem      TEXT NOT NULL,
    key_sealed     BLOB NOT NULL,
    allow_download INTEGER NOT NULL,
    attributes     TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX certificates_account ON certificates(account_id, fingerprint);

CREATE TABLE load_balancers (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name       TEXT NOT NULL,
    lb_type    TEXT NOT NULL,
    region     TEXT NOT NULL,
    address    TEXT,
    attributes TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX load_balancers_account ON load_balancers(account_id);

CREATE TABLE listeners (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    load_balancer_id INTEGER NOT NULL REFERENCES load_balancers(id),
    name             TEXT NOT NULL,
    protocol         TEXT NOT NULL,
    udp              INTEGER NOT NULL,
    port             INTEGER NOT NULL,
    attributes       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    UNIQUE (load_balancer_id, port, udp)
);
CREATE INDEX listeners_account ON listeners(account_id);

-- One row per (listener, certificate). A row that is gone is "Dissociated".
CREATE TABLE bindings (
    listener_id INTEGER NOT NULL REFERENCES listeners(id),
    cert_id     INTEGER NOT NULL REFERENCES certificates(id),
    role        TEXT NOT NULL,
    status      TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    PRIMARY KEY (listener_id, cert_id)
) WITHOUT ROWID;
CREATE INDEX bindings_cert ON bindings(cert_id, listener_id);
-- Settling finds the bindings a served revision completes. (SQLite uses a partial index
-- only when the query repeats its condition, hence one per status.)
CREATE INDEX bindings_associating ON bindings(revision) WHERE status = 'Associating';
CREATE INDEX bindings_dissociating ON bindings(revision) WHERE status = 'Dissociating';

CREATE TABLE backends (
    id          INTEGER PRIMARY KEY,
    listener_id INTEGER NOT NULL REFERENCES listeners(id),
    address     TEXT NOT NULL,
    weight      INTEGER NOT NULL
);
CREATE INDEX backends_listener ON backends(listener_id);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    old_cert_id  INTEGER,
    new_cert_id  INTEGER,
    client_token TEXT,
    request      TEXT NOT NULL,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);
CREATE INDEX jobs_account ON jobs(account_id, id);
CREATE INDEX jobs_unfinished ON jobs(state) WHERE state IN ('pending', 'running');

CREATE TABLE job_targets (
    job_id           INTEGER NOT NULL REFERENCES jobs(id),
    seq              INTEGER NOT NULL,
    listener_id      INTEGER NOT NULL,
    load_balancer_id INTEGER NOT NULL,
    resource_type    TEXT NOT NULL,
    region           TEXT NOT NULL,
    action           TEXT NOT NULL,
    old_cert_id      INTEGER,
    new_cert_id      INTEGER,
    status           TEXT NOT NULL,
    error            TEXT,
    revision         INTEGER,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
-- The runner's next batch, and the targets a served revision completes.
CREATE INDEX job_targets_pending ON job_targets(job_id, seq) WHERE status = 'pending';
CREATE INDEX job_targets_running ON job_targets(job_id, revision) WHERE status = 'running';

CREATE TABLE idempotency (
    account_id   INTEGER NOT NULL,
    token        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, token)
);
