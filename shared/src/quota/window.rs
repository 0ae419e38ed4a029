//! Counting per tenant: requests in the current minute ([`MinuteWindows`]) and actions in
//! flight ([`Running`]).
//!
//! Counts live in the memory of the process that enforces them (a gateway, a worker), keyed
//! by tenant so one tenant's count never touches another's. With several instances behind
//! one queue group each counts what it sees: a tenant may get up to the limit from each
//! instance. That approximation costs no network round trip per message; a fixed window
//! (the minute starts at a tenant's first request) may let up to twice the limit through
//! across a window's edge, which is what the limit is for: stopping floods, not metering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::action::TenantId;

/// How long one counting window lasts.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Tenants tracked before expired windows are swept, so a stream of tenant names cannot
/// grow the map without bound.
const SWEEP_AT: usize = 10_000;

/// What a request was told by its tenant's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether it may go on.
    pub allowed: bool,
    /// The limit of the window.
    pub limit: u32,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// Until the window ends (and `remaining` is the whole limit again).
    pub reset: Duration,
}

/// Requests per tenant in the current minute.
#[derive(Debug, Default)]
pub struct MinuteWindows {
    windows: Mutex<HashMap<TenantId, (Instant, u32)>>,
}

impl MinuteWindows {
    /// Counts one request of `tenant` against `limit` per minute; a refused one is not
    /// counted (it used nothing).
    pub fn admit(&self, tenant: &TenantId, limit: u32) -> Admission {
        self.admit_at(tenant, limit, Instant::now())
    }

    fn admit_at(&self, tenant: &TenantId, limit: u32, now: Instant) -> Admission {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= SWEEP_AT && !windows.contains_key(tenant) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(tenant.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *count) = (now, 0);
        }
        let reset = WINDOW.saturating_sub(now.duration_since(*start));
        let allowed = *count < limit;
        if allowed {
            *count += 1;
        }
        Admission {
            allowed,
            limit,
            remaining: limit.saturating_sub(*count),
            reset,
        }
    }
}

/// Actions of each tenant in flight now.
#[derive(Debug, Default)]
pub struct Running {
    counts: Arc<Mutex<HashMap<TenantId, u32>>>,
}

impl Running {
    /// Takes a slot of `tenant` if it has fewer than `limit` in flight; the slot is given
    /// back when the guard drops.
    pub fn enter(&self, tenant: &TenantId, limit: u32) -> Option<InFlightGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(tenant.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            counts: self.counts.clone(),
            tenant: tenant.clone(),
        })
    }
}

/// One action in flight; dropping it frees the tenant's slot.
#[derive(Debug)]
pub struct InFlightGuard {
    counts: Arc<Mutex<HashMap<TenantId, u32>>>,
    tenant: TenantId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).expect("tenant")
    }

    #[test]
    fn a_tenant_over_its_minute_waits_for_the_next_and_others_are_untouched() {
        let windows = MinuteWindows::default();
        let (noisy, quiet) = (tenant("noisy"), tenant("quiet"));
        let start = Instant::now();
        for left in (0..3).rev() {
            let admitted = windows.admit_at(&noisy, 3, start);
            assert!(admitted.allowed);
            assert_eq!(admitted.remaining, left);
        }
        let refused = windows.admit_at(&noisy, 3, start + Duration::from_secs(20));
        assert!(!refused.allowed);
        assert_eq!(refused.reset, Duration::from_secs(40));
        assert!(windows.admit_at(&quiet, 3, start).allowed);
        assert!(windows.admit_at(&noisy, 3, start + WINDOW).allowed);
    }

    #[test]
    fn slots_are_per_tenant_and_given_back() {
        let running = Running::default();
        let (a, b) = (tenant("a"), tenant("b"));
        let first = running.enter(&a, 1).expect("first");
        assert!(running.enter(&a, 1).is_none());
        let _other = running.enter(&b, 1).expect("another tenant");
        drop(first);
        assert!(running.enter(&a, 1).is_some());
    }
}
