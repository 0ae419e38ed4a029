//! [`TenantSlots`]: at most N of something at once per tenant (uploads, event streams,
//! chat sockets).
//!
//! Each of these holds server resources for as long as it lasts (a request body streaming
//! into the object store, a KV watch, NATS subscriptions), so one tenant opening them
//! without bound would take them from every other tenant. A route takes a [`Slot`] for its
//! caller's tenant before it starts and keeps it for the life of the work; dropping the
//! slot (the work ended, the client went away, the future was cancelled) gives the place
//! back. Past the cap the caller gets 429 `too_many_requests` with `Retry-After`.
//!
//! The counts are per process: behind a load balancer with several gateway instances a
//! tenant may hold up to the cap on each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::action::TenantId;

use crate::http::error::ApiError;

/// What a refused caller is told to wait before trying again: long enough not to hammer,
/// short enough for an upload or a reconnecting page to get in soon after a place frees.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A cap on how many of one kind of thing each tenant may hold at once. Clones share the
/// counts, so every request of a route takes from the same places.
#[derive(Debug, Clone)]
pub struct TenantSlots {
    /// What is counted, plural ("uploads"), for the refusal's message.
    what: &'static str,
    /// The cap per tenant; `0` means no cap.
    max: usize,
    /// Places held, per tenant (absent: none).
    held: Arc<Mutex<HashMap<TenantId, usize>>>,
}

impl TenantSlots {
    /// At most `max` `what` per tenant at once (`0`: unlimited).
    pub fn new(what: &'static str, max: usize) -> Self {
        Self {
            what,
            max,
            held: Arc::default(),
        }
    }

    /// The cap per tenant (`0`: unlimited), for logs and documentation.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a place for `tenant`, or refuses with 429 and `Retry-After` when the tenant
    /// already holds the cap. Keep the slot for as long as the work lasts.
    pub fn acquire(&self, tenant: &TenantId) -> Result<Slot, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(tenant.clone()).or_default();
        if self.max > 0 && *count >= self.max {
            return Err(ApiError::too_many_requests(
                format!(
                    "tenant {tenant} already has {} {} open, the most it may at once; \
                     retry when one ends",
                    *count, self.what
                ),
                RETRY_AFTER,
            ));
        }
        *count += 1;
        Ok(Slot {
            slots: self.clone(),
            tenant: tenant.clone(),
        })
    }

    /// How many places `tenant` holds now.
    pub fn held(&self, tenant: &TenantId) -> usize {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(tenant).copied().unwrap_or_default()
    }
}

/// One place of a [`TenantSlots`], given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: TenantSlots,
    tenant: TenantId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .slots
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // No entry per tenant that ever came: the map holds only who holds places.
                held.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).expect("tenant")
    }

    #[test]
    fn a_tenant_past_its_cap_is_refused_and_others_are_not() {
        let slots = TenantSlots::new("uploads", 2);
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let first = slots.acquire(&acme).expect("first");
        let _second = slots.acquire(&acme).expect("second");
        let refused = slots.acquire(&acme).expect_err("third");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(RETRY_AFTER));
        assert!(refused.message.contains("uploads"), "{}", refused.message);
        let _other = slots.acquire(&globex).expect("another tenant");

        drop(first);
        assert_eq!(slots.held(&acme), 1);
        let _again = slots.acquire(&acme).expect("a freed place");
    }

    #[test]
    fn places_are_given_back_and_forgotten() {
        let slots = TenantSlots::new("streams", 1);
        let acme = tenant("acme");
        drop(slots.acquire(&acme).expect("slot"));
        assert_eq!(slots.held(&acme), 0);
        assert!(slots.held.lock().expect("lock").is_empty());
    }

    #[test]
    fn zero_means_no_cap() {
        let slots = TenantSlots::new("sockets", 0);
        let acme = tenant("acme");
        let held: Vec<Slot> = (0..100)
            .map(|_| slots.acquire(&acme).expect("slot"))
            .collect();
        assert_eq!(slots.held(&acme), held.len());
    }
}
