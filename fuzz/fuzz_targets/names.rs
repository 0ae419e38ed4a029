//! Fuzzes name and subject validation: `Domain`, `TenantId`, `ActionType`, action
//! subjects, callback subjects and event subjects. Whatever is accepted must keep its
//! promise (one token, no wildcard, inside its tenant, publishable).
#![no_main]

mod check;

use libfuzzer_sys::fuzz_target;
use shared::action::{ActionType, Domain, TenantId};
use shared::subject::{self, ActionSubject, CallbackSubject, Inboxes};

fuzz_target!(|input: &str| {
    if let Ok(d) = Domain::new(input) {
        check::domain(&d);
    }
    if let Ok(t) = TenantId::new(input) {
        check::tenant(&t);
    }
    if let Ok(t) = ActionType::new(input) {
        check::action_type(&t);
    }
    if let Ok(s) = ActionSubject::parse(input) {
        check::action_subject(&s, input);
    }
    let acme = TenantId::new("acme").expect("a valid tenant");
    for inboxes in [Inboxes::Shared, Inboxes::Tenant] {
        if let Ok(c) = CallbackSubject::parse(input, &acme, inboxes) {
            check::callback(&c, &acme);
        }
        if inboxes.check_reply(input, Some(&acme)).is_ok() {
            assert!(check::publishable(input), "{input:?}");
        }
    }
    if let Ok(c) = CallbackSubject::inbox(input.to_owned()) {
        check::callback(&c, &acme);
    }
    let echo = Domain::new("echo").expect("a valid domain");
    if let Ok(events) = subject::events(&echo, &acme, input) {
        assert!(check::publishable(&events), "{events:?}");
        assert!(events.starts_with("echo.acme.events."), "{events:?}");
    }
});
