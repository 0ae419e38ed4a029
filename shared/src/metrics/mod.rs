//! Worker metrics: what every worker records, whatever its service, through the `metrics`
//! facade. Nothing here exports them: a process that wants them installs a recorder first
//! (the `prometheus` feature's [`install`], which `domain-actions worker --metrics-addr`
//! and the gateway's `/metrics` use); without one, recording is a no-op.
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `da_actions_handled_total` | counter | `domain`, `tenant`, `action_type`, `outcome` | messages a worker finished with, by [`Outcome`] |
//! | `da_action_errors_total` | counter | `domain`, `tenant`, `code` | errors, by error code of docs/wire.md (retried ones too) |
//! | `da_handler_duration_seconds` | histogram | `domain`, `action_type` | time in the handler |
//! | `da_actions_in_flight` | gauge | `domain` | messages being handled now |
//! | `da_redeliveries_total` | counter | `domain`, `tenant` | deliveries after the first |
//! | `da_dead_letters_total` | counter | `domain`, `tenant`, `reason` | dead letters stored, by reason (an error code) |
//!
//! Per-tenant usage (requests, refusals for a limit, LLM tokens) is recorded by
//! [`crate::quota::metrics`], for the gateway and the workers alike.
//!
//! Labels stay few: `tenant` is a validated tenant id, `action_type` one the worker has a
//! handler for, and anything else (an unregistered type, a tenant that could not be read)
//! is `_unknown`. The labels fixed for a worker (its domain, each registered type) are built
//! once when it starts ([`WorkerMetrics`]), and the counters labelled by tenant are kept per
//! tenant once seen ([`ByTenant`]), so recording a message allocates nothing. Handles are
//! bound to the recorder installed when the worker starts, so install the recorder before
//! starting workers.

mod by_tenant;
#[cfg(feature = "prometheus")]
mod exporter;

use std::sync::Arc;
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Label, SharedString};

use crate::action::{ActionType, Domain, ErrorCode, TenantId};
pub use by_tenant::{ByTenant, TENANTS_KEPT};
#[cfg(feature = "prometheus")]
pub use exporter::{BUCKETS, CONTENT_TYPE, bind, install, render, serve};

/// Messages a worker finished with, by domain, tenant, action type and [`Outcome`].
pub const ACTIONS_HANDLED: &str = "da_actions_handled_total";
/// Errors by domain, tenant and error code, each time one happens (a retried error counts
/// once per failed delivery).
pub const ACTION_ERRORS: &str = "da_action_errors_total";
/// Time spent in the handler, in seconds, by domain and action type.
pub const HANDLER_DURATION: &str = "da_handler_duration_seconds";
/// Messages being handled right now, by domain.
pub const IN_FLIGHT: &str = "da_actions_in_flight";
/// Deliveries after the first (the message was nak'ed, or its lease ran out), by domain and tenant.
pub const REDELIVERIES: &str = "da_redeliveries_total";
/// Dead letters stored, by domain, tenant and reason (an error code, or `max_deliveries`).
pub const DEAD_LETTERS: &str = "da_dead_letters_total";

/// The label value standing for anything that is not a known action type or a readable
/// tenant, so a sender inventing names cannot add series.
pub const UNKNOWN: &str = "_unknown";

/// How a worker finished with one message: the rows of the outcome table in docs/wire.md ("Durable path").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled, result sent, acknowledged.
    Success,
    /// A retryable error with deliveries left: nak'ed with backoff (or a dead letter that
    /// could not be stored yet).
    Retried,
    /// A retryable error answered to an rpc caller (`retryable: true`); nothing is stored.
    Error,
    /// Given up on: an error result where one was asked, and a dead letter.
    DeadLettered,
    /// Refused for its tenant's limits (`rate_limited`, `quota_exceeded`): answered with
    /// the error, ended without a dead letter.
    Refused,
}

impl Outcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Retried => "retried",
            Outcome::Error => "error",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Refused => "refused",
        }
    }
}

/// The labels and handles of one action type, or of [`UNKNOWN`] types.
#[derive(Debug)]
pub struct Kind {
    /// Names the kind among the worker's (the key of its kept counters).
    index: usize,
    label: SharedString,
    duration: Histogram,
}

impl Kind {
    fn new(index: usize, domain: &SharedString, action_type: &str) -> Self {
        let label = SharedString::from_shared(Arc::from(action_type));
        let duration = ::metrics::histogram!(
            HANDLER_DURATION,
            vec![
                Label::new("domain", domain.clone()),
                Label::new("action_type", label.clone()),
            ]
        );
        Self {
            index,
            label,
            duration,
        }
    }

    /// Records the time one handler call took.
    pub fn handler_took(&self, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// One worker's metric handles: its domain's labels built once, at start.
#[derive(Debug)]
pub struct WorkerMetrics {
    domain: SharedString,
    in_flight: Gauge,
    /// Sorted by type: a worker handles a few types, and a binary search over them costs
    /// less than hashing the type on every message.
    kinds: Vec<(Box<str>, Kind)>,
    unknown: Kind,
    /// [`ACTIONS_HANDLED`] by tenant, kind and outcome.
    handled: ByTenant<(usize, Outcome)>,
    /// [`ACTION_ERRORS`] by tenant and code.
    errors: ByTenant<ErrorCode>,
    /// [`REDELIVERIES`] by tenant.
    redeliveries: ByTenant<()>,
}

impl WorkerMetrics {
    /// Handles for a worker of `domain` with handlers for `action_types`, bound to the
    /// recorder installed now.
    pub fn new<'a>(
        domain: &Domain,
        action_types: impl IntoIterator<Item = &'a ActionType>,
    ) -> Self {
        let domain = SharedString::from_shared(Arc::from(domain.as_str()));
        let in_flight = ::metrics::gauge!(IN_FLIGHT, vec![Label::new("domain", domain.clone())]);
        let mut types: Vec<&str> = action_types.into_iter().map(|t| t.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let kinds: Vec<(Box<str>, Kind)> = types
            .iter()
            .enumerate()
            .map(|(index, t)| (Box::from(*t), Kind::new(index, &domain, t)))
            .collect();
        let unknown = Kind::new(kinds.len(), &domain, UNKNOWN);
        Self {
            domain,
            in_flight,
            kinds,
            unknown,
            handled: ByTenant::default(),
            errors: ByTenant::default(),
            redeliveries: ByTenant::default(),
        }
    }

    /// The handles of `action_type`: its own if the worker handles it, else [`UNKNOWN`]'s.
    pub fn kind(&self, action_type: &ActionType) -> &Kind {
        self.kinds
            .binary_search_by(|(name, _)| (**name).cmp(action_type.as_str()))
            .map_or(&self.unknown, |found| &self.kinds[found].1)
    }

    /// The handles of a message whose action type could not be read.
    pub fn unknown(&self) -> &Kind {
        &self.unknown
    }

    /// Counts one message in flight until the returned guard is dropped (also when the
    /// handling future is cancelled).
    pub fn in_flight(&self) -> InFlightGuard<'_> {
        self.in_flight.increment(1.0);
        InFlightGuard(&self.in_flight)
    }

    /// Records how a message ended: [`ACTIONS_HANDLED`], and [`ACTION_ERRORS`] if it failed.
    pub fn finished(
        &self,
        tenant: Option<&TenantId>,
        kind: &Kind,
        outcome: Outcome,
        error: Option<ErrorCode>,
    ) {
        if let Some(code) = error {
            self.failed(tenant, code);
        }
        let make = |tenant| {
            ::metrics::counter!(
                ACTIONS_HANDLED,
                vec![
                    Label::new("domain", self.domain.clone()),
                    Label::new("tenant", tenant),
                    Label::new("action_type", kind.label.clone()),
                    Label::new("outcome", outcome.as_str()),
                ]
            )
        };
        count(&self.handled, tenant, (kind.index, outcome), make);
    }

    /// Records the `delivered`-th delivery of a message: [`REDELIVERIES`] counts all but the first.
    pub fn delivered(&self, tenant: Option<&TenantId>, delivered: u64) {
        if delivered <= 1 {
            return;
        }
        let make = |tenant| {
            ::metrics::counter!(
                REDELIVERIES,
                vec![
                    Label::new("domain", self.domain.clone()),
                    Label::new("tenant", tenant),
                ]
            )
        };
        count(&self.redeliveries, tenant, (), make);
    }

    fn failed(&self, tenant: Option<&TenantId>, code: ErrorCode) {
        let make = |tenant| {
            ::metrics::counter!(
                ACTION_ERRORS,
                vec![
                    Label::new("domain", self.domain.clone()),
                    Label::new("tenant", tenant),
                    Label::new("code", code.as_str()),
                ]
            )
        };
        count(&self.errors, tenant, code, make);
    }
}

/// Keeps one message counted in [`IN_FLIGHT`] while it lives.
#[must_use = "the message counts as in flight only while the guard lives"]
#[derive(Debug)]
pub struct InFlightGuard<'a>(&'a Gauge);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Records one stored dead letter ([`DEAD_LETTERS`]). Rare, so its labels are built here.
pub fn dead_lettered(domain: &Domain, tenant: Option<&TenantId>, reason: ErrorCode) {
    ::metrics::counter!(
        DEAD_LETTERS,
        vec![
            Label::new("domain", domain.as_str().to_owned()),
            Label::new("tenant", tenant_label(tenant)),
            Label::new("reason", reason.as_str()),
        ]
    )
    .increment(1);
}

/// Adds one to `tenant`'s counter for `key`, kept in `counters`; `make` builds the handle
/// from the tenant label. A message without a readable tenant is rare and counted as
/// [`UNKNOWN`], its handle made each time.
fn count<K: PartialEq + Copy>(
    counters: &ByTenant<K>,
    tenant: Option<&TenantId>,
    key: K,
    make: impl FnOnce(SharedString) -> Counter,
) {
    match tenant {
        Some(tenant) => counters.increment(tenant, key, 1, || make(tenant_label(Some(tenant)))),
        None => make(tenant_label(None)).increment(1),
    }
}

fn tenant_label(tenant: Option<&TenantId>) -> SharedString {
    match tenant {
        Some(tenant) => SharedString::from_owned(tenant.as_str().to_owned()),
        None => SharedString::const_str(UNKNOWN),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use metrics_util::CompositeKey;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    type Series = BTreeMap<(String, Vec<(String, String)>), DebugValue>;

    /// Runs `record` against a local recorder and returns every series it left.
    fn recorded(record: impl FnOnce()) -> Series {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, record);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (series(&key), value))
            .collect()
    }

    fn series(key: &CompositeKey) -> (String, Vec<(String, String)>) {
        let key = key.key();
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        (key.name().to_owned(), labels)
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn counter(series: &Series, name: &str, pairs: &[(&str, &str)]) -> Option<u64> {
        match series.get(&(name.to_owned(), labels(pairs)))? {
            DebugValue::Counter(n) => Some(*n),
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    #[test]
    fn worker_helpers_record_the_documented_series() {
        let domain = Domain::new("echo").expect("domain");
        let ping = ActionType::new("echo.ping").expect("type");
        let stranger = ActionType::new("echo.nope").expect("type");
        let acme = TenantId::new("acme").expect("tenant");
        let series = recorded(|| {
            let metrics = WorkerMetrics::new(&domain, [&ping]);
            {
                let _busy = metrics.in_flight();
                let kind = metrics.kind(&ping);
                kind.handler_took(Duration::from_millis(3));
                metrics.finished(Some(&acme), kind, Outcome::Success, None);
            }
            metrics.delivered(Some(&acme), 1);
            metrics.delivered(Some(&acme), 2);
            let kind = metrics.kind(&stranger);
            metrics.finished(
                Some(&acme),
                kind,
                Outcome::DeadLettered,
                Some(ErrorCode::UnknownActionType),
            );
            metrics.finished(
                None,
                metrics.unknown(),
                Outcome::DeadLettered,
                Some(ErrorCode::InvalidAction),
            );
            dead_lettered(&domain, None, ErrorCode::InvalidAction);
        });

        let handled = |tenant, action_type, outcome| {
            counter(
                &series,
                ACTIONS_HANDLED,
                &[
                    ("domain", "echo"),
                    ("tenant", tenant),
                    ("action_type", action_type),
                    ("outcome", outcome),
                ],
            )
        };
        assert_eq!(
            handled("acme", "echo.ping", "success"),
            Some(1),
            "{series:?}"
        );
        assert_eq!(
            handled("acme", UNKNOWN, "dead_lettered"),
            Some(1),
            "{series:?}"
        );
        assert_eq!(
            handled(UNKNOWN, UNKNOWN, "dead_lettered"),
            Some(1),
            "{series:?}"
        );
        let errors = |tenant, code| {
            counter(
                &series,
                ACTION_ERRORS,
                &[("domain", "echo"), ("tenant", tenant), ("code", code)],
            )
        };
        assert_eq!(errors("acme", "unknown_action_type"), Some(1), "{series:?}");
        assert_eq!(errors(UNKNOWN, "invalid_action"), Some(1), "{series:?}");
        assert_eq!(
            counter(
                &series,
                REDELIVERIES,
                &[("domain", "echo"), ("tenant", "acme")]
            ),
            Some(1)
        );
        assert_eq!(
            counter(
                &series,
                DEAD_LETTERS,
                &[
                    ("domain", "echo"),
                    ("tenant", UNKNOWN),
                    ("reason", "invalid_action")
                ]
            ),
            Some(1)
        );
        match series.get(&(
            HANDLER_DURATION.to_owned(),
            labels(&[("domain", "echo"), ("action_type", "echo.ping")]),
        )) {
            Some(DebugValue::Histogram(samples)) => {
                assert_eq!(samples.len(), 1, "{samples:?}");
                assert!((samples[0].into_inner() - 0.003).abs() < 1e-9);
            }
            other => panic!("no handler histogram: {other:?}; {series:?}"),
        }
        match series.get(&(IN_FLIGHT.to_owned(), labels(&[("domain", "echo")]))) {
            Some(DebugValue::Gauge(value)) => assert_eq!(value.into_inner(), 0.0),
            other => panic!("no in-flight gauge: {other:?}; {series:?}"),
        }
    }

    #[test]
    fn only_registered_types_get_their_own_label() {
        let domain = Domain::new("echo").expect("domain");
        let ping = ActionType::new("echo.ping").expect("type");
        let stranger = ActionType::new("echo.made_up").expect("type");
        let metrics = WorkerMetrics::new(&domain, [&ping]);
        assert_eq!(&*metrics.kind(&ping).label, "echo.ping");
        assert_eq!(&*metrics.kind(&stranger).label, UNKNOWN);
    }
}
