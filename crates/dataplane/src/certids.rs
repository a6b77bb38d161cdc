//! A listener's certificates by id, and how two such lists differ: what a snapshot build
//! compares to decide which certificates join and leave a listener's set.

use certbind_core::model::BindingRole;
use certbind_core::serving::BindingChange;
use certbind_core::CertId;

/// A listener's certificates by id: the default, and the additional ones sorted, each
/// once, the default not among them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct CertIds {
    pub(crate) default: Option<CertId>,
    pub(crate) additional: Vec<CertId>,
}

impl CertIds {
    pub(crate) fn new(default: Option<CertId>, additional: &[CertId]) -> CertIds {
        let mut additional: Vec<CertId> = additional.iter().filter(|id| Some(**id) != default).copied().collect();
        additional.sort_unstable();
        additional.dedup();
        CertIds { default, additional }
    }

    pub(crate) fn len(&self) -> usize {
        self.additional.len() + usize::from(self.default.is_some())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = CertId> + '_ {
        self.default.iter().chain(&self.additional).copied()
    }

    /// Every id, sorted.
    pub(crate) fn sorted(&self) -> Vec<CertId> {
        let mut all = self.additional.clone();
        if let Some(default) = self.default {
            let at = all.partition_point(|id| *id < default);
            all.insert(at, default);
        }
        all
    }

    /// These ids after `changes` (the bindings of one listener, each as it is now).
    pub(crate) fn changed(&self, changes: &[&BindingChange]) -> CertIds {
        let mut next = self.clone();
        for change in changes {
            let id = change.cert_id;
            if next.default == Some(id) {
                next.default = None;
            }
            if let Ok(at) = next.additional.binary_search(&id) {
                next.additional.remove(at);
            }
            if !change.served {
                continue;
            }
            match change.role {
                // A listener has one default; the one it replaces leaves by its own change.
                BindingRole::Default => next.default = Some(id),
                BindingRole::Additional => {
                    let at = next.additional.partition_point(|other| *other < id);
                    next.additional.insert(at, id);
                }
            }
        }
        if let Some(default) = next.default {
            if let Ok(at) = next.additional.binary_search(&default) {
                next.additional.remove(at);
            }
        }
        next
    }
}

/// The ids in `from` that are not in `to`, and those in `to` that are not in `from`
/// (both sorted).
pub(crate) fn difference(from: &[CertId], to: &[CertId]) -> (Vec<CertId>, Vec<CertId>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < from.len() && j < to.len() {
        match from[i].cmp(&to[j]) {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                removed.push(from[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                added.push(to[j]);
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&from[i..]);
    added.extend_from_slice(&to[j..]);
    (removed, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbind_core::ListenerId;

    fn change(cert: i64, role: BindingRole, served: bool) -> BindingChange {
        BindingChange { listener_id: ListenerId(1), cert_id: CertId(cert), role, served }
    }

    #[test]
    fn changes_move_ids_between_default_and_additional_and_out() {
        let ids = CertIds::new(Some(CertId(5)), &[CertId(9), CertId(2), CertId(5), CertId(2)]);
        assert_eq!(ids, CertIds { default: Some(CertId(5)), additional: vec![CertId(2), CertId(9)] });
        // A replace of the default: the new one in, the old one out.
        let replaced = ids.changed(&[&change(7, BindingRole::Default, true), &change(5, BindingRole::Default, false)]);
        assert_eq!(replaced, CertIds { default: Some(CertId(7)), additional: vec![CertId(2), CertId(9)] });
        // An additional certificate becomes the default; another one leaves.
        let promoted =
            replaced.changed(&[&change(9, BindingRole::Default, true), &change(2, BindingRole::Additional, false)]);
        assert_eq!(promoted, CertIds { default: Some(CertId(9)), additional: vec![] });
        assert_eq!(promoted.sorted(), vec![CertId(9)]);
        assert_eq!(replaced.sorted(), vec![CertId(2), CertId(7), CertId(9)]);
    }

    #[test]
    fn difference_lists_what_leaves_and_what_joins() {
        let ids = |v: &[i64]| v.iter().map(|i| CertId(*i)).collect::<Vec<_>>();
        assert_eq!(difference(&ids(&[1, 3, 5, 7]), &ids(&[2, 3, 7, 8, 9])), (ids(&[1, 5]), ids(&[2, 8, 9])));
        assert_eq!(difference(&ids(&[]), &ids(&[4])), (ids(&[]), ids(&[4])));
        assert_eq!(difference(&ids(&[4]), &ids(&[4])), (ids(&[]), ids(&[])));
    }
}
