//! The SQLite transaction: every `Tx` method as SQL.

use super::fair::FairGuard;
use super::rows::{self, *};
use crate::tx::*;
use crate::StoreError;
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::now_unix;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub(crate) struct SqliteTx<'a> {
    conn: FairGuard<'a, Connection>,
    open: bool,
    next_revision: Option<i64>,
}

impl<'a> SqliteTx<'a> {
    pub(crate) fn begin(conn: FairGuard<'a, Connection>, begin: &str) -> Result<Self, StoreError> {
        conn.execute_batch(begin)?;
        Ok(SqliteTx { conn, open: true, next_revision: None })
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing useful to do with a failed rollback: the connection drops the
            // transaction when it is reused or closed anyway.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Dynamic WHERE clauses with their parameters.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Where {
    fn new(first: &str, value: i64) -> Self {
        Where { clauses: vec![first.to_string()], values: vec![Value::Integer(value)] }
    }
    fn and(&mut self, clause: &str, value: Value) {
        self.clauses.push(clause.to_string());
        self.values.push(value);
    }
    fn and_in(&mut self, column: &str, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let marks = vec!["?"; ids.len()].join(", ");
        self.clauses.push(format!("{column} IN ({marks})"));
        self.values.extend(ids.iter().map(|id| Value::Integer(*id)));
    }
    fn and_in_text(&mut self, column: &str, items: &[String]) {
        if items.is_empty() {
            return;
        }
        let marks = vec!["?"; items.len()].join(", ");
        self.clauses.push(format!("{column} IN ({marks})"));
        self.values.extend(items.iter().map(|t| Value::Text(t.clone())));
    }
    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

fn page_limit(limit: u64) -> i64 {
    if limit == 0 {
        i64::MAX
    } else {
        limit as i64
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

impl SqliteTx<'_> {
    fn count(&self, from_where: &str, w: &Where) -> StoreResult<u64> {
        let n: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM {from_where} WHERE {}", w.sql()),
            params_from_iter(&w.values),
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn job_counts(&self, job: &mut Job) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT resource_type, region, status, COUNT(*) FROM job_targets WHERE job_id = ?1 \
             GROUP BY resource_type, region, status",
        )?;
        let mut groups: BTreeMap<(String, String), TargetCounts> = BTreeMap::new();
        let mut totals = TargetCounts::default();
        let mut rows = stmt.query([job.id.0])?;
        while let Some(row) = rows.next()? {
            let status = parse_enum(row, 2, TargetStatus::parse, "target status")?;
            let n: i64 = row.get(3)?;
            groups.entry((row.get(0)?, row.get(1)?)).or_default().add(status, n as u64);
            totals.add(status, n as u64);
        }
        job.counts = totals;
        job.groups = groups
            .into_iter()
            .filter_map(|((kind, region), counts)| {
                LbType::parse(&kind).map(|resource_type| GroupCounts { resource_type, region, counts })
            })
            .collect();
        Ok(())
    }
}

impl Tx for SqliteTx<'_> {
    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }

    fn revision(&mut self) -> StoreResult<i64> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| r.get(0))?)
    }

    fn next_revision(&mut self) -> StoreResult<i64> {
        if let Some(rev) = self.next_revision {
            return Ok(rev);
        }
        let rev: i64 = self.conn.query_row(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
            [],
            |r| r.get(0),
        )?;
        self.next_revision = Some(rev);
        Ok(rev)
    }

    // ---- accounts, keys, projects ----

    fn insert_account(&mut self, name: &str) -> StoreResult<Account> {
        let now = now_unix();
        self.conn.execute("INSERT INTO accounts (name, created_at) VALUES (?1, ?2)", params![name, now])?;
        Ok(Account { id: AccountId(self.conn.last_insert_rowid()), name: name.to_string(), created_at: now })
    }

    fn get_account(&mut self, id: AccountId) -> StoreResult<Option<Account>> {
        Ok(self
            .conn
            .query_row(&format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"), [id.0], rows::account)
            .optional()?)
    }

    fn list_accounts(&mut self) -> StoreResult<Vec<Account>> {
        let mut stmt = self.conn.prepare(&format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY id"))?;
        let out = stmt.query_map([], rows::account)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn insert_access_key(&mut self, key: &StoredAccessKey) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO access_keys (key_id, account_id, user_id, secret_sealed, enabled, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.key_id,
                key.account_id.0,
                key.user_id.map(|u| u.0),
                key.secret_sealed,
                key.enabled,
                key.created_at
            ],
        )?;
        Ok(())
    }

    fn get_access_key(&mut self, key_id: &str) -> StoreResult<Option<StoredAccessKey>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key_id, account_id, user_id, secret_sealed, enabled, created_at FROM access_keys WHERE key_id = ?1",
        )?;
        Ok(stmt.query_row([key_id], stored_key).optional()?)
    }

    fn list_access_keys(&mut self, account: AccountId) -> StoreResult<Vec<StoredAccessKey>> {
        let mut stmt = self.conn.prepare(
            "SELECT key_id, account_id, user_id, secret_sealed, enabled, created_at FROM access_keys \
             WHERE account_id = ?1 AND user_id IS NULL ORDER BY created_at, key_id",
        )?;
        let out = stmt.query_map([account.0], stored_key)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn set_access_key_enabled(&mut self, key_id: &str, enabled: bool) -> StoreResult<bool> {
        Ok(self.conn.execute("UPDATE access_keys SET enabled = ?2 WHERE key_id = ?1", params![key_id, enabled])? > 0)
    }

    fn delete_access_key(&mut self, key_id: &str) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM access_keys WHERE key_id = ?1", [key_id])? > 0)
    }

    fn insert_project(&mut self, account: AccountId, name: &str, is_default: bool) -> StoreResult<Project> {
        let now = now_unix();
        self.conn.execute(
            "INSERT INTO projects (account_id, name, is_default, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![account.0, name, is_default, now],
        )?;
        Ok(Project {
            id: ProjectId(self.conn.last_insert_rowid()),
            account_id: account,
            name: name.to_string(),
            is_default,
            created_at: now,
        })
    }

    fn get_project(&mut self, account: AccountId, id: ProjectId) -> StoreResult<Option<Project>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {PROJECT_COLS} FROM projects WHERE id = ?1 AND account_id = ?2"),
                [id.0, account.0],
                rows::project,
            )
            .optional()?)
    }

    fn default_project(&mut self, account: AccountId) -> StoreResult<Option<Project>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {PROJECT_COLS} FROM projects WHERE account_id = ?1 AND is_default ORDER BY id LIMIT 1"
                ),
                [account.0],
                rows::project,
            )
            .optional()?)
    }

    fn list_projects(&mut self, account: AccountId) -> StoreResult<Vec<Project>> {
        let mut stmt =
            self.conn.prepare(&format!("SELECT {PROJECT_COLS} FROM projects WHERE account_id = ?1 ORDER BY id"))?;
        let out = stmt.query_map([account.0], rows::project)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    // ---- certificates ----

    fn insert_certificate(
        &mut self,
        cert: &NewCertificate,
        seal: &mut dyn FnMut(CertId) -> StoreResult<Vec<u8>>,
    ) -> StoreResult<Certificate> {
        let now = now_unix();
        let sans = serde_json::to_string(&cert.sans).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The row is inserted with an empty key first so the seal can be bound to its id.
        self.conn.execute(
            "INSERT INTO certificates (account_id, project_id, name, common_name, sans, subject, issuer, serial, not_before, \
             not_after, fingerprint, key_algorithm, key_bits, chain_pem, key_sealed, allow_download, attributes, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, x'', ?15, ?16, ?17)",
            params![
                cert.account_id.0,
                cert.project_id.0,
                cert.name,
                cert.common_name,
                sans,
                cert.subject,
                cert.issuer,
                cert.serial,
                cert.not_before,
                cert.not_after,
                cert.fingerprint_sha256,
                cert.key_algorithm.as_str(),
                cert.key_bits,
                cert.chain_pem,
                cert.allow_download,
                cert.attributes.to_string(),
                now
            ],
        )?;
        let id = CertId(self.conn.last_insert_rowid());
        let sealed = seal(id)?;
        self.conn.execute("UPDATE certificates SET key_sealed = ?2 WHERE id = ?1", params![id.0, sealed])?;
        Ok(Certificate {
            id,
            account_id: cert.account_id,
            project_id: cert.project_id,
            name: cert.name.clone(),
            common_name: cert.common_name.clone(),
            sans: cert.sans.clone(),
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            serial: cert.serial.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            fingerprint_sha256: cert.fingerprint_sha256.clone(),
            key_algorithm: cert.key_algorithm,
            key_bits: cert.key_bits,
            chain_pem: cert.chain_pem.clone(),
            allow_download: cert.allow_download,
            attributes: cert.attributes.clone(),
            created_at: now,
        })
    }

    fn get_certificate(&mut self, account: AccountId, id: CertId) -> StoreResult<Option<Certificate>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {CERT_COLS} FROM certificates WHERE id = ?1 AND account_id = ?2"))?;
        Ok(stmt.query_row([id.0, account.0], rows::certificate).optional()?)
    }

    fn certificate_key_sealed(&mut self, id: CertId) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.conn.query_row("SELECT key_sealed FROM certificates WHERE id = ?1", [id.0], |r| r.get(0)).optional()?)
    }

    fn certificates_by_ids(&mut self, ids: &[CertId]) -> StoreResult<Vec<Certificate>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut stmt = self.conn.prepare_cached(&format!("SELECT {CERT_COLS} FROM certificates WHERE id = ?1"))?;
        for id in ids {
            if let Some(cert) = stmt.query_row([id.0], rows::certificate).optional()? {
                out.push(cert);
            }
        }
        Ok(out)
    }

    fn find_certificate_by_fingerprint(
        &mut self,
        account: AccountId,
        fingerprint: &str,
    ) -> StoreResult<Option<CertId>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM certificates WHERE account_id = ?1 AND fingerprint = ?2 ORDER BY id LIMIT 1",
                params![account.0, fingerprint],
                |r| r.get(0).map(CertId),
            )
            .optional()?)
    }

    fn list_certificates(
        &mut self,
        account: AccountId,
        filter: &CertificateFilter,
    ) -> StoreResult<(Vec<Certificate>, u64)> {
        let mut w = Where::new("account_id = ?", account.0);
        if let Some(project) = filter.project_id {
            w.and("project_id = ?", Value::Integer(project.0));
        }
        if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
            let pattern = format!("%{}%", search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            w.clauses.push(
                "(name LIKE ? ESCAPE '\\' OR common_name LIKE ? ESCAPE '\\' OR sans LIKE ? ESCAPE '\\')".to_string(),
            );
            w.values.extend([text(&pattern), text(&pattern), text(&pattern)]);
        }
        w.and_in("id", &filter.ids.iter().map(|i| i.0).collect::<Vec<_>>());
        if let Some(before) = filter.expiring_before {
            w.and("not_after < ?", Value::Integer(before));
        }
        let total = self.count("certificates", &w)?;
        let order = match filter.sort_by_expiry {
            Some(true) => "not_after ASC, id",
            Some(false) => "not_after DESC, id",
            None => "id",
        };
        let sql = format!("SELECT {CERT_COLS} FROM certificates WHERE {} ORDER BY {order} LIMIT ? OFFSET ?", w.sql());
        let mut values = w.values.clone();
        values.push(Value::Integer(page_limit(filter.limit)));
        values.push(Value::Integer(filter.offset as i64));
        let mut stmt = self.conn.prepare(&sql)?;
        let out = stmt.query_map(params_from_iter(&values), rows::certificate)?.collect::<Result<_, _>>()?;
        Ok((out, total))
    }

    fn update_certificate(&mut self, cert: &Certificate) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE certificates SET name = ?2, project_id = ?3, attributes = ?4 WHERE id = ?1",
            params![cert.id.0, cert.name, cert.project_id.0, cert.attributes.to_string()],
        )?;
        Ok(())
    }

    fn delete_certificate(&mut self, account: AccountId, id: CertId) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM certificates WHERE id = ?1 AND account_id = ?2", [id.0, account.0])? > 0)
    }

    fn count_certificate_bindings(&mut self, id: CertId) -> StoreResult<u64> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM bindings WHERE cert_id = ?1", [id.0], |r| r.get(0))?;
        Ok(n as u64)
    }

    // ---- load balancers and listeners ----

    fn insert_load_balancer(&mut self, lb: &NewLoadBalancer) -> StoreResult<LoadBalancer> {
        let now = now_unix();
        self.conn.execute(
            "INSERT INTO load_balancers (account_id, project_id, name, lb_type, region, address, attributes, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                lb.account_id.0,
                lb.project_id.0,
                lb.name,
                lb.lb_type.as_str(),
                lb.region,
                lb.address.map(|a| a.to_string()),
                lb.attributes.to_string(),
                now
            ],
        )?;
        Ok(LoadBalancer {
            id: LoadBalancerId(self.conn.last_insert_rowid()),
            account_id: lb.account_id,
            project_id: lb.project_id,
            name: lb.name.clone(),
            lb_type: lb.lb_type,
            region: lb.region.clone(),
            address: lb.address,
            attributes: lb.attributes.clone(),
            created_at: now,
        })
    }

    fn get_load_balancer(&mut self, account: AccountId, id: LoadBalancerId) -> StoreResult<Option<LoadBalancer>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {LB_COLS} FROM load_balancers WHERE id = ?1 AND account_id = ?2"))?;
        Ok(stmt.query_row([id.0, account.0], rows::load_balancer).optional()?)
    }

    fn list_load_balancers(
        &mut self,
        account: AccountId,
        filter: &LoadBalancerFilter,
    ) -> StoreResult<(Vec<LoadBalancer>, u64)> {
        let mut w = Where::new("account_id = ?", account.0);
        if let Some(project) = filter.project_id {
            w.and("project_id = ?", Value::Integer(project.0));
        }
        w.and_in("id", &filter.ids.iter().map(|i| i.0).collect::<Vec<_>>());
        if let Some(t) = filter.lb_type {
            w.and("lb_type = ?", text(t.as_str()));
        }
        if let Some(region) = &filter.region {
            w.and("region = ?", text(region));
        }
        let total = self.count("load_balancers", &w)?;
        let sql = format!("SELECT {LB_COLS} FROM load_balancers WHERE {} ORDER BY id LIMIT ? OFFSET ?", w.sql());
        let mut values = w.values.clone();
        values.push(Value::Integer(page_limit(filter.limit)));
        values.push(Value::Integer(filter.offset as i64));
        let mut stmt = self.conn.prepare(&sql)?;
        let out = stmt.query_map(params_from_iter(&values), rows::load_balancer)?.collect::<Result<_, _>>()?;
        Ok((out, total))
    }

    fn update_load_balancer(&mut self, lb: &LoadBalancer) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE load_balancers SET name = ?2, address = ?3, attributes = ?4 WHERE id = ?1",
            params![lb.id.0, lb.name, lb.address.map(|a| a.to_string()), lb.attributes.to_string()],
        )?;
        Ok(())
    }

    fn delete_load_balancer(&mut self, account: AccountId, id: LoadBalancerId) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM load_balancers WHERE id = ?1 AND account_id = ?2", [id.0, account.0])? > 0)
    }

    fn count_listeners(&mut self, lb: LoadBalancerId) -> StoreResult<u64> {
        let n: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM listeners WHERE load_balancer_id = ?1", [lb.0], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn insert_listener(&mut self, l: &NewListener) -> StoreResult<Listener> {
        let now = now_unix();
        let udp = matches!(l.protocol, Protocol::Udp | Protocol::Quic);
        self.conn.execute(
            "INSERT INTO listeners (account_id, load_balancer_id, name, protocol, udp, port, attributes, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                l.account_id.0,
                l.load_balancer_id.0,
                l.name,
                l.protocol.as_str(),
                udp,
                l.port,
                l.attributes.to_string(),
                now
            ],
        )?;
        Ok(Listener {
            id: ListenerId(self.conn.last_insert_rowid()),
            account_id: l.account_id,
            load_balancer_id: l.load_balancer_id,
            name: l.name.clone(),
            protocol: l.protocol,
            port: l.port,
            attributes: l.attributes.clone(),
            created_at: now,
        })
    }

    fn get_listener(&mut self, account: AccountId, id: ListenerId) -> StoreResult<Option<Listener>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {LISTENER_COLS} FROM listeners WHERE id = ?1 AND account_id = ?2"))?;
        Ok(stmt.query_row([id.0, account.0], rows::listener).optional()?)
    }

    fn list_listeners(&mut self, account: AccountId, filter: &ListenerFilter) -> StoreResult<(Vec<Listener>, u64)> {
        let mut w = Where::new("account_id = ?", account.0);
        if let Some(lb) = filter.load_balancer_id {
            w.and("load_balancer_id = ?", Value::Integer(lb.0));
        }
        w.and_in("id", &filter.ids.iter().map(|i| i.0).collect::<Vec<_>>());
        if let Some(p) = filter.protocol {
            w.and("protocol = ?", text(p.as_str()));
        }
        let total = self.count("listeners", &w)?;
        let sql = format!("SELECT {LISTENER_COLS} FROM listeners WHERE {} ORDER BY id LIMIT ? OFFSET ?", w.sql());
        let mut values = w.values.clone();
        values.push(Value::Integer(page_limit(filter.limit)));
        values.push(Value::Integer(filter.offset as i64));
        let mut stmt = self.conn.prepare(&sql)?;
        let out = stmt.query_map(params_from_iter(&values), rows::listener)?.collect::<Result<_, _>>()?;
        Ok((out, total))
    }

    fn update_listener(&mut self, l: &Listener) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE listeners SET name = ?2, attributes = ?3 WHERE id = ?1",
            params![l.id.0, l.name, l.attributes.to_string()],
        )?;
        Ok(())
    }

    fn delete_listener(&mut self, account: AccountId, id: ListenerId) -> StoreResult<bool> {
        if self.get_listener(account, id)?.is_none() {
            return Ok(false);
        }
        self.conn.execute("DELETE FROM bindings WHERE listener_id = ?1", [id.0])?;
        self.conn.execute("DELETE FROM backends WHERE listener_id = ?1", [id.0])?;
        Ok(self.conn.execute("DELETE FROM listeners WHERE id = ?1", [id.0])? > 0)
    }

    fn listener_on_port(
        &mut self,
        lb: &LoadBalancer,
        port: u16,
        udp: bool,
    ) -> StoreResult<Option<(ListenerId, LoadBalancerId)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT l.id, l.load_balancer_id FROM listeners l JOIN load_balancers lb ON lb.id = l.load_balancer_id \
                 WHERE l.port = ?2 AND l.udp = ?3 AND (l.load_balancer_id = ?1 OR lb.address IS ?4) LIMIT 1",
                params![lb.id.0, port, udp, lb.address.map(|a| a.to_string())],
                |r| Ok((ListenerId(r.get(0)?), LoadBalancerId(r.get(1)?))),
            )
            .optional()?)
    }

    // ---- bindings ----

    fn listener_bindings(&mut self, listener: ListenerId) -> StoreResult<Vec<Binding>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {BINDING_COLS} FROM bindings WHERE listener_id = ?1 ORDER BY role DESC, revision, cert_id"
        ))?;
        let out = stmt.query_map([listener.0], rows::binding)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn put_binding(&mut self, b: &Binding) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO bindings (listener_id, cert_id, role, status, revision) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (listener_id, cert_id) DO UPDATE SET role = excluded.role, status = excluded.status, revision = excluded.revision",
        )?;
        stmt.execute(params![b.listener_id.0, b.cert_id.0, b.role.as_str(), b.status.as_str(), b.revision])?;
        Ok(())
    }

    fn delete_binding(&mut self, listener: ListenerId, cert: CertId) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached("DELETE FROM bindings WHERE listener_id = ?1 AND cert_id = ?2")?;
        stmt.execute([listener.0, cert.0])?;
        Ok(())
    }

    fn count_additional_bindings(&mut self, lb: LoadBalancerId) -> StoreResult<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM bindings b JOIN listeners l ON l.id = b.listener_id \
             WHERE l.load_balancer_id = ?1 AND b.role = 'additional' AND b.status <> 'Dissociating'",
            [lb.0],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn listeners_bound_to(
        &mut self,
        account: AccountId,
        cert: CertId,
        scope: &BindingScope,
    ) -> StoreResult<Vec<BoundListener>> {
        let w = bound_to_scope(account, cert, scope);
        let sql = format!(
            "SELECT l.id, l.load_balancer_id, lb.lb_type, lb.region, lb.project_id, b.role \
             FROM bindings b JOIN listeners l ON l.id = b.listener_id JOIN load_balancers lb ON lb.id = l.load_balancer_id \
             WHERE {} ORDER BY l.id",
            w.sql()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let out = stmt
            .query_map(params_from_iter(&w.values), |row| {
                Ok(BoundListener {
                    listener_id: ListenerId(row.get(0)?),
                    load_balancer_id: LoadBalancerId(row.get(1)?),
                    lb_type: parse_enum(row, 2, LbType::parse, "load balancer type")?,
                    region: row.get(3)?,
                    project_id: ProjectId(row.get(4)?),
                    role: parse_enum(row, 5, BindingRole::parse, "binding role")?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(out)
    }

    // ---- backends ----

    fn insert_backend(&mut self, listener: ListenerId, address: &str, weight: u32) -> StoreResult<Backend> {
        self.conn.execute(
            "INSERT INTO backends (listener_id, address, weight) VALUES (?1, ?2, ?3)",
            params![listener.0, address, weight],
        )?;
        Ok(Backend {
            id: BackendId(self.conn.last_insert_rowid()),
            listener_id: listener,
            address: address.to_string(),
            weight,
        })
    }

    fn list_backends(&mut self, listener: ListenerId) -> StoreResult<Vec<Backend>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, listener_id, address, weight FROM backends WHERE listener_id = ?1 ORDER BY id",
        )?;
        let out = stmt.query_map([listener.0], backend)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn delete_backend(&mut self, listener: ListenerId, id: BackendId) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM backends WHERE id = ?1 AND listener_id = ?2", [id.0, listener.0])? > 0)
    }

    // ---- jobs ----

    fn insert_job(&mut self, job: &NewJob, targets: &[NewTarget]) -> StoreResult<JobId> {
        let now = now_unix();
        self.conn.execute(
            "INSERT INTO jobs (account_id, kind, state, old_cert_id, new_cert_id, client_token, request, created_at) \
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7)",
            params![
                job.account_id.0,
                job.kind.as_str(),
                job.old_cert_id.map(|c| c.0),
                job.new_cert_id.map(|c| c.0),
                job.client_token,
                job.request.to_string(),
                now
            ],
        )?;
        let id = JobId(self.conn.last_insert_rowid());
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO job_targets (job_id, seq, listener_id, load_balancer_id, resource_type, region, action, \
             old_cert_id, new_cert_id, status, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (seq, t) in targets.iter().enumerate() {
            let status = if t.applied_at_revision.is_some() { TargetStatus::Running } else { TargetStatus::Pending };
            stmt.execute(params![
                id.0,
                seq as i64,
                t.listener_id.0,
                t.load_balancer_id.0,
                t.resource_type.as_str(),
                t.region,
                t.action.as_str(),
                t.old_cert_id.map(|c| c.0),
                t.new_cert_id.map(|c| c.0),
                status.as_str(),
                t.applied_at_revision
            ])?;
        }
        Ok(id)
    }

    fn insert_replace_job(&mut self, job: &NewJob, scope: &BindingScope) -> StoreResult<(JobId, u64)> {
        let (Some(old), Some(new)) = (job.old_cert_id, job.new_cert_id) else {
            return Err(StoreError::Corrupt("a replace job needs an old and a new certificate".into()));
        };
        let id = self.insert_job(job, &[])?;
        let w = bound_to_scope(job.account_id, old, scope);
        // Sequenced by listener id: unique within the job (a listener binds a certificate
        // once) and already in order, so no sort over 100k rows.
        let sql = format!(
            "INSERT INTO job_targets (job_id, seq, listener_id, load_balancer_id, resource_type, region, action, \
             old_cert_id, new_cert_id, status, revision) \
             SELECT ?, l.id, l.id, l.load_balancer_id, lb.lb_type, lb.region, 'replace', \
             ?, ?, 'pending', NULL \
             FROM bindings b JOIN listeners l ON l.id = b.listener_id JOIN load_balancers lb ON lb.id = l.load_balancer_id \
             WHERE {}",
            w.sql()
        );
        let mut values = vec![Value::Integer(id.0), Value::Integer(old.0), Value::Integer(new.0)];
        values.extend(w.values);
        let count = self.conn.execute(&sql, params_from_iter(&values))? as u64;
        Ok((id, count))
    }

    fn get_job(&mut self, account: AccountId, id: JobId) -> StoreResult<Option<Job>> {
        let job = self
            .conn
            .query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1 AND account_id = ?2"),
                [id.0, account.0],
                rows::job,
            )
            .optional()?;
        match job {
            Some(mut job) => {
                self.job_counts(&mut job)?;
                Ok(Some(job))
            }
            None => Ok(None),
        }
    }

    fn list_jobs(&mut self, account: AccountId, filter: &JobFilter) -> StoreResult<(Vec<Job>, u64)> {
        let mut w = Where::new("account_id = ?", account.0);
        if let Some(state) = filter.state {
            w.and("state = ?", text(state.as_str()));
        }
        if let Some(kind) = filter.kind {
            w.and("kind = ?", text(kind.as_str()));
        }
        if let Some(cert) = filter.old_cert_id {
            w.and("old_cert_id = ?", Value::Integer(cert.0));
        }
        let total = self.count("jobs", &w)?;
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE {} ORDER BY id DESC LIMIT ? OFFSET ?", w.sql());
        let mut values = w.values.clone();
        values.push(Value::Integer(page_limit(filter.limit)));
        values.push(Value::Integer(filter.offset as i64));
        let mut jobs: Vec<Job> = {
            let mut stmt = self.conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(&values), rows::job)?.collect::<Result<_, _>>()?;
            rows
        };
        for job in &mut jobs {
            self.job_counts(job)?;
        }
        Ok((jobs, total))
    }

    fn job_targets(&mut self, job: JobId, offset: u64, limit: u64) -> StoreResult<Vec<JobTarget>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TARGET_COLS} FROM job_targets WHERE job_id = ?1 ORDER BY seq LIMIT ?2 OFFSET ?3"
        ))?;
        let out = stmt.query_map([job.0, page_limit(limit), offset as i64], rows::target)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn unfinished_jobs(&mut self) -> StoreResult<Vec<Job>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {JOB_COLS} FROM jobs WHERE state IN ('pending', 'running') ORDER BY id"
        ))?;
        let out = stmt.query_map([], rows::job)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn apply_replace_batch(
        &mut self,
        job: JobId,
        old: CertId,
        new: CertId,
        revision: i64,
        limit: u64,
    ) -> StoreResult<ReplaceBatch> {
        let conn = &self.conn;
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS replace_batch (
                 seq INTEGER PRIMARY KEY, listener_id INTEGER NOT NULL, old_role TEXT, has_new INTEGER NOT NULL);
             DELETE FROM temp.replace_batch;",
        )?;
        // Each pending target with the role `old` plays on its listener (NULL: not bound)
        // and whether `new` is bound there already.
        let considered = conn
            .prepare_cached(
                "INSERT INTO temp.replace_batch (seq, listener_id, old_role, has_new)
                 SELECT t.seq, t.listener_id,
                        (SELECT b.role FROM bindings b
                          WHERE b.listener_id = t.listener_id AND b.cert_id = ?2 AND b.status <> 'Dissociating'),
                        EXISTS (SELECT 1 FROM bindings b
                          WHERE b.listener_id = t.listener_id AND b.cert_id = ?3 AND b.status <> 'Dissociating')
                 FROM job_targets t INDEXED BY job_targets_pending WHERE t.job_id = ?1 AND t.status = 'pending' ORDER BY t.seq LIMIT ?4",
            )?
            .execute(params![job.0, old.0, new.0, page_limit(limit)])? as u64;
        if considered == 0 {
            return Ok(ReplaceBatch::default());
        }
        conn.prepare_cached(
            "INSERT INTO bindings (listener_id, cert_id, role, status, revision)
             SELECT listener_id, ?1, old_role, 'Associating', ?2 FROM temp.replace_batch
             WHERE old_role IS NOT NULL AND NOT has_new
             ON CONFLICT (listener_id, cert_id) DO UPDATE
             SET role = excluded.role, status = excluded.status, revision = excluded.revision",
        )?
        .execute(params![new.0, revision])?;
        conn.prepare_cached(
            "UPDATE bindings SET status = 'Dissociating', revision = ?2
             WHERE cert_id = ?1 AND status <> 'Dissociating' AND listener_id IN
                 (SELECT listener_id FROM temp.replace_batch WHERE old_role IS NOT NULL AND NOT has_new)",
        )?
        .execute(params![old.0, revision])?;
        let applied = conn
            .prepare_cached(
                "UPDATE job_targets SET status = 'running', revision = ?2
                 WHERE job_id = ?1 AND seq IN (SELECT seq FROM temp.replace_batch
                     WHERE (old_role IS NOT NULL AND NOT has_new) OR (old_role IS NULL AND has_new))",
            )?
            .execute(params![job.0, revision])? as u64;
        let error = format!("listener is no longer bound to {old} (changed or deleted since the job was planned)");
        let failed = conn
            .prepare_cached(
                "UPDATE job_targets SET status = 'failed', error = ?2
                 WHERE job_id = ?1 AND seq IN (SELECT seq FROM temp.replace_batch WHERE old_role IS NULL AND NOT has_new)",
            )?
            .execute(params![job.0, error])? as u64;
        let needs_review = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TARGET_COLS} FROM job_targets WHERE job_id = ?1 AND seq IN
                     (SELECT seq FROM temp.replace_batch WHERE old_role IS NOT NULL AND has_new) ORDER BY seq"
            ))?;
            let rows = stmt.query_map([job.0], rows::target)?.collect::<Result<Vec<_>, _>>()?;
            rows
        };
        Ok(ReplaceBatch { considered, applied, failed, needs_review })
    }

    fn mark_job_running(&mut self, job: JobId) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?2) WHERE id = ?1 AND state = 'pending'",
            params![job.0, now_unix()],
        )?;
        Ok(())
    }

    fn pending_targets(&mut self, job: JobId, limit: u64) -> StoreResult<Vec<JobTarget>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TARGET_COLS} FROM job_targets INDEXED BY job_targets_pending WHERE job_id = ?1 AND status = 'pending' ORDER BY seq LIMIT ?2"
        ))?;
        let out = stmt.query_map([job.0, page_limit(limit)], rows::target)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn set_target_outcome(
        &mut self,
        job: JobId,
        seq: i64,
        status: TargetStatus,
        revision: Option<i64>,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE job_targets SET status = ?3, revision = ?4, error = ?5 WHERE job_id = ?1 AND seq = ?2",
        )?;
        stmt.execute(params![job.0, seq, status.as_str(), revision, error])?;
        Ok(())
    }

    fn settle(&mut self, served: i64, lagging: &[LaggingListener]) -> StoreResult<Settled> {
        let mut settled = Settled::default();
        self.prune_listener_changes()?;
        // A listener's own served revision: the global one, or the older one it lags at.
        let (binding_served, target_served) = if lagging.is_empty() {
            ("?1", "?2")
        } else {
            self.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS lagging
                     (listener_id INTEGER PRIMARY KEY, served INTEGER NOT NULL, reason TEXT NOT NULL);
                 DELETE FROM temp.lagging;",
            )?;
            let mut insert = self
                .conn
                .prepare_cached("INSERT INTO temp.lagging (listener_id, served, reason) VALUES (?1, ?2, ?3)")?;
            for listener in lagging {
                let served = listener.serving_revision.unwrap_or(-1);
                insert.execute(params![listener.listener_id.0, served, listener.reason])?;
            }
            (
                "COALESCE((SELECT served FROM temp.lagging g WHERE g.listener_id = bindings.listener_id), ?1)",
                "COALESCE((SELECT served FROM temp.lagging g WHERE g.listener_id = job_targets.listener_id), ?2)",
            )
        };
        settled.bindings += self.conn.execute(
            &format!("UPDATE bindings SET status = 'Associated' WHERE status = 'Associating' AND revision <= ?1 AND revision <= {binding_served}"),
            [served],
        )? as u64;
        settled.bindings += self.conn.execute(
            &format!("DELETE FROM bindings WHERE status = 'Dissociating' AND revision <= ?1 AND revision <= {binding_served}"),
            [served],
        )? as u64;
        let open: Vec<i64> = {
            let mut stmt = self.conn.prepare_cached("SELECT id FROM jobs WHERE state IN ('pending', 'running')")?;
            let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            ids
        };
        let now = now_unix();
        for job in open {
            settled.targets += self.conn.execute(
                &format!(
                    "UPDATE job_targets SET status = 'succeeded', error = NULL \
                     WHERE job_id = ?1 AND status = 'running' AND revision <= ?2 AND revision <= {target_served}"
                ),
                [job, served],
            )? as u64;
            if !lagging.is_empty() {
                // Still running, and saying why: the listener cannot load what it should serve.
                self.conn
                    .prepare_cached(
                        "UPDATE job_targets SET error = g.reason FROM temp.lagging g \
                         WHERE job_targets.job_id = ?1 AND job_targets.status = 'running' \
                           AND job_targets.listener_id = g.listener_id AND job_targets.revision > g.served \
                           AND job_targets.error IS NOT g.reason",
                    )?
                    .execute([job])?;
            }
            // The partial indexes on open targets answer this without scanning the job.
            let unfinished: bool = self.conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM job_targets INDEXED BY job_targets_pending WHERE job_id = ?1 AND status = 'pending')
                     OR EXISTS (SELECT 1 FROM job_targets INDEXED BY job_targets_running WHERE job_id = ?1 AND status = 'running')",
            )?
            .query_row([job], |r| r.get(0))?;
            if unfinished {
                continue;
            }
            let failed: i64 = self
                .conn
                .prepare_cached("SELECT COUNT(*) FROM job_targets WHERE job_id = ?1 AND status = 'failed'")?
                .query_row([job], |r| r.get(0))?;
            let (state, error) = if failed > 0 {
                (JobState::Failed, Some(format!("{failed} target(s) failed")))
            } else {
                (JobState::Succeeded, None)
            };
            self.conn.execute(
                "UPDATE jobs SET state = ?2, error = ?3, started_at = COALESCE(started_at, ?4), finished_at = ?4 WHERE id = ?1",
                params![job, state.as_str(), error, now],
            )?;
            settled.jobs_finished.push(JobId(job));
        }
        Ok(settled)
    }

    fn roll_back_listener(&mut self, lagging: &LaggingListener, revision: i64, reason: &str) -> StoreResult<u64> {
        let listener = lagging.listener_id.0;
        let served = lagging.serving_revision.unwrap_or(-1);
        let changed: Vec<i64> = {
            let mut stmt =
                self.conn.prepare_cached("SELECT cert_id FROM bindings WHERE listener_id = ?1 AND revision > ?2")?;
            let ids = stmt.query_map([listener, served], |r| r.get(0))?.collect::<Result<_, _>>()?;
            ids
        };
        for cert in changed {
            let role = if lagging.held_default == Some(CertId(cert)) {
                Some(BindingRole::Default)
            } else if lagging.held_additional.contains(&CertId(cert)) {
                Some(BindingRole::Additional)
            } else {
                None
            };
            match role {
                Some(role) => self
                    .conn
                    .prepare_cached(
                        "UPDATE bindings SET role = ?3, status = 'Associated', revision = ?4 \
                         WHERE listener_id = ?1 AND cert_id = ?2",
                    )?
                    .execute(params![listener, cert, role.as_str(), revision])?,
                None => self
                    .conn
                    .prepare_cached("DELETE FROM bindings WHERE listener_id = ?1 AND cert_id = ?2")?
                    .execute([listener, cert])?,
            };
        }
        // The data plane re-reads the listener whole: what it should serve is what it does.
        self.conn.prepare_cached("INSERT INTO listener_changes (listener_id) VALUES (?1)")?.execute([listener])?;
        let failed = self
            .conn
            .prepare_cached(
                "UPDATE job_targets SET status = 'failed', error = ?3 \
                 WHERE listener_id = ?1 AND status = 'running' AND revision > ?2",
            )?
            .execute(params![listener, served, reason])?;
        Ok(failed as u64)
    }

    fn listener_busy(&mut self, listener: ListenerId) -> StoreResult<bool> {
        let mut stmt = self.conn.prepare_cached(
            // Through the few unfinished jobs (their partial index), not all targets ever.
            "SELECT EXISTS (SELECT 1 FROM bindings WHERE listener_id = ?1 AND status <> 'Associated')
                 OR EXISTS (SELECT 1 FROM jobs j JOIN job_targets t ON t.job_id = j.id
                            WHERE j.state IN ('pending', 'running') AND t.listener_id = ?1
                              AND t.status IN ('pending', 'running'))",
        )?;
        Ok(stmt.query_row([listener.0], |r| r.get(0))?)
    }

    fn unfinished_jobs_for_certificate(&mut self, cert: CertId) -> StoreResult<Vec<JobId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM jobs WHERE state IN ('pending', 'running') AND (old_cert_id = ?1 OR new_cert_id = ?1) ORDER BY id",
        )?;
        let out = stmt.query_map([cert.0], |r| r.get(0).map(JobId))?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    // ---- idempotency ----

    fn idempotency_get(&mut self, account: AccountId, token: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT request_hash, response FROM idempotency WHERE account_id = ?1 AND token = ?2",
                params![account.0, token],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            Some((request_hash, response)) => Ok(Some(IdempotencyRecord {
                request_hash,
                response: serde_json::from_str(&response).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })),
            None => Ok(None),
        }
    }

    fn idempotency_put(&mut self, account: AccountId, token: &str, record: &IdempotencyRecord) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO idempotency (account_id, token, request_hash, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![account.0, token, record.request_hash, record.response.to_string(), now_unix()],
        )?;
        Ok(())
    }

    // ---- serving ----

    fn serving_state(&mut self) -> StoreResult<ServingState> {
        let changes = self.change_point()?;
        let listeners = self.serving_listeners(None)?;
        Ok(ServingState { revision: changes.revision, changes, listeners })
    }

    fn serving_changes(&mut self, since: ChangePoint) -> StoreResult<Option<ServingDelta>> {
        let changes = self.change_point()?;
        let pruned: i64 =
            self.conn.query_row("SELECT value FROM meta WHERE key = 'listener_changes_pruned'", [], |r| r.get(0))?;
        if since.listener_change < pruned || since.revision > changes.revision {
            return Ok(None);
        }
        let changed: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT DISTINCT listener_id FROM listener_changes WHERE seq > ?1 LIMIT ?2")?;
            let ids = stmt.query_map(params![since.listener_change, MAX_LISTENER_CHANGES + 1], |r| r.get(0))?;
            ids.collect::<Result<_, _>>()?
        };
        if changed.len() > MAX_LISTENER_CHANGES as usize {
            return Ok(None);
        }
        let listeners =
            if changed.is_empty() { Vec::new() } else { self.serving_listeners(Some(since.listener_change))? };
        let whole: std::collections::HashSet<i64> = listeners.iter().map(|l| l.listener_id.0).collect();
        let removed = changed.iter().filter(|id| !whole.contains(id)).map(|id| ListenerId(*id)).collect();
        let mut bindings = Vec::new();
        {
            // One query per partial index: SQLite uses a partial index only when the query
            // repeats its condition.
            let mut stmt = self.conn.prepare_cached(
                "SELECT listener_id, cert_id, role, 1 FROM bindings WHERE status = 'Associating' AND revision > ?1
                 UNION ALL
                 SELECT listener_id, cert_id, role, 0 FROM bindings WHERE status = 'Dissociating' AND revision > ?1",
            )?;
            let mut rows = stmt.query([since.revision])?;
            while let Some(row) = rows.next()? {
                let listener_id: i64 = row.get(0)?;
                if whole.contains(&listener_id) || changed.contains(&listener_id) {
                    continue;
                }
                bindings.push(BindingChange {
                    listener_id: ListenerId(listener_id),
                    cert_id: CertId(row.get(1)?),
                    role: parse_enum(row, 2, BindingRole::parse, "binding role")?,
                    served: row.get(3)?,
                });
            }
        }
        Ok(Some(ServingDelta { revision: changes.revision, changes, listeners, removed, bindings }))
    }

    // ---- users, policies, audit ----

    fn insert_user(&mut self, account: AccountId, name: &str) -> StoreResult<User> {
        let now = now_unix();
        self.conn.execute(
            "INSERT INTO users (account_id, name, created_at) VALUES (?1, ?2, ?3)",
            params![account.0, name, now],
        )?;
        Ok(User {
            id: UserId(self.conn.last_insert_rowid()),
            account_id: account,
            name: name.to_string(),
            created_at: now,
        })
    }

    fn get_user(&mut self, account: AccountId, name: &str) -> StoreResult<Option<User>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, account_id, name, created_at FROM users WHERE account_id = ?1 AND name = ?2",
                params![account.0, name],
                user,
            )
            .optional()?)
    }

    fn get_user_by_id(&mut self, id: UserId) -> StoreResult<Option<User>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, account_id, name, created_at FROM users WHERE id = ?1")?;
        Ok(stmt.query_row([id.0], user).optional()?)
    }

    fn list_users(&mut self, account: AccountId) -> StoreResult<Vec<User>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, account_id, name, created_at FROM users WHERE account_id = ?1 ORDER BY id")?;
        let out = stmt.query_map([account.0], user)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn delete_user(&mut self, account: AccountId, id: UserId) -> StoreResult<bool> {
        if self.get_user_by_id(id)?.filter(|u| u.account_id == account).is_none() {
            return Ok(false);
        }
        self.conn.execute("DELETE FROM access_keys WHERE user_id = ?1", [id.0])?;
        self.conn.execute("DELETE FROM user_policies WHERE user_id = ?1", [id.0])?;
        Ok(self.conn.execute("DELETE FROM users WHERE id = ?1", [id.0])? > 0)
    }

    fn list_user_keys(&mut self, user: UserId) -> StoreResult<Vec<StoredAccessKey>> {
        let mut stmt = self.conn.prepare(
            "SELECT key_id, account_id, user_id, secret_sealed, enabled, created_at FROM access_keys \
             WHERE user_id = ?1 ORDER BY created_at, key_id",
        )?;
        let out = stmt.query_map([user.0], stored_key)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn insert_policy(&mut self, account: AccountId, name: &str, document: &serde_json::Value) -> StoreResult<Policy> {
        let now = now_unix();
        self.conn.execute(
            "INSERT INTO policies (account_id, name, document, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![account.0, name, document.to_string(), now],
        )?;
        Ok(Policy {
            id: PolicyId(self.conn.last_insert_rowid()),
            account_id: account,
            name: name.to_string(),
            document: document.clone(),
            created_at: now,
        })
    }

    fn get_policy(&mut self, account: AccountId, name: &str) -> StoreResult<Option<Policy>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, account_id, name, document, created_at FROM policies WHERE account_id = ?1 AND name = ?2",
                params![account.0, name],
                policy,
            )
            .optional()?)
    }

    fn list_policies(&mut self, account: AccountId) -> StoreResult<Vec<Policy>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, account_id, name, document, created_at FROM policies WHERE account_id = ?1 ORDER BY id",
        )?;
        let out = stmt.query_map([account.0], policy)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn update_policy(&mut self, id: PolicyId, document: &serde_json::Value) -> StoreResult<()> {
        self.conn.execute("UPDATE policies SET document = ?2 WHERE id = ?1", params![id.0, document.to_string()])?;
        Ok(())
    }

    fn delete_policy(&mut self, account: AccountId, id: PolicyId) -> StoreResult<bool> {
        self.conn.execute(
            "DELETE FROM user_policies WHERE policy_id = ?1 AND policy_id IN (SELECT id FROM policies WHERE account_id = ?2)",
            [id.0, account.0],
        )?;
        Ok(self.conn.execute("DELETE FROM policies WHERE id = ?1 AND account_id = ?2", [id.0, account.0])? > 0)
    }

    fn attach_policy(&mut self, user: UserId, policy: PolicyId) -> StoreResult<()> {
        self.conn
            .execute("INSERT OR IGNORE INTO user_policies (user_id, policy_id) VALUES (?1, ?2)", [user.0, policy.0])?;
        Ok(())
    }

    fn detach_policy(&mut self, user: UserId, policy: PolicyId) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM user_policies WHERE user_id = ?1 AND policy_id = ?2", [user.0, policy.0])?
            > 0)
    }

    fn user_policies(&mut self, user: UserId) -> StoreResult<Vec<Policy>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.id, p.account_id, p.name, p.document, p.created_at FROM policies p \
             JOIN user_policies up ON up.policy_id = p.id WHERE up.user_id = ?1 ORDER BY p.id",
        )?;
        let out = stmt.query_map([user.0], policy)?.collect::<Result<_, _>>()?;
        Ok(out)
    }

    fn insert_audit(&mut self, e: &AuditEntry) -> StoreResult<()> {
        let resources = serde_json::to_string(&e.resources).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO audit_log (at, account_id, user_name, key_id, source, dialect, action, resources, outcome, \
             error_code, request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        stmt.execute(params![
            e.at,
            e.account_id.map(|a| a.0),
            e.user,
            e.key_id,
            e.source,
            e.dialect,
            e.action,
            resources,
            e.outcome,
            e.error_code,
            e.request_id
        ])?;
        Ok(())
    }

    fn list_audit(&mut self, account: AccountId, filter: &AuditFilter) -> StoreResult<(Vec<AuditEntry>, u64)> {
        let mut w = Where::new("account_id = ?", account.0);
        if let Some(user) = &filter.user {
            w.and("user_name = ?", text(user));
        }
        if let Some(action) = &filter.action {
            w.and("action = ?", text(action));
        }
        if let Some(outcome) = &filter.outcome {
            w.and("outcome = ?", text(outcome));
        }
        if let Some(since) = filter.since {
            w.and("at >= ?", Value::Integer(since));
        }
        let total = self.count("audit_log", &w)?;
        let sql = format!(
            "SELECT id, at, account_id, user_name, key_id, source, dialect, action, resources, outcome, error_code, request_id \
             FROM audit_log WHERE {} ORDER BY id DESC LIMIT ? OFFSET ?",
            w.sql()
        );
        let mut values = w.values.clone();
        values.push(Value::Integer(page_limit(filter.limit)));
        values.push(Value::Integer(filter.offset as i64));
        let mut stmt = self.conn.prepare(&sql)?;
        let out = stmt.query_map(params_from_iter(&values), audit_entry)?.collect::<Result<_, _>>()?;
        Ok((out, total))
    }

    fn serving_certificates(&mut self, ids: &[CertId]) -> StoreResult<Vec<ServingCertificate>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The ids as one JSON array parameter: one statement, one pass over the primary
        // key in id order, and no bound-parameter limit however many ids.
        let mut list = String::with_capacity(ids.len() * 8 + 2);
        list.push('[');
        for (i, id) in ids.iter().enumerate() {
            let separator = if i == 0 { "" } else { "," };
            // Writing to a String cannot fail.
            let _ = write!(list, "{separator}{}", id.0);
        }
        list.push(']');
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SERVING_CERT_COLS} FROM certificates WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        ))?;
        let rows = stmt.query_map([list], rows::serving_certificate)?;
        let mut out = Vec::with_capacity(ids.len());
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

/// Bindings (joined with their listener `l` and load balancer `lb`) that hold `cert`, not
/// dissociating, within `scope`.
fn bound_to_scope(account: AccountId, cert: CertId, scope: &BindingScope) -> Where {
    let mut w = Where::new("b.cert_id = ?", cert.0);
    w.and("l.account_id = ?", Value::Integer(account.0));
    w.clauses.push("b.status <> 'Dissociating'".to_string());
    if let Some(p) = scope.project_id {
        w.and("lb.project_id = ?", Value::Integer(p.0));
    }
    if let Some(lb) = scope.load_balancer_id {
        w.and("l.load_balancer_id = ?", Value::Integer(lb.0));
    }
    if let Some(l) = scope.listener_id {
        w.and("l.id = ?", Value::Integer(l.0));
    }
    w.and_in_text("lb.lb_type", &scope.lb_types.iter().map(|t| t.as_str().to_string()).collect::<Vec<_>>());
    w.and_in_text("lb.region", &scope.regions);
    w
}

fn stored_key(row: &rusqlite::Row) -> rusqlite::Result<StoredAccessKey> {
    Ok(StoredAccessKey {
        key_id: row.get(0)?,
        account_id: AccountId(row.get(1)?),
        user_id: row.get::<_, Option<i64>>(2)?.map(UserId),
        secret_sealed: row.get(3)?,
        enabled: row.get(4)?,
        created_at: row.get(5)?,
    })
}

fn user(row: &rusqlite::Row) -> rusqlite::Result<User> {
    Ok(User { id: UserId(row.get(0)?), account_id: AccountId(row.get(1)?), name: row.get(2)?, created_at: row.get(3)? })
}

fn policy(row: &rusqlite::Row) -> rusqlite::Result<Policy> {
    Ok(Policy {
        id: PolicyId(row.get(0)?),
        account_id: AccountId(row.get(1)?),
        name: row.get(2)?,
        document: json(row, 3)?,
        created_at: row.get(4)?,
    })
}

fn audit_entry(row: &rusqlite::Row) -> rusqlite::Result<AuditEntry> {
    let resources: String = row.get(8)?;
    Ok(AuditEntry {
        id: row.get(0)?,
        at: row.get(1)?,
        account_id: row.get::<_, Option<i64>>(2)?.map(AccountId),
        user: row.get(3)?,
        key_id: row.get(4)?,
        source: row.get(5)?,
        dialect: row.get(6)?,
        action: row.get(7)?,
        resources: serde_json::from_str(&resources).map_err(|_| corrupt(8, "resources"))?,
        outcome: row.get(9)?,
        error_code: row.get(10)?,
        request_id: row.get(11)?,
    })
}

fn backend(row: &rusqlite::Row) -> rusqlite::Result<Backend> {
    Ok(Backend {
        id: BackendId(row.get(0)?),
        listener_id: ListenerId(row.get(1)?),
        address: row.get(2)?,
        weight: row.get(3)?,
    })
}

/// Beyond this many listeners changed other than by bindings (creating 100k listeners,
/// say), reading the whole state is cheaper than reading each of them.
const MAX_LISTENER_CHANGES: i64 = 2_000;

/// The listener changes kept for data planes to follow; older ones are pruned as jobs
/// settle. A data plane further behind reads the whole state.
const LISTENER_CHANGES_KEPT: i64 = 10_000;

/// Listener changes pruned by one settle at most.
const PRUNE_STEP: i64 = 2_000;

impl SqliteTx<'_> {
    fn change_point(&mut self) -> StoreResult<ChangePoint> {
        let revision = self.revision()?;
        let listener_change: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM listener_changes")?
            .query_row([], |r| r.get(0))?;
        Ok(ChangePoint { revision, listener_change })
    }

    /// Forgets listener changes beyond the newest [`LISTENER_CHANGES_KEPT`].
    fn prune_listener_changes(&mut self) -> StoreResult<()> {
        let latest = self.change_point()?.listener_change;
        let keep_after = latest - LISTENER_CHANGES_KEPT;
        // At most PRUNE_STEP rows at a time: after creating 100k listeners, the first
        // settles each take a slice instead of one holding the writer for all of them.
        let upto: i64 = self
            .conn
            .prepare_cached(
                "SELECT COALESCE((SELECT seq FROM listener_changes WHERE seq <= ?1 ORDER BY seq LIMIT 1 OFFSET ?2), ?1)",
            )?
            .query_row([keep_after, PRUNE_STEP - 1], |r| r.get(0))?;
        let pruned = self.conn.prepare_cached("DELETE FROM listener_changes WHERE seq <= ?1")?.execute([upto])?;
        if pruned > 0 {
            self.conn
                .prepare_cached("UPDATE meta SET value = MAX(value, ?1) WHERE key = 'listener_changes_pruned'")?
                .execute([upto])?;
        }
        Ok(())
    }

    /// The serving listeners: all, or those changed after listener change `since`.
    fn serving_listeners(&mut self, since: Option<i64>) -> StoreResult<Vec<ServingListener>> {
        // The same three reads either way; the changed ones are few and found by seq.
        let (only, value) = match since {
            Some(seq) => ("IN (SELECT listener_id FROM listener_changes WHERE seq > ?1)", seq),
            None => ("> ?1", i64::MIN),
        };
        let mut listeners: Vec<ServingListener> = Vec::new();
        let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT l.id, l.account_id, l.load_balancer_id, lb.address, l.protocol, l.port \
                 FROM listeners l JOIN load_balancers lb ON lb.id = l.load_balancer_id WHERE l.id {only} ORDER BY l.id",
            ))?;
            let mut rows = stmt.query([value])?;
            while let Some(row) = rows.next()? {
                let address: Option<String> = row.get(3)?;
                let id: i64 = row.get(0)?;
                index.insert(id, listeners.len());
                listeners.push(ServingListener {
                    listener_id: ListenerId(id),
                    account_id: AccountId(row.get(1)?),
                    load_balancer_id: LoadBalancerId(row.get(2)?),
                    address: address.and_then(|a| a.parse().ok()),
                    protocol: parse_enum(row, 4, Protocol::parse, "protocol")?,
                    port: row.get(5)?,
                    default_cert: None,
                    additional_certs: Vec::new(),
                    backends: Vec::new(),
                });
            }
        }
        {
            let mut stmt = self.conn.prepare_cached(&format!(
                // Primary-key order: no sort over what may be hundreds of thousands of rows.
                "SELECT listener_id, cert_id, role FROM bindings \
                 WHERE status <> 'Dissociating' AND listener_id {only} ORDER BY listener_id, cert_id",
            ))?;
            let mut rows = stmt.query([value])?;
            while let Some(row) = rows.next()? {
                let Some(&i) = index.get(&row.get::<_, i64>(0)?) else { continue };
                let cert = CertId(row.get(1)?);
                match parse_enum(row, 2, BindingRole::parse, "binding role")? {
                    BindingRole::Default => listeners[i].default_cert = Some(cert),
                    BindingRole::Additional => listeners[i].additional_certs.push(cert),
                }
            }
        }
        {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT id, listener_id, address, weight FROM backends WHERE listener_id {only} ORDER BY id"
            ))?;
            let mut rows = stmt.query([value])?;
            while let Some(row) = rows.next()? {
                let b = backend(row)?;
                if let Some(&i) = index.get(&b.listener_id.0) {
                    listeners[i].backends.push(b);
                }
            }
        }
        Ok(listeners)
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewCertificate, SqliteStore, Store};
    use certbind_core::ids::CertId;
    use certbind_core::model::KeyAlgorithm;

    #[test]
    fn serving_certificates_reads_many_ids_at_once_in_id_order() {
        let dir = std::env::temp_dir().join(format!("certbind-store-serving-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open_dir(&dir).unwrap();
        let mut tx = store.write().unwrap();
        let account = tx.insert_account("a").unwrap();
        let project = tx.insert_project(account.id, "default", true).unwrap();
        let ids: Vec<CertId> = (0..3)
            .map(|i| {
                let cert = NewCertificate {
                    account_id: account.id,
                    project_id: project.id,
                    name: format!("c{i}"),
                    common_name: Some(format!("c{i}.example.com")),
                    sans: vec![format!("c{i}.example.com"), format!("*.c{i}.example.com")],
                    subject: String::new(),
                    issuer: String::new(),
                    serial: i.to_string(),
                    not_before: i,
                    not_after: i + 10,
                    fingerprint_sha256: format!("fp{i}"),
                    key_algorithm: KeyAlgorithm::Rsa,
                    key_bits: 2048,
                    chain_pem: format!("chain{i}"),
                    allow_download: false,
                    attributes: serde_json::json!({}),
                };
                tx.insert_certificate(&cert, &mut |id| Ok(format!("sealed{}", id.0).into_bytes())).unwrap().id
            })
            .collect();

        // Unknown ids are left out; the rest come back in id order, keys still sealed.
        let got = tx.serving_certificates(&[ids[2], CertId(ids[2].0 + 100), ids[0]]).unwrap();
        assert_eq!(got.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
        let c2 = &got[1];
        assert_eq!(c2.common_name.as_deref(), Some("c2.example.com"));
        assert_eq!(c2.sans, vec!["c2.example.com".to_string(), "*.c2.example.com".to_string()]);
        assert_eq!((c2.not_before, c2.not_after), (2, 12));
        assert_eq!(c2.chain_pem, "chain2");
        assert_eq!(c2.key_sealed, format!("sealed{}", ids[2].0).into_bytes());
        assert!(tx.serving_certificates(&[]).unwrap().is_empty());
        drop(tx);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
