//! Accounts, their access keys and projects.

use crate::access::Resource;
use crate::{Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::secret::new_access_key;
use certbind_core::{now_unix, CoreError};
use certbind_store::{StoredAccessKey, Tx};
use serde::Serialize;
use zeroize::Zeroizing;

/// The account created at first start operates the server: only it creates accounts.
pub const OPERATOR_ACCOUNT: AccountId = AccountId(1);

/// Who is asking: the account every operation is scoped to, the key that signed, the
/// principal behind the key, and the name the entry point gives the action (for
/// policies written in a cloud's vocabulary, e.g. `alb:CreateListener`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: AccountId,
    pub key_id: String,
    pub principal: Principal,
    pub action: Option<String>,
    /// Refuse a binding change on a listener another job is still changing (the
    /// Alibaba contract), checked in the same transaction that would create the job.
    pub one_change_at_a_time: bool,
}

/// The identity behind an access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// One of the account's root keys: may do everything in the account.
    Root,
    /// A user: may do what its policies allow.
    User { id: UserId, name: String },
}

impl Caller {
    /// The same caller, refusing changes to listeners another job is still changing.
    pub fn one_change_at_a_time(&self) -> Caller {
        Caller { one_change_at_a_time: true, ..self.clone() }
    }

    /// The same caller, naming the action as its entry point calls it.
    pub fn acting_as(&self, action: impl Into<String>) -> Caller {
        Caller { action: Some(action.into()), ..self.clone() }
    }

    pub fn user_name(&self) -> Option<&str> {
        match &self.principal {
            Principal::Root => None,
            Principal::User { name, .. } => Some(name),
        }
    }
}

/// A freshly minted access key. The secret is shown once, in this value only.
#[derive(Clone, Serialize)]
pub struct NewAccessKey {
    pub key_id: String,
    pub secret: String,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccessKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedAccount {
    pub account: Account,
    pub project: Project,
    pub access_key: NewAccessKey,
}

/// Names users may give things: printable, bounded.
pub(crate) fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    if name.chars().count() > max || name.chars().any(|c| c.is_control()) {
        return Err(CoreError::invalid(field, format!("must be at most {max} printable characters")));
    }
    Ok(())
}

impl Control {
    /// Makes sure a root account exists at start. With a configured credential, that key
    /// exists afterwards with that secret; without one, the first start creates an
    /// account and returns its credential so it can be shown once.
    pub fn bootstrap(&self, credential: Option<(&str, &str)>) -> Result<Option<CreatedAccount>> {
        let mut tx = self.store().write()?;
        if let Some((key_id, secret)) = credential {
            if key_id.is_empty() || secret.is_empty() || !key_id.chars().all(|c| c.is_ascii_graphic()) {
                return Err(CoreError::invalid("CERTBIND_ACCESS_KEY_ID", "must be non-empty printable ASCII"));
            }
            match tx.get_access_key(key_id)? {
                Some(existing) => {
                    let current = self.open_secret(&existing)?;
                    if current.as_str() != secret || !existing.enabled {
                        tx.delete_access_key(key_id)?;
                        self.store_key(&mut *tx, existing.account_id, key_id, secret)?;
                    }
                }
                None => {
                    let account = match tx.list_accounts()?.into_iter().next() {
                        Some(account) => account,
                        None => self.create_account_in(&mut *tx, "root")?.0,
                    };
                    self.store_key(&mut *tx, account.id, key_id, secret)?;
                }
            }
            tx.commit()?;
            return Ok(None);
        }
        if !tx.list_accounts()?.is_empty() {
            return Ok(None);
        }
        let (account, project) = self.create_account_in(&mut *tx, "root")?;
        let access_key = self.mint_key(&mut *tx, account.id)?;
        tx.commit()?;
        Ok(Some(CreatedAccount { account, project, access_key }))
    }

    /// A new account with its default project and first access key. Only the operator
    /// account (the first one) makes accounts, and within it only a root key or a user
    /// whose policies allow `certbind:CreateAccount`: a new account comes with a root key
    /// of its own, so being able to make one is power over a whole tenant.
    pub fn create_account(&self, caller: &crate::Caller, name: &str) -> Result<CreatedAccount> {
        if caller.account_id != OPERATOR_ACCOUNT {
            return Err(CoreError::Forbidden("only the operator account may create accounts".into()));
        }
        check_name("name", name, 64)?;
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "CreateAccount", &[Resource::Account { name: name.to_string() }])?;
        let (account, project) = self.create_account_in(&mut *tx, name)?;
        let access_key = self.mint_key(&mut *tx, account.id)?;
        tx.commit()?;
        Ok(CreatedAccount { account, project, access_key })
    }

    /// Resolves a key id to its caller and decrypted secret, for signature checks.
    /// Unknown and disabled keys are both refused.
    pub fn access_key_secret(&self, key_id: &str) -> Result<Option<(Caller, Zeroizing<String>)>> {
        let mut tx = self.store().read()?;
        let Some(key) = tx.get_access_key(key_id)? else { return Ok(None) };
        if !key.enabled {
            return Ok(None);
        }
        let secret = self.open_secret(&key)?;
        let principal = match key.user_id {
            None => Principal::Root,
            Some(id) => match tx.get_user_by_id(id)? {
                Some(user) => Principal::User { id, name: user.name },
                // A key of a deleted user is gone with it; never fall back to root.
                None => return Ok(None),
            },
        };
        Ok(Some((
            Caller {
                account_id: key.account_id,
                key_id: key.key_id,
                principal,
                action: None,
                one_change_at_a_time: false,
            },
            secret,
        )))
    }

    pub fn account(&self, caller: &Caller) -> Result<Account> {
        self.store()
            .read()?
            .get_account(caller.account_id)?
            .ok_or_else(|| CoreError::not_found("account", caller.account_id))
    }

    pub fn create_access_key(&self, caller: &Caller) -> Result<NewAccessKey> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "CreateAccessKey", &[Resource::All { kind: "accesskey" }])?;
        let key = self.mint_key(&mut *tx, caller.account_id)?;
        tx.commit()?;
        Ok(key)
    }

    pub fn list_access_keys(&self, caller: &Caller) -> Result<Vec<AccessKey>> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListAccessKeys", &[Resource::All { kind: "accesskey" }])?;
        let keys = tx.list_access_keys(caller.account_id)?;
        Ok(keys.into_iter().map(public_key).collect())
    }

    pub fn set_access_key_enabled(&self, caller: &Caller, key_id: &str, enabled: bool) -> Result<()> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "UpdateAccessKey", &[Resource::All { kind: "accesskey" }])?;
        self.own_key(&mut *tx, caller, key_id)?;
        tx.set_access_key_enabled(key_id, enabled)?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_access_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "DeleteAccessKey", &[Resource::All { kind: "accesskey" }])?;
        self.own_key(&mut *tx, caller, key_id)?;
        if key_id == caller.key_id {
            return Err(CoreError::invalid("key_id", "an access key cannot delete itself; sign with another key"));
        }
        tx.delete_access_key(key_id)?;
        tx.commit()?;
        Ok(())
    }

    pub fn create_project(&self, caller: &Caller, name: &str) -> Result<Project> {
        check_name("name", name, 64)?;
        if name.is_empty() {
            return Err(CoreError::invalid("name", "must not be empty"));
        }
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "CreateProject", &[Resource::All { kind: "project" }])?;
        if tx.list_projects(caller.account_id)?.iter().any(|p| p.name == name) {
            return Err(CoreError::invalid("name", format!("a project named {name:?} already exists")));
        }
        let project = tx.insert_project(caller.account_id, name, false)?;
        tx.commit()?;
        Ok(project)
    }

    pub fn list_projects(&self, caller: &Caller) -> Result<Vec<Project>> {
        Ok(self.store().read()?.list_projects(caller.account_id)?)
    }

    /// The project a request names, or the account's default project.
    pub(crate) fn resolve_project(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        project: Option<ProjectId>,
    ) -> Result<Project> {
        match project {
            Some(id) => tx.get_project(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("project", id)),
            None => tx
                .default_project(caller.account_id)?
                .ok_or_else(|| CoreError::Internal(format!("account {} has no default project", caller.account_id))),
        }
    }

    pub(crate) fn own_key(&self, tx: &mut dyn Tx, caller: &Caller, key_id: &str) -> Result<StoredAccessKey> {
        tx.get_access_key(key_id)?
            .filter(|k| k.account_id == caller.account_id)
            .ok_or_else(|| CoreError::not_found("access key", key_id))
    }

    fn create_account_in(&self, tx: &mut dyn Tx, name: &str) -> Result<(Account, Project)> {
        let account = tx.insert_account(name)?;
        let project = tx.insert_project(account.id, "default", true)?;
        Ok((account, project))
    }

    fn mint_key(&self, tx: &mut dyn Tx, account: AccountId) -> Result<NewAccessKey> {
        self.mint_key_for(tx, account, None)
    }

    pub(crate) fn mint_key_for(
        &self,
        tx: &mut dyn Tx,
        account: AccountId,
        user: Option<UserId>,
    ) -> Result<NewAccessKey> {
        let (key_id, secret) = new_access_key();
        self.store_key_for(tx, account, user, &key_id, &secret)?;
        Ok(NewAccessKey { key_id, secret: secret.to_string() })
    }

    fn store_key(&self, tx: &mut dyn Tx, account: AccountId, key_id: &str, secret: &str) -> Result<()> {
        self.store_key_for(tx, account, None, key_id, secret)
    }

    fn store_key_for(
        &self,
        tx: &mut dyn Tx,
        account: AccountId,
        user: Option<UserId>,
        key_id: &str,
        secret: &str,
    ) -> Result<()> {
        let sealed =
            self.master().seal(secret.as_bytes(), key_id.as_bytes()).map_err(|e| CoreError::Internal(e.to_string()))?;
        tx.insert_access_key(&StoredAccessKey {
            key_id: key_id.to_string(),
            account_id: account,
            user_id: user,
            secret_sealed: sealed,
            enabled: true,
            created_at: now_unix(),
        })?;
        Ok(())
    }

    fn open_secret(&self, key: &StoredAccessKey) -> Result<Zeroizing<String>> {
        self.master()
            .open_string(&key.secret_sealed, key.key_id.as_bytes())
            .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

/// An access key as shown to its owner: never the secret.
pub(crate) fn public_key(key: StoredAccessKey) -> AccessKey {
    AccessKey {
        key_id: key.key_id,
        account_id: key.account_id,
        secret: String::new(),
        enabled: key.enabled,
        created_at: key.created_at,
    }
}
