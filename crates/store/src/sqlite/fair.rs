//! A mutex that hands itself over in the order it was asked for.
//!
//! The job runner writes batch after batch, each a transaction. With an unfair lock the
//! thread that just unlocked takes it again before a waiting API request has woken, and a
//! client's one-row write (or its audit entry) waits for the whole job: answering a POST
//! took anywhere from 0.2 s to 1.5 s while a 100k-listener job ran. Served in turn, it
//! waits for one batch at most.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) struct FairMutex<T> {
    value: Mutex<T>,
    /// (next ticket to hand out, ticket whose turn it is)
    tickets: Mutex<(u64, u64)>,
    turn: Condvar,
}

impl<T> FairMutex<T> {
    pub(crate) fn new(value: T) -> Self {
        FairMutex { value: Mutex::new(value), tickets: Mutex::new((0, 0)), turn: Condvar::new() }
    }

    /// Waits for this caller's turn, then for the value. A poisoned lock is taken anyway:
    /// a connection stays usable after a panic elsewhere (its transaction rolled back).
    pub(crate) fn lock(&self) -> FairGuard<'_, T> {
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        let mine = tickets.0;
        tickets.0 += 1;
        while tickets.1 != mine {
            tickets = self.turn.wait(tickets).unwrap_or_else(|p| p.into_inner());
        }
        drop(tickets);
        let guard = self.value.lock().unwrap_or_else(|p| p.into_inner());
        FairGuard { guard: Some(guard), owner: self }
    }
}

pub(crate) struct FairGuard<'a, T> {
    guard: Option<MutexGuard<'a, T>>,
    owner: &'a FairMutex<T>,
}

impl<T> Drop for FairGuard<'_, T> {
    fn drop(&mut self) {
        // Release the value before passing the turn on.
        self.guard.take();
        let mut tickets = self.owner.tickets.lock().unwrap_or_else(|p| p.into_inner());
        tickets.1 += 1;
        drop(tickets);
        self.owner.turn.notify_all();
    }
}

impl<T> Deref for FairGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().unwrap_or_else(|| unreachable!("the value is held until drop"))
    }
}

impl<T> DerefMut for FairGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!("the value is held until drop"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_waiting_thread_gets_its_turn_before_the_holder_takes_it_again() {
        let lock = Arc::new(FairMutex::new(Vec::new()));
        let held = lock.lock();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || lock.lock().push("waiter"))
        };
        // Let the waiter queue up, then release and immediately ask again.
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        lock.lock().push("holder again");
        waiter.join().unwrap();
        assert_eq!(*lock.lock(), vec!["waiter", "holder again"]);
    }
}
