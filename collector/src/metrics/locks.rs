//! The family locks that a batch of observations holds while it is applied.

use std::sync::{Mutex, MutexGuard};

use super::{lock, FamilyState};

/// The family locks a batch of observations holds, by family position: each taken at the
/// family's first observation in the batch and held to its end, so that a batch of 64 takes a
/// lock per family it touches (about 15 for W1) instead of one per observation. Batches from
/// two threads can meet in one stripe (the only stripe with one worker, or the shared one), in
/// any order of families: so a batch never waits for a family's lock while it holds others. It
/// tries the lock, and when that is taken it lets go of all it holds first (they are taken
/// again as needed). Readers, expiry and single writes wait holding one family's locks at
/// most. The series cap's set (`Family::known`) is waited for while holding: it is taken last.
#[derive(Default)]
pub(super) struct Locks<'r>(Vec<Option<MutexGuard<'r, FamilyState>>>);

impl<'r> Locks<'r> {
    /// The state of the family at `position` in `stripe`, locked at the first call.
    pub(super) fn state(&mut self, position: usize, stripe: &'r Mutex<FamilyState>) -> &mut FamilyState {
        if self.0.len() <= position {
            self.0.resize_with(position + 1, || None);
        }
        if self.0[position].is_none() {
            let guard = match stripe.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    self.0.fill_with(|| None);
                    lock(stripe)
                }
            };
            self.0[position] = Some(guard);
        }
        self.0[position].get_or_insert_with(|| lock(stripe))
    }

    /// Lets go of every lock held, keeping the room to take them again.
    pub(super) fn release(&mut self) {
        self.0.fill_with(|| None);
    }
}
