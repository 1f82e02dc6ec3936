//! Poison-safe lock access. A thread that panicked while holding one of the
//! core's locks left a map of cached values, never a half-written invariant
//! that later readers depend on, so its data is still usable: every lock is
//! taken through these helpers, which recover it instead of skipping the
//! work (a skipped cache clear would keep a revoked credential alive).

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering it if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Read-locks `l`, recovering it if a writer panicked.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Write-locks `l`, recovering it if a holder panicked.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
