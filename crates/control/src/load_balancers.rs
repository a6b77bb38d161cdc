//! Load balancers, listeners and backends.

use crate::access::Resource;
use crate::accounts::check_name;
use crate::bindings::{check_additional_quota, check_cert_count};
use crate::idempotency::{idempotent, request_hash};
use crate::{Caller, Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::{ListenerFilter, LoadBalancerFilter, NewJob, NewListener, NewLoadBalancer, NewTarget, Tx};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateLoadBalancerRequest {
    #[serde(default)]
    pub name: String,
    pub lb_type: LbType,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    #[serde(default)]
    pub address: Option<IpAddr>,
    #[serde(default)]
    pub attributes: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateListenerRequest {
    pub load_balancer_id: LoadBalancerId,
    #[serde(default)]
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    #[serde(default)]
    pub default_certificate_id: Option<CertId>,
    #[serde(default)]
    pub additional_certificate_ids: Vec<CertId>,
    #[serde(default)]
    pub attributes: serde_json::Value,
}

/// A listener with its bindings and backends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerDetail {
    #[serde(flatten)]
    pub listener: Listener,
    pub bindings: Vec<Binding>,
    pub backends: Vec<Backend>,
    /// The job that brings a newly created listener into service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
}

pub(crate) fn check_region(region: &str) -> Result<()> {
    if region.is_empty()
        || region.len() > 64
        || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CoreError::invalid("region", "must be 1 to 64 letters, digits, '-' or '_'"));
    }
    Ok(())
}

fn empty_object(value: &serde_json::Value) -> serde_json::Value {
    if value.is_null() {
        serde_json::json!({})
    } else {
        value.clone()
    }
}

impl Control {
    pub fn create_load_balancer(
        &self,
        caller: &Caller,
        request: &CreateLoadBalancerRequest,
        token: Option<&str>,
    ) -> Result<LoadBalancer> {
        check_name("name", &request.name, 128)?;
        let region = request.region.clone().unwrap_or_else(|| self.config().default_region.clone());
        check_region(&region)?;
        let mut tx = self.store().write()?;
        self.authorize(&mut *tx, caller, "CreateLoadBalancer", &[Resource::All { kind: "loadbalancer" }])?;
        let hash = request_hash("create_load_balancer", request);
        let lb = idempotent(&mut *tx, caller, token, &hash, |tx| {
            let project = self.resolve_project(tx, caller, request.project_id)?;
            Ok(tx.insert_load_balancer(&NewLoadBalancer {
                account_id: caller.account_id,
                project_id: project.id,
                name: request.name.clone(),
                lb_type: request.lb_type,
                region: region.clone(),
                address: request.address,
                attributes: empty_object(&request.attributes),
            })?)
        })?;
        tx.commit()?;
        Ok(lb)
    }

    pub fn get_load_balancer(&self, caller: &Caller, id: LoadBalancerId) -> Result<LoadBalancer> {
        let mut tx = self.store().read()?;
        let lb =
            tx.get_load_balancer(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("load balancer", id))?;
        self.authorize(&mut *tx, caller, "GetLoadBalancer", &[Resource::load_balancer(&lb)])?;
        Ok(lb)
    }

    pub fn list_load_balancers(
        &self,
        caller: &Caller,
        filter: &LoadBalancerFilter,
    ) -> Result<(Vec<LoadBalancer>, u64)> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListLoadBalancers", &[Resource::All { kind: "loadbalancer" }])?;
        Ok(tx.list_load_balancers(caller.account_id, filter)?)
    }

    pub fn update_load_balancer(
        &self,
        caller: &Caller,
        id: LoadBalancerId,
        name: Option<&str>,
        attributes: Option<serde_json::Value>,
    ) -> Result<LoadBalancer> {
        let mut tx = self.store().write()?;
        let mut lb =
            tx.get_load_balancer(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("load balancer", id))?;
        self.authorize(&mut *tx, caller, "UpdateLoadBalancer", &[Resource::load_balancer(&lb)])?;
        if let Some(name) = name {
            check_name("name", name, 128)?;
            lb.name = name.to_string();
        }
        merge_attributes(&mut lb.attributes, attributes);
        tx.update_load_balancer(&lb)?;
        tx.commit()?;
        Ok(lb)
    }

    /// Deletes a load balancer with all its listeners (as the clouds do).
    pub fn delete_load_balancer(&self, caller: &Caller, id: LoadBalancerId) -> Result<()> {
        let mut tx = self.store().write()?;
        let lb =
            tx.get_load_balancer(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("load balancer", id))?;
        self.authorize(&mut *tx, caller, "DeleteLoadBalancer", &[Resource::load_balancer(&lb)])?;
        let (listeners, _) =
            tx.list_listeners(caller.account_id, &ListenerFilter { load_balancer_id: Some(id), ..Default::default() })?;
        let revision = if listeners.is_empty() { None } else { Some(tx.next_revision()?) };
        for listener in listeners {
            tx.delete_listener(caller.account_id, listener.id)?;
        }
        tx.delete_load_balancer(caller.account_id, id)?;
        tx.commit()?;
        if let Some(revision) = revision {
            self.published(revision);
        }
        Ok(())
    }

    /// Creates a listener. A TLS listener comes with its default certificate (and any
    /// additional ones) bound in the same transaction, so it is never without one; the
    /// returned job completes once the data plane serves it.
    pub fn create_listener(
        &self,
        caller: &Caller,
        request: &CreateListenerRequest,
        token: Option<&str>,
    ) -> Result<ListenerDetail> {
        check_name("name", &request.name, 128)?;
        let mut tx = self.store().write()?;
        let hash = request_hash("create_listener", request);
        let (detail, revision): (ListenerDetail, i64) =
            idempotent(&mut *tx, caller, token, &hash, |tx| self.create_listener_in(tx, caller, request))?;
        tx.commit()?;
        self.published(revision);
        self.wake_runner();
        Ok(detail)
    }

    fn create_listener_in(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        request: &CreateListenerRequest,
    ) -> Result<(ListenerDetail, i64)> {
        let lb = tx
            .get_load_balancer(caller.account_id, request.load_balancer_id)?
            .ok_or_else(|| CoreError::not_found("load balancer", request.load_balancer_id))?;
        self.authorize(tx, caller, "CreateListener", &[Resource::load_balancer(&lb)])?;
        if !lb.lb_type.allows(request.protocol) {
            return Err(CoreError::ProtocolNotAllowed {
                protocol: request.protocol.to_string(),
                lb_type: lb.lb_type.to_string(),
            });
        }
        if request.port == 0 {
            return Err(CoreError::invalid("port", "must be between 1 and 65535"));
        }
        let udp = matches!(request.protocol, Protocol::Udp | Protocol::Quic);
        if let Some((other, other_lb)) = tx.listener_on_port(&lb, request.port, udp)? {
            let owner = if other_lb == lb.id || tx.get_listener(caller.account_id, other)?.is_some() {
                other.to_string()
            } else {
                "of another account".to_string()
            };
            return Err(CoreError::PortInUse { port: request.port, load_balancer: lb.id.to_string(), listener: owner });
        }
        let mut certs: Vec<(CertId, BindingRole)> = Vec::new();
        if request.protocol.is_tls() {
            let default = request
                .default_certificate_id
                .ok_or_else(|| CoreError::DefaultCertificateRequired { protocol: request.protocol.to_string() })?;
            certs.push((default, BindingRole::Default));
            check_cert_count(self, request.additional_certificate_ids.len())?;
            for id in &request.additional_certificate_ids {
                if *id != default && !certs.iter().any(|(c, _)| c == id) {
                    certs.push((*id, BindingRole::Additional));
                }
            }
            let added = certs.iter().filter(|(_, r)| *r == BindingRole::Additional).count() as u64;
            check_additional_quota(self, tx, &lb, added)?;
        } else if request.default_certificate_id.is_some() || !request.additional_certificate_ids.is_empty() {
            return Err(CoreError::ListenerNotTls {
                listener: "(new)".to_string(),
                protocol: request.protocol.to_string(),
            });
        }
        for (id, _) in &certs {
            tx.get_certificate(caller.account_id, *id)?.ok_or_else(|| CoreError::not_found("certificate", id))?;
        }
        let listener = tx.insert_listener(&NewListener {
            account_id: caller.account_id,
            load_balancer_id: lb.id,
            name: request.name.clone(),
            protocol: request.protocol,
            port: request.port,
            attributes: empty_object(&request.attributes),
        })?;
        let revision = tx.next_revision()?;
        let mut bindings = Vec::new();
        for (cert_id, role) in certs {
            let binding =
                Binding { listener_id: listener.id, cert_id, role, status: BindingStatus::Associating, revision };
            tx.put_binding(&binding)?;
            bindings.push(binding);
        }
        let job_id = tx.insert_job(
            &NewJob {
                account_id: caller.account_id,
                kind: JobKind::CreateListener,
                old_cert_id: None,
                new_cert_id: request.default_certificate_id,
                client_token: None,
                request: serde_json::to_value(request).unwrap_or_default(),
            },
            &[NewTarget {
                listener_id: listener.id,
                load_balancer_id: lb.id,
                resource_type: lb.lb_type,
                region: lb.region.clone(),
                action: TargetAction::Activate,
                old_cert_id: None,
                new_cert_id: request.default_certificate_id,
                applied_at_revision: Some(revision),
            }],
        )?;
        tx.mark_job_running(job_id)?;
        Ok((ListenerDetail { listener, bindings, backends: Vec::new(), job_id: Some(job_id) }, revision))
    }

    pub fn get_listener(&self, caller: &Caller, id: ListenerId) -> Result<ListenerDetail> {
        let mut tx = self.store().read()?;
        let listener = tx.get_listener(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("listener", id))?;
        self.authorize_listener(&mut *tx, caller, "GetListener", &listener)?;
        let bindings = tx.listener_bindings(id)?;
        let backends = tx.list_backends(id)?;
        Ok(ListenerDetail { listener, bindings, backends, job_id: None })
    }

    pub fn list_listeners(&self, caller: &Caller, filter: &ListenerFilter) -> Result<(Vec<ListenerDetail>, u64)> {
        let mut tx = self.store().read()?;
        let scope = match filter.load_balancer_id {
            Some(lb) => {
                let lb = tx
                    .get_load_balancer(caller.account_id, lb)?
                    .ok_or_else(|| CoreError::not_found("load balancer", lb))?;
                Resource::load_balancer(&lb)
            }
            None => Resource::All { kind: "listener" },
        };
        self.authorize(&mut *tx, caller, "ListListeners", &[scope])?;
        let (listeners, total) = tx.list_listeners(caller.account_id, filter)?;
        let mut out = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let bindings = tx.listener_bindings(listener.id)?;
            let backends = tx.list_backends(listener.id)?;
            out.push(ListenerDetail { listener, bindings, backends, job_id: None });
        }
        Ok((out, total))
    }

    pub fn update_listener(
        &self,
        caller: &Caller,
        id: ListenerId,
        name: Option<&str>,
        attributes: Option<serde_json::Value>,
    ) -> Result<Listener> {
        let mut tx = self.store().write()?;
        let mut listener =
            tx.get_listener(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("listener", id))?;
        self.authorize_listener(&mut *tx, caller, "UpdateListener", &listener)?;
        if let Some(name) = name {
            check_name("name", name, 128)?;
            listener.name = name.to_string();
        }
        merge_attributes(&mut listener.attributes, attributes);
        tx.update_listener(&listener)?;
        tx.commit()?;
        Ok(listener)
    }

    pub fn delete_listener(&self, caller: &Caller, id: ListenerId) -> Result<()> {
        let mut tx = self.store().write()?;
        let listener = tx.get_listener(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("listener", id))?;
        self.authorize_listener(&mut *tx, caller, "DeleteListener", &listener)?;
        tx.delete_listener(caller.account_id, id)?;
        let revision = tx.next_revision()?;
        tx.commit()?;
        self.published(revision);
        Ok(())
    }

    pub fn add_backend(&self, caller: &Caller, listener: ListenerId, address: &str, weight: u32) -> Result<Backend> {
        if address.parse::<std::net::SocketAddr>().is_err() {
            return Err(CoreError::invalid("address", "must be IP:PORT"));
        }
        if weight == 0 || weight > 100 {
            return Err(CoreError::invalid("weight", "must be between 1 and 100"));
        }
        let mut tx = self.store().write()?;
        let found =
            tx.get_listener(caller.account_id, listener)?.ok_or_else(|| CoreError::not_found("listener", listener))?;
        self.authorize_listener(&mut *tx, caller, "AddBackend", &found)?;
        let backend = tx.insert_backend(listener, address, weight)?;
        let revision = tx.next_revision()?;
        tx.commit()?;
        self.published(revision);
        Ok(backend)
    }

    pub fn remove_backend(&self, caller: &Caller, listener: ListenerId, backend: BackendId) -> Result<()> {
        let mut tx = self.store().write()?;
        let found =
            tx.get_listener(caller.account_id, listener)?.ok_or_else(|| CoreError::not_found("listener", listener))?;
        self.authorize_listener(&mut *tx, caller, "RemoveBackend", &found)?;
        if !tx.delete_backend(listener, backend)? {
            return Err(CoreError::not_found("backend", backend));
        }
        let revision = tx.next_revision()?;
        tx.commit()?;
        self.published(revision);
        Ok(())
    }
}

fn merge_attributes(current: &mut serde_json::Value, extra: Option<serde_json::Value>) {
    if let Some(serde_json::Value::Object(extra)) = extra {
        match current {
            serde_json::Value::Object(map) => map.extend(extra),
            other => *other = serde_json::Value::Object(extra),
        }
    }
}

impl Control {
    /// Authorizes `action` on the load balancer a listener belongs to.
    fn authorize_listener(&self, tx: &mut dyn Tx, caller: &Caller, action: &str, listener: &Listener) -> Result<()> {
        let lb = tx
            .get_load_balancer(caller.account_id, listener.load_balancer_id)?
            .ok_or_else(|| CoreError::not_found("load balancer", listener.load_balancer_id))?;
        self.authorize(tx, caller, action, &[Resource::load_balancer(&lb)])
    }
}
