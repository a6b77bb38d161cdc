//! A snapshot's listener views by id, split into copy-on-write shards: the snapshot that
//! changes one listener among 100,000 copies the one shard holding it and shares the rest
//! with the snapshot before, and what changed between two snapshots is found by comparing
//! shards, not listeners.

use certbind_core::ListenerId;
use std::collections::HashMap;
use std::sync::Arc;

use crate::snapshot::ListenerView;

/// A power of two. Listener ids are sequential, so they spread evenly by their low bits.
const SHARDS: usize = 256;

type Shard = HashMap<ListenerId, Arc<ListenerView>>;

#[derive(Debug, Clone)]
pub(crate) struct ListenerMap {
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Default for ListenerMap {
    fn default() -> Self {
        ListenerMap { shards: vec![Arc::default(); SHARDS], len: 0 }
    }
}

fn shard_of(id: ListenerId) -> usize {
    (id.0 as usize) & (SHARDS - 1)
}

impl ListenerMap {
    pub(crate) fn get(&self, id: &ListenerId) -> Option<&Arc<ListenerView>> {
        self.shards[shard_of(*id)].get(id)
    }

    pub(crate) fn contains_key(&self, id: &ListenerId) -> bool {
        self.shards[shard_of(*id)].contains_key(id)
    }

    pub(crate) fn insert(&mut self, id: ListenerId, view: Arc<ListenerView>) {
        if Arc::make_mut(&mut self.shards[shard_of(id)]).insert(id, view).is_none() {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, id: &ListenerId) {
        let shard = &mut self.shards[shard_of(*id)];
        if shard.contains_key(id) && Arc::make_mut(shard).remove(id).is_some() {
            self.len -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ListenerId, &Arc<ListenerView>)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<ListenerView>> {
        self.shards.iter().flat_map(|shard| shard.values())
    }

    /// The ids whose views may differ between `self` and `other`: every id of the shards
    /// the two do not share.
    pub(crate) fn ids_differing_from<'a>(&'a self, other: &'a ListenerMap) -> impl Iterator<Item = ListenerId> + 'a {
        self.shards
            .iter()
            .zip(&other.shards)
            .filter(|(mine, theirs)| !Arc::ptr_eq(mine, theirs))
            .flat_map(|(mine, theirs)| mine.keys().chain(theirs.keys().filter(|id| !mine.contains_key(id))))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn map(ids: impl IntoIterator<Item = i64>) -> ListenerMap {
        let mut map = ListenerMap::default();
        for id in ids {
            map.insert(ListenerId(id), Arc::new(ListenerView::plain(id as u16)));
        }
        map
    }

    #[test]
    fn a_changed_copy_shares_the_shards_it_did_not_touch() {
        let before = map(0..10_000);
        let mut after = before.clone();
        after.insert(ListenerId(5), Arc::new(ListenerView::plain(1)));
        after.remove(&ListenerId(700));
        after.insert(ListenerId(20_000), Arc::new(ListenerView::plain(2)));
        assert_eq!((before.len(), after.len()), (10_000, 10_000));
        assert!(before.get(&ListenerId(700)).is_some() && after.get(&ListenerId(700)).is_none());
        assert_eq!(before.get(&ListenerId(5)).unwrap().socket.port, 5);
        assert_eq!(after.get(&ListenerId(5)).unwrap().socket.port, 1);

        // Every id whose view differs is among those reported, and only the shards of the
        // three changed ids are: a few hundred ids, not ten thousand.
        let differing: BTreeSet<ListenerId> = after.ids_differing_from(&before).collect();
        for id in [5, 700, 20_000] {
            assert!(differing.contains(&ListenerId(id)), "{id}");
        }
        let shards: BTreeSet<usize> = differing.iter().map(|id| shard_of(*id)).collect();
        assert_eq!(
            shards,
            BTreeSet::from([shard_of(ListenerId(5)), shard_of(ListenerId(700)), shard_of(ListenerId(20_000))])
        );
        assert_eq!(after.ids_differing_from(&after.clone()).count(), 0);
        assert_eq!(after.iter().count(), after.len());
    }
}
