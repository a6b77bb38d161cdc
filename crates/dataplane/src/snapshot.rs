//! The immutable serving snapshot and how it is built from the control plane's state.
//!
//! Build the candidate completely, then publish it with one atomic swap (linkerd, Sozu).
//! A listener whose certificates cannot be built at this revision keeps the certificate
//! set it served before (GUIDE rule 6: never without a certificate; rule 3: old binding
//! or new, never half) and carries the error, so status APIs and metrics report it.
//!
//! Two ways to build: [`build`] from the whole serving state (at start, and when the
//! store cannot say what changed), and [`apply_changes`] from what changed since the
//! previous snapshot, which touches only the listeners that changed and, for a listener
//! of 100,000 certificates, only the shards of its set that changed.

use certbind_core::model::Protocol;
use certbind_core::serving::{BindingChange, ChangePoint, ServingDelta, ServingListener, ServingSource, ServingState};
use certbind_core::{CertId, ListenerId};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::backends::BackendSet;
use crate::certcache::CertCache;
use crate::certids::{difference, CertIds};
use crate::certset::CertSet;
use crate::error::{CertLoadError, ListenerBuildError};
use crate::listener_map::ListenerMap;

/// Everything the data plane serves at one revision. Never mutated once published.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// -1 for the empty snapshot before the first build.
    pub(crate) revision: i64,
    /// Where in the store's change history this snapshot stands.
    pub(crate) changes: ChangePoint,
    pub(crate) listeners: ListenerMap,
    /// The listeners whose `cert_error` is set, so nothing scans them all to find them.
    pub(crate) with_errors: Arc<Vec<ListenerId>>,
}

impl Snapshot {
    pub(crate) fn empty() -> Snapshot {
        Snapshot {
            revision: -1,
            changes: ChangePoint::default(),
            listeners: ListenerMap::default(),
            with_errors: Arc::default(),
        }
    }
}

/// Where and how a listener's socket listens: a change of any of these reopens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketSpec {
    pub(crate) address: Option<IpAddr>,
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
}

#[derive(Debug)]
pub(crate) struct ListenerView {
    pub(crate) socket: SocketSpec,
    /// `Some` for TLS listeners.
    pub(crate) certs: Option<Arc<CertSet>>,
    /// While `cert_error` is set, the revision whose bindings `certs` reflects (`None` if
    /// this listener's certificates never loaded). Without an error, `certs` is what the
    /// snapshot's revision wants.
    pub(crate) certs_revision: Option<i64>,
    pub(crate) cert_error: Option<ListenerBuildError>,
    /// The certificates this listener should serve at the snapshot's revision.
    wanted: Arc<CertIds>,
    /// The certificates `certs` holds: `wanted`, unless `cert_error` is set.
    held: Arc<CertIds>,
    pub(crate) backends: Arc<BackendSet>,
}

impl ListenerView {
    /// A plain (non-TLS) listener's view on `port`, without backends: for tests of the
    /// structures that hold views.
    #[cfg(test)]
    pub(crate) fn plain(port: u16) -> ListenerView {
        let none = Arc::new(CertIds::default());
        ListenerView {
            socket: SocketSpec { address: None, port, protocol: Protocol::Tcp },
            certs: None,
            certs_revision: None,
            cert_error: None,
            wanted: none.clone(),
            held: none,
            backends: Arc::new(BackendSet::new(&[])),
        }
    }

    /// The certificates its set holds: the default, and the additional ones.
    pub(crate) fn held_certificates(&self) -> (Option<CertId>, Vec<CertId>) {
        (self.held.default, self.held.additional.clone())
    }

    /// The revision whose desired state this listener serves, at a snapshot of `revision`.
    pub(crate) fn serving_revision(&self, revision: i64) -> Option<i64> {
        match (&self.certs, &self.cert_error) {
            (Some(_), Some(_)) => self.certs_revision,
            _ => Some(revision),
        }
    }
}

/// What a build produced: the snapshot to publish and the listeners that fell back.
#[derive(Debug)]
pub(crate) struct BuildOutcome {
    pub(crate) snapshot: Snapshot,
    pub(crate) failures: Vec<(ListenerId, ListenerBuildError)>,
    /// Built from the changes since the previous snapshot, not the whole state.
    pub(crate) from_changes: bool,
}

/// What one listener should be at the revision being built.
struct Desired {
    socket: SocketSpec,
    backends: Arc<BackendSet>,
    ids: CertIds,
}

impl Desired {
    fn from_serving(listener: &ServingListener, before: Option<&Arc<ListenerView>>) -> Desired {
        let backends = match before {
            Some(view) if view.backends.same_backends(&listener.backends) => view.backends.clone(),
            _ => Arc::new(BackendSet::new(&listener.backends)),
        };
        let socket = SocketSpec { address: listener.address, port: listener.port, protocol: listener.protocol };
        let ids = if listener.protocol.is_tls() {
            CertIds::new(listener.default_cert, &listener.additional_certs)
        } else {
            CertIds::default()
        };
        Desired { socket, backends, ids }
    }

    fn from_view(view: &ListenerView, ids: CertIds) -> Desired {
        Desired { socket: view.socket, backends: view.backends.clone(), ids }
    }
}

/// Builds the snapshot for the whole `state`, reusing what `previous` and `cache` hold.
pub(crate) fn build(
    state: ServingState,
    previous: &Snapshot,
    cache: &mut CertCache,
    source: &dyn ServingSource,
) -> BuildOutcome {
    let desired: Vec<(ListenerId, Desired)> = state
        .listeners
        .iter()
        .map(|l| (l.listener_id, Desired::from_serving(l, previous.listeners.get(&l.listener_id))))
        .collect();
    let mut outcome = build_listeners(desired, state.revision, ListenerMap::default(), previous, cache, source);
    outcome.snapshot.changes = state.changes;
    cache.retain_served(&outcome.snapshot);
    outcome
}

/// Builds the snapshot that follows `previous` by `delta`: listeners the delta does not
/// touch keep their views (and certificate sets) as they are.
pub(crate) fn apply_changes(
    delta: ServingDelta,
    previous: &Snapshot,
    cache: &mut CertCache,
    source: &dyn ServingSource,
) -> BuildOutcome {
    let mut listeners = previous.listeners.clone();
    for id in &delta.removed {
        listeners.remove(id);
    }
    let mut desired: Vec<(ListenerId, Desired)> = delta
        .listeners
        .iter()
        .map(|l| (l.listener_id, Desired::from_serving(l, previous.listeners.get(&l.listener_id))))
        .collect();
    let mut touched: HashSet<ListenerId> = desired.iter().map(|(id, _)| *id).collect();
    let mut by_listener: HashMap<ListenerId, Vec<&BindingChange>> = HashMap::new();
    for change in &delta.bindings {
        by_listener.entry(change.listener_id).or_default().push(change);
    }
    for (id, changes) in by_listener {
        // A binding of a listener this data plane does not have arrives with the
        // listener's own change, whole.
        if let Some(view) = previous.listeners.get(&id).filter(|view| view.certs.is_some()) {
            if touched.insert(id) {
                desired.push((id, Desired::from_view(view, view.wanted.changed(&changes))));
            }
        }
    }
    // Listeners still serving older certificates try again.
    for id in previous.with_errors.iter() {
        if let Some(view) = previous.listeners.get(id).filter(|_| !delta.removed.contains(id)) {
            if touched.insert(*id) {
                desired.push((*id, Desired::from_view(view, (*view.wanted).clone())));
            }
        }
    }
    let mut outcome = build_listeners(desired, delta.revision, listeners, previous, cache, source);
    outcome.snapshot.changes = delta.changes;
    outcome.from_changes = true;
    cache.retain_served_if_grown(&outcome.snapshot);
    outcome
}

/// How a TLS listener's certificate set follows from the one it held before: what leaves
/// and what joins. Held certificates are loaded (a set holds only loaded ones), so only
/// those joining are looked up, fetched and checked: a change to one of 100,000
/// certificates costs that one, not a pass over all of them.
struct SetChange {
    before: Arc<CertSet>,
    removed: Vec<CertId>,
    added: Vec<CertId>,
}

impl SetChange {
    fn between(view: &ListenerView, ids: &CertIds) -> Option<SetChange> {
        let before = view.certs.clone()?;
        if *view.held == *ids {
            return Some(SetChange { before, removed: Vec::new(), added: Vec::new() });
        }
        let (removed, added) = difference(&view.held.sorted(), &ids.sorted());
        Some(SetChange { before, removed, added })
    }

    fn is_none(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// Loads what `desired` needs and puts each listener's view into `listeners`.
fn build_listeners(
    desired: Vec<(ListenerId, Desired)>,
    revision: i64,
    mut listeners: ListenerMap,
    previous: &Snapshot,
    cache: &mut CertCache,
    source: &dyn ServingSource,
) -> BuildOutcome {
    let planned: Vec<(ListenerId, Desired, Option<SetChange>)> = desired
        .into_iter()
        .map(|(id, want)| {
            let before = previous.listeners.get(&id).filter(|_| want.socket.protocol.is_tls());
            let change = before.and_then(|view| SetChange::between(view, &want.ids));
            (id, want, change)
        })
        .collect();
    let mut missing: HashSet<CertId> = HashSet::new();
    for (_, want, change) in &planned {
        let joining: Box<dyn Iterator<Item = CertId> + '_> = match change {
            Some(change) => Box::new(change.added.iter().copied()),
            None if want.socket.protocol.is_tls() => Box::new(want.ids.iter()),
            None => Box::new(std::iter::empty()),
        };
        missing.extend(joining.filter(|cert| !cache.loaded.contains_key(cert)));
    }
    let load_failures = cache.fetch_missing(&missing, source);

    let rebuilt: HashSet<ListenerId> = planned.iter().map(|(id, _, _)| *id).collect();
    let mut failures = Vec::new();
    let mut shared = SharedSets::default();
    for (id, want, change) in planned {
        let before = previous.listeners.get(&id);
        let view = build_listener(want, change, revision, before, cache, &load_failures, &mut shared);
        if let Some(error) = &view.cert_error {
            failures.push((id, error.clone()));
        }
        listeners.insert(id, Arc::new(view));
    }
    // Every listener that falls back: those built now, and those of `previous` carried
    // over unbuilt (none, as each is retried, but the list must not depend on that).
    let mut with_errors: Vec<ListenerId> = previous
        .with_errors
        .iter()
        .filter(|id| !rebuilt.contains(id) && listeners.get(id).is_some_and(|view| view.cert_error.is_some()))
        .copied()
        .collect();
    with_errors.extend(failures.iter().map(|(id, _)| *id));
    let snapshot =
        Snapshot { revision, changes: ChangePoint::default(), listeners, with_errors: Arc::new(with_errors) };
    BuildOutcome { snapshot, failures, from_changes: false }
}

/// Certificate sets made during one build: listeners bound to the same certificates share
/// one set. A rotation over 100k listeners of one certificate makes one set, not 100k.
#[derive(Default)]
struct SharedSets {
    /// Sets built afresh, by their certificates.
    built: HashMap<Arc<CertIds>, Arc<CertSet>>,
    /// Sets derived from an earlier set, by that set and the change: equal inputs, equal
    /// sets, without hashing every id of a large one.
    derived: HashMap<DerivationKey, Arc<CertSet>>,
}

/// A derived set's inputs: the set it came from (by address), the new default, and the
/// certificates removed and added.
type DerivationKey = (usize, Option<CertId>, Vec<CertId>, Vec<CertId>);

impl SharedSets {
    /// The set for `ids`: derived from the listener's previous set when the change is
    /// small, else built afresh; each once per build.
    fn get_or_make(&mut self, ids: &Arc<CertIds>, change: Option<SetChange>, cache: &CertCache) -> Arc<CertSet> {
        // Past half the set, building afresh costs about the same and packs better.
        let small = |c: &SetChange| c.removed.len() + c.added.len() <= ids.len().max(c.before.len()) / 2;
        match change.filter(small) {
            Some(SetChange { before, removed, added }) => {
                let key = (Arc::as_ptr(&before) as usize, ids.default, removed, added);
                let made = self.derived.entry(key).or_insert_with_key(|(_, default, removed, added)| {
                    // A default the set already holds is taken from it: what a set holds is
                    // loaded, whether or not the cache still has it.
                    let default = default.and_then(|id| before.get(id).or_else(|| cache.loaded.get(&id)).cloned());
                    let added = added.iter().filter_map(|id| cache.loaded.get(id).cloned());
                    Arc::new(before.derive(default, removed, added))
                });
                made.clone()
            }
            None => self.built.entry(ids.clone()).or_insert_with(|| Arc::new(loaded_set(ids, cache))).clone(),
        }
    }
}

fn build_listener(
    want: Desired,
    change: Option<SetChange>,
    revision: i64,
    before: Option<&Arc<ListenerView>>,
    cache: &CertCache,
    load_failures: &HashMap<CertId, CertLoadError>,
    shared: &mut SharedSets,
) -> ListenerView {
    let Desired { socket, backends, ids } = want;
    if !socket.protocol.is_tls() {
        let none = Arc::new(CertIds::default());
        return ListenerView {
            socket,
            certs: None,
            certs_revision: None,
            cert_error: None,
            wanted: none.clone(),
            held: none,
            backends,
        };
    }
    // Unchanged bindings (the common case in a whole-state build: a revision touches few
    // listeners) keep their set; so does a retry that finds the same certificates.
    if let (Some(view), Some(change)) = (before, &change) {
        if change.is_none() && view.held.default == ids.default {
            return ListenerView {
                socket,
                certs: view.certs.clone(),
                certs_revision: Some(revision),
                cert_error: None,
                wanted: view.held.clone(),
                held: view.held.clone(),
                backends,
            };
        }
    }
    let joining: Box<dyn Iterator<Item = CertId> + '_> = match &change {
        Some(change) => Box::new(change.added.iter().copied()),
        None => Box::new(ids.iter()),
    };
    let error = joining.filter(|id| !cache.loaded.contains_key(id)).map(|id| {
        let source = load_failures.get(&id).cloned().unwrap_or(CertLoadError::Missing);
        ListenerBuildError { revision, cert: id, source }
    });
    let error = error.min_by_key(|e| e.cert);
    let wanted = Arc::new(ids);
    let served_before = before.and_then(|view| Some((view.certs.clone()?, view.certs_revision, view.held.clone())));
    let (certs, certs_revision, held) = match (&error, served_before) {
        (None, _) => (shared.get_or_make(&wanted, change, cache), Some(revision), wanted.clone()),
        // Keep serving what this listener served before, whole.
        (Some(_), Some(kept)) => kept,
        // A new listener has nothing older to fall back to: serve what did load, so
        // at least those names work, and report the rest.
        (Some(_), None) => {
            let loaded = CertIds {
                default: wanted.default.filter(|id| cache.loaded.contains_key(id)),
                additional: wanted.additional.iter().filter(|id| cache.loaded.contains_key(id)).copied().collect(),
            };
            (Arc::new(loaded_set(&loaded, cache)), None, Arc::new(loaded))
        }
    };
    ListenerView { socket, certs: Some(certs), certs_revision, cert_error: error, wanted, held, backends }
}

/// The certificates of `ids` that are loaded, as one set.
fn loaded_set(ids: &CertIds, cache: &CertCache) -> CertSet {
    let default = ids.default.and_then(|id| cache.loaded.get(&id).cloned());
    let additional = ids.additional.iter().filter_map(|id| cache.loaded.get(id).cloned());
    CertSet::new(default, additional)
}
