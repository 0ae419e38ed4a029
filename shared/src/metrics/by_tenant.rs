//! [`ByTenant`]: counter handles labelled by tenant, made once per tenant and kept.
//!
//! Recording through `metrics::counter!` with a tenant label builds the labels (a vector
//! and the tenant's string) and asks the recorder to find the series, every time. Workers
//! count every message by tenant, so they keep the handles instead: a message costs one
//! map lookup and an atomic add, and nothing is allocated once a tenant was seen.
//!
//! Handles are bound to the recorder installed when they are made, like every handle of
//! [`super::WorkerMetrics`]. At most [`TENANTS_KEPT`] tenants are kept; past that the map
//! is emptied and refilled as tenants come back (their series live on in the recorder),
//! so a flood of tenant names costs memory no one else can use.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use ::metrics::Counter;

use crate::action::TenantId;

/// Tenants whose handles are kept before the map is emptied.
pub const TENANTS_KEPT: usize = 10_000;

/// Counter handles of one metric by tenant and a key for its other labels (`K`: an
/// outcome, an error code, where it was counted).
#[derive(Debug)]
pub struct ByTenant<K> {
    tenants: Mutex<HashMap<TenantId, Vec<(K, Counter)>>>,
}

impl<K> Default for ByTenant<K> {
    fn default() -> Self {
        Self {
            tenants: Mutex::default(),
        }
    }
}

impl<K: PartialEq + Copy> ByTenant<K> {
    /// Adds `by` to `tenant`'s counter for `key`; `make` builds the handle the first
    /// time (the labels go there).
    pub fn increment(&self, tenant: &TenantId, key: K, by: u64, make: impl FnOnce() -> Counter) {
        self.increment_matching(tenant, |kept| *kept == key, by, || (key, make()));
    }
}

impl<K> ByTenant<K> {
    /// [`ByTenant::increment`] for keys looked up by something else than an owned key (a
    /// `&str` for a `Box<str>`): `matches` finds the kept one, `make` builds key and handle.
    pub fn increment_matching(
        &self,
        tenant: &TenantId,
        matches: impl Fn(&K) -> bool,
        by: u64,
        make: impl FnOnce() -> (K, Counter),
    ) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = tenants.get_mut(tenant) {
            if let Some((_, counter)) = kept.iter().find(|(key, _)| matches(key)) {
                counter.increment(by);
                return;
            }
            let (key, counter) = make();
            counter.increment(by);
            kept.push((key, counter));
            return;
        }
        if tenants.len() >= TENANTS_KEPT {
            tenants.clear();
        }
        let (key, counter) = make();
        counter.increment(by);
        tenants.insert(tenant.clone(), vec![(key, counter)]);
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn handles_are_made_once_per_tenant_and_key_and_count_every_time() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let made = std::cell::Cell::new(0);
        ::metrics::with_local_recorder(&recorder, || {
            let counts = ByTenant::<&str>::default();
            let acme = TenantId::new("acme").expect("tenant");
            let globex = TenantId::new("globex").expect("tenant");
            for (tenant, key) in [(&acme, "a"), (&acme, "a"), (&acme, "b"), (&globex, "a")] {
                counts.increment(tenant, key, 2, || {
                    made.set(made.get() + 1);
                    ::metrics::counter!("kept", "tenant" => tenant.as_str().to_owned(), "key" => key)
                });
            }
        });
        assert_eq!(made.get(), 3, "one handle per tenant and key");
        let mut seen: Vec<(Vec<String>, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels = key.key().labels().map(|l| l.value().to_owned()).collect();
                (labels, value)
            })
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen,
            vec![
                (vec!["acme".into(), "a".into()], DebugValue::Counter(4)),
                (vec!["acme".into(), "b".into()], DebugValue::Counter(2)),
                (vec!["globex".into(), "a".into()], DebugValue::Counter(2)),
            ]
        );
    }
}
