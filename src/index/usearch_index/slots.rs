//! At most a fixed number of searches of one index at a time. usearch keeps one context per
//! concurrent search, allocated up front for every index held (about 36 KB each: 256 of them
//! were 9 MB per tenant's index), and fails a search that finds none free. Past the limit a
//! search waits for a slot, which costs another search's time (well under a millisecond).

use std::sync::{Condvar, Mutex, PoisonError};

pub(super) struct SearchSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A held slot, given back when dropped.
pub(super) struct Slot<'a>(&'a SearchSlots);

impl SearchSlots {
    pub(super) fn new(slots: usize) -> Self {
        Self {
            free: Mutex::new(slots),
            freed: Condvar::new(),
        }
    }

    /// Waits until a slot is free and takes it.
    pub(super) fn take(&self) -> Slot<'_> {
        let free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let mut free = self
            .freed
            .wait_while(free, |free| *free == 0)
            .unwrap_or_else(PoisonError::into_inner);
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_holders_than_slots() {
        let slots = SearchSlots::new(2);
        let holding = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let _slot = slots.take();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        holding.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(*slots.free.lock().unwrap(), 2, "every slot was given back");
    }
}
