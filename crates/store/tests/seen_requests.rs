//! The memory of signed requests: one answer per request across every store open on one
//! database (as several nodes would be), kept across a reopen, forgotten once expired.

use certbind_store::{SeenRequest, SqliteStore, Store};
use std::sync::Arc;

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("certbind-seen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn of_many_concurrent_senders_exactly_one_is_first() {
    let dir = dir("concurrent");
    let first = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    let second = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    let now = 1_000;
    for round in 0..20 {
        let key = format!("nonce-{round}");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 { first.clone() } else { second.clone() };
                let key = key.clone();
                std::thread::spawn(move || store.remember_request("test", &key, "Read", now + 60, now).unwrap())
            })
            .collect();
        let answers: Vec<SeenRequest> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers.iter().filter(|a| **a == SeenRequest::New).count(), 1, "{answers:?}");
        assert!(answers.iter().all(|a| matches!(a, SeenRequest::New | SeenRequest::SameAction { seen_at: 1_000 })));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_request_is_remembered_across_a_reopen_with_its_action_until_it_expires() {
    let dir = dir("reopen");
    {
        let store = SqliteStore::open_dir(&dir).unwrap();
        assert_eq!(store.remember_request("tc3", "sig", "Describe", 200, 100).unwrap(), SeenRequest::New);
    }
    let store = SqliteStore::open_dir(&dir).unwrap();
    assert_eq!(
        store.remember_request("tc3", "sig", "Delete", 200, 150).unwrap(),
        SeenRequest::OtherAction { seen_at: 100 }
    );
    assert_eq!(store.remember_request("other", "sig", "Delete", 200, 150).unwrap(), SeenRequest::New, "scopes apart");
    // Past its expiry it would be refused by its timestamp anyway: forgotten, then new.
    assert_eq!(store.remember_request("tc3", "sig", "Describe", 400, 201).unwrap(), SeenRequest::New);
    let _ = std::fs::remove_dir_all(&dir);
}
