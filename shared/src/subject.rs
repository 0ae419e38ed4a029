//! Subjects: the only place a subject string is formatted or parsed.
//!
//! | subject | what flows |
//! |---|---|
//! | `<domain>.<tenant>.actions` | durable actions (JetStream) |
//! | `<domain>.<tenant>.callbacks` | durable results addressed to that domain (JetStream) |
//! | `<domain>.<tenant>.rpc` | request/reply, nothing stored |
//! | `<domain>.<tenant>.events.…` | live progress and tokens (core NATS) |
//! | `dlq.<domain>.<tenant>` | dead letters (JetStream) |
//!
//! Every builder takes validated [`Domain`] and [`TenantId`] values, so no unchecked string
//! is ever interpolated into a subject.

use std::fmt;

use crate::action::{ActionError, ActionType, Domain, ErrorCode, TenantId};

/// The last token of an action subject: which path the message took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Durable actions for the domain's workers.
    Actions,
    /// Durable results addressed to the domain.
    Callbacks,
    /// Request/reply.
    Rpc,
}

impl Channel {
    /// The token as it appears in subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Actions => "actions",
            Channel::Callbacks => "callbacks",
            Channel::Rpc => "rpc",
        }
    }

    fn parse(token: &str) -> Option<Self> {
        match token {
            "actions" => Some(Channel::Actions),
            "callbacks" => Some(Channel::Callbacks),
            "rpc" => Some(Channel::Rpc),
            _ => None,
        }
    }
}

/// Why a subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Not `<domain>.<tenant>.<channel>`.
    #[error("subject {0:?} is not <domain>.<tenant>.actions|callbacks|rpc")]
    Shape(String),
    /// The shape is right but a name breaks its rule.
    #[error("subject {subject:?}: {source}")]
    Name {
        /// The subject as received.
        subject: String,
        /// The rule it broke.
        source: crate::action::NameError,
    },
}

/// A parsed `<domain>.<tenant>.<channel>` subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionSubject {
    /// The service's domain.
    pub domain: Domain,
    /// The tenant, validated.
    pub tenant: TenantId,
    /// Which path.
    pub channel: Channel,
}

impl ActionSubject {
    /// A subject of `channel` for `domain` and `tenant`.
    pub fn new(domain: &Domain, tenant: &TenantId, channel: Channel) -> Self {
        Self {
            domain: domain.clone(),
            tenant: tenant.clone(),
            channel,
        }
    }

    /// Parses and validates a received subject.
    pub fn parse(subject: &str) -> Result<Self, SubjectError> {
        let mut tokens = subject.split('.');
        let (Some(domain), Some(tenant), Some(channel), None) =
            (tokens.next(), tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(SubjectError::Shape(subject.to_owned()));
        };
        let channel =
            Channel::parse(channel).ok_or_else(|| SubjectError::Shape(subject.to_owned()))?;
        let name_err = |source| SubjectError::Name {
            subject: subject.to_owned(),
            source,
        };
        Ok(Self {
            domain: Domain::new(domain).map_err(name_err)?,
            tenant: TenantId::new(tenant).map_err(name_err)?,
            channel,
        })
    }
}

impl fmt::Display for ActionSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.domain,
            self.tenant,
            self.channel.as_str()
        )
    }
}

/// `<domain>.<tenant>.actions`.
pub fn actions(domain: &Domain, tenant: &TenantId) -> String {
    join(domain.as_str(), tenant, Channel::Actions)
}

/// `<domain>.<tenant>.callbacks`.
pub fn callbacks(domain: &Domain, tenant: &TenantId) -> String {
    join(domain.as_str(), tenant, Channel::Callbacks)
}

/// `<domain>.<tenant>.rpc`.
pub fn rpc(domain: &Domain, tenant: &TenantId) -> String {
    join(domain.as_str(), tenant, Channel::Rpc)
}

/// The subject of `channel` for an action of `action_type` (its domain) and `tenant`.
pub(crate) fn for_action(action_type: &ActionType, tenant: &TenantId, channel: Channel) -> String {
    join(action_type.domain_str(), tenant, channel)
}

/// `<domain>.<tenant>.<channel>` in one allocation: publishers build one per message.
/// `domain` comes from a validated [`Domain`] or [`ActionType`].
fn join(domain: &str, tenant: &TenantId, channel: Channel) -> String {
    let (tenant, channel) = (tenant.as_str(), channel.as_str());
    let mut subject = String::with_capacity(domain.len() + tenant.len() + channel.len() + 2);
    for part in [domain, ".", tenant, ".", channel] {
        subject.push_str(part);
    }
    subject
}

/// The filter matching `channel` of every tenant of `domain`: `<domain>.*.<channel>`.
pub fn any_tenant(domain: &Domain, channel: Channel) -> String {
    format!("{domain}.*.{}", channel.as_str())
}

/// `<domain>.<tenant>.events.<suffix>`; each token of `suffix` must be `[A-Za-z0-9_-]+`.
pub fn events(domain: &Domain, tenant: &TenantId, suffix: &str) -> Result<String, SubjectError> {
    let ok = suffix.split('.').all(|token| TenantId::new(token).is_ok());
    if ok {
        Ok(format!("{domain}.{tenant}.events.{suffix}"))
    } else {
        Err(SubjectError::Shape(format!(
            "{domain}.{tenant}.events.{suffix}"
        )))
    }
}

/// Stand-in tenant token for dead letters whose subject carried no valid tenant.
pub const UNKNOWN_TENANT: &str = "_unknown";

/// `dlq.<domain>.<tenant>`: where the domain's dead letters for that tenant go.
pub fn dead_letters(domain: &Domain, tenant: Option<&TenantId>) -> String {
    let tenant = tenant.map_or(UNKNOWN_TENANT, TenantId::as_str);
    format!("dlq.{domain}.{tenant}")
}

/// The filter matching the dead letters of `domain` and `tenant`, each every one when `None`:
/// `dlq.<domain or *>.<tenant or *>`, for reading the DLQ stream by domain or tenant.
pub fn dead_letters_filter(domain: Option<&Domain>, tenant: Option<&TenantId>) -> String {
    let domain = domain.map_or("*", Domain::as_str);
    let tenant = tenant.map_or("*", TenantId::as_str);
    format!("dlq.{domain}.{tenant}")
}

/// Every dead letter: `dlq.>`.
pub const ALL_DEAD_LETTERS: &str = "dlq.>";

/// The prefix of reply inboxes; results may always be sent to one.
pub const INBOX_PREFIX: &str = "_INBOX.";

/// A callback subject that has been checked to stay inside its action's tenant: either
/// `<domain>.<same tenant>.callbacks` (durable) or an `_INBOX.` reply subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallbackSubject(String);

impl CallbackSubject {
    /// The durable callbacks subject of `domain` for `tenant`.
    pub fn callbacks(domain: &Domain, tenant: &TenantId) -> Self {
        Self(callbacks(domain, tenant))
    }

    /// An inbox subject, e.g. from `Client::new_inbox()`. Each token must be one a result
    /// can be published to: no wildcard, no whitespace or control character (a tab passed
    /// this check once, then every result publish failed and the action was retried to
    /// its last delivery; found by `fuzz/fuzz_targets/names.rs`).
    pub fn inbox(subject: String) -> Result<Self, ActionError> {
        let publishable = |t: &str| {
            !t.is_empty()
                && !t.contains(['*', '>'])
                && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        let valid = subject.starts_with(INBOX_PREFIX)
            && subject.len() > INBOX_PREFIX.len()
            && subject.split('.').all(publishable);
        if valid {
            Ok(Self(subject))
        } else {
            Err(ActionError::invalid(format!(
                "{subject:?} is not an inbox subject"
            )))
        }
    }

    /// Checks a callback subject read from an action of `tenant`. Anything but this
    /// tenant's callbacks or an inbox is `forbidden`: one tenant cannot aim results at another.
    pub fn parse(subject: &str, tenant: &TenantId) -> Result<Self, ActionError> {
        if subject.starts_with(INBOX_PREFIX) {
            return Self::inbox(subject.to_owned());
        }
        match ActionSubject::parse(subject) {
            Ok(s) if s.channel == Channel::Callbacks && &s.tenant == tenant => {
                Ok(Self(subject.to_owned()))
            }
            _ => Err(ActionError::new(
                ErrorCode::Forbidden,
                format!(
                    "callback subject {subject:?} is neither {tenant}'s <domain>.{tenant}.callbacks nor an _INBOX. subject"
                ),
            )),
        }
    }

    /// Whether results sent here are stored (JetStream) rather than delivered live.
    pub fn is_durable(&self) -> bool {
        !self.0.starts_with(INBOX_PREFIX)
    }

    /// The subject string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallbackSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Domain {
        Domain::new(s).unwrap()
    }
    fn t(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn builds_every_subject() {
        assert_eq!(actions(&d("echo"), &t("acme")), "echo.acme.actions");
        assert_eq!(callbacks(&d("echo"), &t("acme")), "echo.acme.callbacks");
        assert_eq!(rpc(&d("echo"), &t("acme")), "echo.acme.rpc");
        let ping = ActionType::new("echo.ping").unwrap();
        assert_eq!(
            for_action(&ping, &t("acme"), Channel::Actions),
            "echo.acme.actions"
        );
        assert_eq!(any_tenant(&d("echo"), Channel::Actions), "echo.*.actions");
        assert_eq!(dead_letters(&d("echo"), Some(&t("acme"))), "dlq.echo.acme");
        assert_eq!(dead_letters(&d("echo"), None), "dlq.echo._unknown");
        assert_eq!(dead_letters_filter(None, None), "dlq.*.*");
        assert_eq!(
            dead_letters_filter(Some(&d("echo")), Some(&t("acme"))),
            "dlq.echo.acme"
        );
        assert_eq!(dead_letters_filter(None, Some(&t("acme"))), "dlq.*.acme");
        assert_eq!(
            events(&d("orchestrator"), &t("acme"), "session.s1").unwrap(),
            "orchestrator.acme.events.session.s1"
        );
        assert!(events(&d("orchestrator"), &t("acme"), "session.>").is_err());
    }

    #[test]
    fn parses_action_subjects() {
        let s = ActionSubject::parse("echo.acme.rpc").unwrap();
        assert_eq!(
            (s.domain.as_str(), s.tenant.as_str(), s.channel),
            ("echo", "acme", Channel::Rpc)
        );
        for bad in [
            "echo.acme",
            "echo.acme.actions.x",
            "echo.acme.other",
            "Echo.acme.actions",
            "echo.a!b.actions",
            "echo..actions",
        ] {
            assert!(ActionSubject::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn callbacks_stay_inside_the_tenant() {
        let acme = t("acme");
        assert!(
            CallbackSubject::parse("orchestrator.acme.callbacks", &acme)
                .unwrap()
                .is_durable()
        );
        assert!(
            !CallbackSubject::parse("_INBOX.abc.def", &acme)
                .unwrap()
                .is_durable()
        );
        for bad in [
            "orchestrator.globex.callbacks",
            "orchestrator.acme.actions",
            "dlq.echo.acme",
            "anything",
            "_INBOX.>",
            "_INBOX.",
        ] {
            assert!(CallbackSubject::parse(bad, &acme).is_err(), "{bad}");
        }
        assert_eq!(
            CallbackSubject::parse("echo.globex.callbacks", &acme)
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
    }

    /// Regression inputs of `fuzz/fuzz_targets/names.rs`: inboxes with a byte NATS cannot
    /// publish to (a tab, a line break) or no business in a subject (NUL) were accepted.
    #[test]
    fn inboxes_are_publishable_subjects() {
        let acme = t("acme");
        for bad in [
            "_INBOX.\0!",
            "_INBOX.a\tb",
            "_INBOX.a\r\nPUB x 1",
            "_INBOX.a b",
            "_INBOX.a..b",
            "_INBOX.a.",
            "_INBOX.\u{85}",
        ] {
            assert!(CallbackSubject::parse(bad, &acme).is_err(), "{bad:?}");
            assert!(CallbackSubject::inbox(bad.to_owned()).is_err(), "{bad:?}");
        }
        assert!(CallbackSubject::inbox("_INBOX.Ab3.x-y_z".to_owned()).is_ok());
    }

    proptest! {
        #[test]
        fn subjects_round_trip(domain in "[a-z][a-z0-9_]{0,31}", tenant in "[A-Za-z0-9_-]{1,64}") {
            prop_assume!(domain != "dlq");
            let (dom, ten) = (d(&domain), t(&tenant));
            for channel in [Channel::Actions, Channel::Callbacks, Channel::Rpc] {
                let s = ActionSubject::new(&dom, &ten, channel);
                prop_assert_eq!(ActionSubject::parse(&s.to_string()).unwrap(), s);
            }
        }

        #[test]
        fn accepted_callbacks_never_leave_the_tenant(subject in "[a-z_.*>A-Z0-9-]{0,40}", tenant in "[a-z]{1,5}") {
            let tenant = t(&tenant);
            if let Ok(cb) = CallbackSubject::parse(&subject, &tenant) {
                prop_assert!(!cb.as_str().contains(['*', '>']));
                if cb.is_durable() {
                    let parsed = ActionSubject::parse(cb.as_str()).unwrap();
                    prop_assert_eq!(parsed.tenant, tenant);
                }
            }
        }
    }
}
