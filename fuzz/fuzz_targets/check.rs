//! What every name or subject the framework accepts must be, whatever it was built from.

use shared::action::{ActionType, Domain, TenantId};
use shared::subject::{ActionSubject, CallbackSubject};

/// Whether NATS would accept `subject` as a publish subject that names exactly one
/// subject: not empty, no whitespace or control characters (they break the protocol
/// line), no wildcards, no empty tokens.
pub fn publishable(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty()
                && !t.contains(['*', '>'])
                && !t.chars().any(char::is_whitespace)
                && !t.chars().any(char::is_control)
        })
}

/// A validated domain: `[a-z][a-z0-9_]{0,31}`, not `dlq`; its stream name is its capitals.
pub fn domain(d: &Domain) {
    let s = d.as_str();
    assert!(!s.is_empty() && s.len() <= 32 && s != "dlq", "{s:?}");
    assert!(s.as_bytes()[0].is_ascii_lowercase(), "{s:?}");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{s:?}"
    );
    assert_eq!(d.stream_name(), s.to_ascii_uppercase());
}

/// A validated tenant: one subject token.
pub fn tenant(t: &TenantId) {
    let s = t.as_str();
    assert!(!s.is_empty() && s.len() <= 64, "{s:?}");
    assert!(publishable(s) && !s.contains('.'), "{s:?}");
}

/// A validated action type: a valid domain, a verb, its result type valid too.
pub fn action_type(t: &ActionType) {
    domain(&t.domain());
    let s = t.as_str();
    assert!(publishable(s), "{s:?}");
    let result = t.result_type();
    assert!(result.is_result(), "{result:?}");
    assert!(ActionType::new(result.as_str()).is_ok(), "{result:?}");
    assert_eq!(result.domain(), t.domain());
}

/// A parsed action subject prints back as it was read.
pub fn action_subject(s: &ActionSubject, read: &str) {
    domain(&s.domain);
    tenant(&s.tenant);
    assert_eq!(s.to_string(), read);
}

/// A checked callback stays inside `tenant` and can be published to.
pub fn callback(c: &CallbackSubject, tenant: &TenantId) {
    let s = c.as_str();
    assert!(
        publishable(s),
        "accepted callback {s:?} is not a publishable subject"
    );
    if s.starts_with("_INBOX") {
        assert!(!c.is_durable());
    } else {
        let parsed = ActionSubject::parse(s).expect("a durable callback is an action subject");
        assert_eq!(&parsed.tenant, tenant, "{s:?}");
        assert_eq!(parsed.channel, shared::subject::Channel::Callbacks, "{s:?}");
    }
}
