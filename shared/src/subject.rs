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

/// The prefix of the shared reply inboxes (`_INBOX.<id>`), which only [`Inboxes::Shared`]
/// accepts: on a server where tenants log in, nobody but the services could read them.
pub const INBOX_PREFIX: &str = "_INBOX.";

/// The prefix of the reply subjects nats-server makes when a request crosses from a tenant's
/// account into the services' (a service import): the server routes what is published
/// there back to the requester's own reply subject, in the requester's account. A tenant in
/// its own account cannot name one of ours.
pub const SERVER_REPLY_PREFIX: &str = "_R_.";

/// `_INBOX_<tenant>.`: the reply inboxes of one tenant. A tenant's client sets it as its
/// inbox prefix (async-nats `custom_inbox_prefix`, nats CLI `--inbox-prefix`), and the
/// secured server configuration (`nats/accounts.conf`) lets only that tenant read them.
pub fn tenant_inbox_prefix(tenant: &TenantId) -> String {
    format!("_INBOX_{tenant}.")
}

/// A fresh reply inbox of `tenant`: `_INBOX_<tenant>.<unique id>`.
pub fn tenant_inbox(tenant: &TenantId) -> CallbackSubject {
    let mut inbox = tenant_inbox_prefix(tenant);
    inbox.push_str(&uuid::Uuid::new_v4().simple().to_string());
    CallbackSubject(inbox)
}

/// Which reply inboxes results and rpc replies may go to (setting `DA_INBOXES`).
///
/// Always allowed: the action's own tenant's `_INBOX_<tenant>.…`, and for rpc replies the
/// server's `_R_.…` reply subjects of a cross-account request. Never: another tenant's
/// inbox, or any other subject (`$KV.…`, `$JS.API.…`, `dlq.…`, another tenant's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inboxes {
    /// Only tenant inboxes: where tenants log in, so the shared `_INBOX.` prefix belongs
    /// to no tenant and a result sent there could land in anyone's (or the services') inbox.
    Tenant,
    /// Tenant inboxes and the shared `_INBOX.` prefix: a server without logins (the local
    /// `dev` setup), where every client may read everything anyway and `nats req` works
    /// without an inbox prefix.
    #[default]
    Shared,
}

impl Inboxes {
    /// Parses `tenant` or `shared`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "tenant" => Some(Inboxes::Tenant),
            "shared" => Some(Inboxes::Shared),
            _ => None,
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Inboxes::Tenant => "tenant",
            Inboxes::Shared => "shared",
        }
    }

    /// Checks the reply subject of an rpc request of `tenant` (`None`: its subject named no
    /// valid tenant, so no tenant inbox can be its own): the rpc endpoint answers only where
    /// this allows, and dead-letters anything else unanswered.
    pub fn check_reply(self, reply: &str, tenant: Option<&TenantId>) -> Result<(), ActionError> {
        if reply.starts_with(SERVER_REPLY_PREFIX) && publishable(reply) {
            return Ok(());
        }
        match tenant {
            // Checked in place: every rpc request comes through here, and the checked
            // subject itself is not needed (the reply goes to the request's reply subject).
            Some(tenant) if publishable(reply) && self.allows(reply, tenant) => Ok(()),
            Some(tenant) => self.check_inbox(reply, tenant, "reply subject").map(drop),
            None if publishable(reply) && self.allows_shared(reply) => Ok(()),
            None => Err(ActionError::new(
                ErrorCode::Forbidden,
                format!("reply subject {reply:?} is not an inbox this request may be answered on"),
            )),
        }
    }

    /// Whether `subject` is an inbox of `tenant` (`_INBOX_<tenant>.…`, something after the
    /// prefix) or a shared inbox this rule allows: [`Inboxes::check_inbox`]'s test, without
    /// building the prefix.
    fn allows(self, subject: &str, tenant: &TenantId) -> bool {
        let own = subject
            .strip_prefix("_INBOX_")
            .and_then(|rest| rest.strip_prefix(tenant.as_str()))
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| !rest.is_empty());
        own || self.allows_shared(subject)
    }

    /// Whether `subject` is a shared `_INBOX.…` inbox and this rule allows those.
    fn allows_shared(self, subject: &str) -> bool {
        self == Inboxes::Shared && has_prefix(subject, INBOX_PREFIX)
    }

    /// Checks an inbox a result of `tenant`'s action is to be published to.
    fn check_inbox(
        self,
        subject: &str,
        tenant: &TenantId,
        what: &str,
    ) -> Result<CallbackSubject, ActionError> {
        // A subject nothing can be published to is malformed, whoever it names.
        if !publishable(subject) {
            return Err(ActionError::invalid(format!(
                "{what} {subject:?} is not a subject a result can be published to"
            )));
        }
        if self.allows(subject, tenant) {
            return Ok(CallbackSubject(subject.to_owned()));
        }
        let own = tenant_inbox_prefix(tenant);
        let inboxes = match self {
            Inboxes::Tenant => format!("{own}…"),
            Inboxes::Shared => format!("{own}… or {INBOX_PREFIX}…"),
        };
        Err(ActionError::new(
            ErrorCode::Forbidden,
            format!(
                "{what} {subject:?} is not one of {tenant}'s: results go to {inboxes} or <domain>.{tenant}.callbacks"
            ),
        ))
    }
}

/// Whether `subject` starts with `prefix` and has something after it.
fn has_prefix(subject: &str, prefix: &str) -> bool {
    subject.len() > prefix.len() && subject.starts_with(prefix)
}

/// Whether every token of `subject` is one a message can be published to: no wildcard, no
/// whitespace or control character (a tab passed an earlier check, then every result
/// publish failed and the action was retried to its last delivery; found by
/// `fuzz/fuzz_targets/names.rs`).
fn publishable(subject: &str) -> bool {
    // Nearly every subject is ASCII: its bytes say it all. Anything else is read by char
    // (Unicode has more whitespace and control characters than ASCII).
    if subject.is_ascii() {
        let bytes = subject.as_bytes();
        let bad =
            |b: &u8| matches!(b, b'*' | b'>') || b.is_ascii_whitespace() || b.is_ascii_control();
        // ASCII whitespace as `char::is_whitespace` counts it also has vertical tab (a control).
        return !bytes.is_empty()
            && !bytes.iter().any(bad)
            && !bytes.starts_with(b".")
            && !bytes.ends_with(b".")
            && !subject.contains("..");
    }
    subject.split('.').all(|t| {
        !t.is_empty()
            && !t.contains(['*', '>'])
            && !t.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// A callback subject that has been checked to stay inside its action's tenant: either
/// `<domain>.<same tenant>.callbacks` (durable) or one of the tenant's reply inboxes
/// ([`Inboxes`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallbackSubject(String);

impl CallbackSubject {
    /// The durable callbacks subject of `domain` for `tenant`.
    pub fn callbacks(domain: &Domain, tenant: &TenantId) -> Self {
        Self(callbacks(domain, tenant))
    }

    /// An inbox subject this process made for itself (e.g. `Client::new_inbox()` or
    /// [`tenant_inbox`]): `_INBOX.…` or `_INBOX_<tenant>.…`, every token publishable.
    pub fn inbox(subject: String) -> Result<Self, ActionError> {
        let prefixed = subject.split_once('.').is_some_and(|(first, rest)| {
            (first == "_INBOX" || first.starts_with("_INBOX_")) && !rest.is_empty()
        });
        if prefixed && publishable(&subject) {
            Ok(Self(subject))
        } else {
            Err(ActionError::invalid(format!(
                "{subject:?} is not an inbox subject"
            )))
        }
    }

    /// Checks a callback subject read from an action of `tenant`: this tenant's
    /// `<domain>.<tenant>.callbacks`, or an inbox `inboxes` allows. Anything else is
    /// `forbidden`: one tenant cannot aim results at another, or at any other subject.
    pub fn parse(subject: &str, tenant: &TenantId, inboxes: Inboxes) -> Result<Self, ActionError> {
        if subject.starts_with("_INBOX") {
            return inboxes.check_inbox(subject, tenant, "callback subject");
        }
        match ActionSubject::parse(subject) {
            Ok(s) if s.channel == Channel::Callbacks && &s.tenant == tenant => {
                Ok(Self(subject.to_owned()))
            }
            _ => Err(ActionError::new(
                ErrorCode::Forbidden,
                format!(
                    "callback subject {subject:?} is neither {tenant}'s <domain>.{tenant}.callbacks nor one of its inboxes"
                ),
            )),
        }
    }

    /// Whether results sent here are stored (JetStream) rather than delivered live.
    pub fn is_durable(&self) -> bool {
        !self.0.starts_with("_INBOX")
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

    proptest! {
        #[test]
        fn publishable_reads_ascii_as_it_reads_chars(subject in "[a-zA-Z0-9_.*> \t\x0b\x0c\x00\x7f\u{a0}\u{85}\u{2028}é-]{0,12}") {
            let by_char = subject.split('.').all(|t| {
                !t.is_empty()
                    && !t.contains(['*', '>'])
                    && !t.chars().any(|c| c.is_whitespace() || c.is_control())
            });
            prop_assert_eq!(publishable(&subject), by_char, "{:?}", subject);
        }

        #[test]
        fn replies_are_allowed_as_inboxes_are_checked(reply in "(_INBOX_acme|_INBOX_acm|_INBOX_acmex|_INBOX|_R_|x)[._]{0,2}[a-z.]{0,4}", shared in any::<bool>()) {
            let rule = if shared { Inboxes::Shared } else { Inboxes::Tenant };
            let acme = t("acme");
            let in_place = publishable(&reply) && rule.allows(&reply, &acme);
            let checked = rule.check_inbox(&reply, &acme, "reply subject").is_ok();
            prop_assert_eq!(in_place, checked, "{:?}", reply);
        }
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
        for inboxes in [Inboxes::Shared, Inboxes::Tenant] {
            let parse = |s: &str| CallbackSubject::parse(s, &acme, inboxes);
            assert!(parse("orchestrator.acme.callbacks").unwrap().is_durable());
            assert!(!parse("_INBOX_acme.abc.def").unwrap().is_durable());
            for bad in [
                "orchestrator.globex.callbacks",
                "orchestrator.acme.actions",
                "dlq.echo.acme",
                "anything",
                "_INBOX.>",
                "_INBOX.",
                "_INBOX_acme.",
                "_INBOX_globex.abc",
                "_INBOX_acmex.abc",
                "_INBOX_acme.*",
                "_R_.abc.def",
                "$KV.sessions.globex.s1",
                "$JS.API.STREAM.DELETE.ECHO",
            ] {
                let err = parse(bad).unwrap_err();
                let malformed = bad.contains(['*', '>']) || bad.ends_with('.');
                let code = if malformed {
                    ErrorCode::InvalidAction
                } else {
                    ErrorCode::Forbidden
                };
                assert_eq!(err.code, code, "{bad}");
            }
        }
        let shared = CallbackSubject::parse("_INBOX.abc.def", &acme, Inboxes::Shared).unwrap();
        assert!(!shared.is_durable());
        assert!(CallbackSubject::parse("_INBOX.abc.def", &acme, Inboxes::Tenant).is_err());
    }

    #[test]
    fn rpc_replies_stay_inside_the_tenant() {
        let acme = t("acme");
        for inboxes in [Inboxes::Shared, Inboxes::Tenant] {
            for good in ["_INBOX_acme.x.1", "_R_.Bz6h.idOk"] {
                assert!(inboxes.check_reply(good, Some(&acme)).is_ok(), "{good}");
            }
            for bad in [
                "$KV.sessions.globex.s1",
                "$KV.api_keys.abc",
                "$JS.API.STREAM.DELETE.ECHO",
                "dlq.echo.acme",
                "echo.globex.callbacks",
                "orchestrator.globex.events.session.s1",
                "_INBOX_globex.x.1",
                "_R_.>",
                "_INBOX_acme.>",
            ] {
                assert!(inboxes.check_reply(bad, Some(&acme)).is_err(), "{bad}");
            }
        }
        assert!(
            Inboxes::Shared
                .check_reply("_INBOX.x.1", Some(&acme))
                .is_ok()
        );
        assert!(
            Inboxes::Tenant
                .check_reply("_INBOX.x.1", Some(&acme))
                .is_err()
        );
        assert!(Inboxes::Shared.check_reply("_INBOX.x.1", None).is_ok());
        assert!(Inboxes::Tenant.check_reply("_INBOX.x.1", None).is_err());
        assert!(Inboxes::Tenant.check_reply("_INBOX_acme.x", None).is_err());
        assert!(Inboxes::Tenant.check_reply("_R_.a.b", None).is_ok());
        assert!(tenant_inbox(&acme).as_str().starts_with("_INBOX_acme."));
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
            assert!(
                CallbackSubject::parse(bad, &acme, Inboxes::Shared).is_err(),
                "{bad:?}"
            );
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
            if let Ok(cb) = CallbackSubject::parse(&subject, &tenant, Inboxes::Shared) {
                prop_assert!(!cb.as_str().contains(['*', '>']));
                if cb.is_durable() {
                    let parsed = ActionSubject::parse(cb.as_str()).unwrap();
                    prop_assert_eq!(parsed.tenant, tenant);
                }
            }
        }
    }
}
