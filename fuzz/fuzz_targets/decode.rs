//! Fuzzes `shared::action::decode`: any subject, any values of the headers the contract
//! reads, any body. Decoding never panics; an accepted action keeps the subject's tenant,
//! a valid type and a callback inside its tenant; a rejection never keeps a callback it
//! could not check, and its result (or error result) can always be addressed and encoded,
//! headers included.
#![no_main]

mod check;

use arbitrary::Arbitrary;
use async_nats::HeaderMap;
use libfuzzer_sys::fuzz_target;
use shared::action::{ActionResult, ActionType, decode};
use shared::publish::encode_result;

/// A message as it arrives: the subject, the contract's headers, the body.
#[derive(Arbitrary, Debug)]
struct Message<'a> {
    subject: &'a str,
    action_type: Option<&'a str>,
    callback_subject: Option<&'a str>,
    msg_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    traceparent: Option<&'a str>,
    body: &'a [u8],
}

fuzz_target!(|m: Message<'_>| {
    let mut headers = HeaderMap::new();
    let pairs = [
        ("action_type", m.action_type),
        ("callback_subject", m.callback_subject),
        ("Nats-Msg-Id", m.msg_id),
        ("correlation_id", m.correlation_id),
        ("traceparent", m.traceparent),
    ];
    for (name, value) in pairs {
        // A value NATS could not carry (a line break) never arrives: skip it.
        if let Some(Ok(value)) = value.map(str::parse::<async_nats::HeaderValue>) {
            headers.insert(name, value);
        }
    }
    match decode(m.subject, Some(&headers), m.body, uuid::Uuid::nil()) {
        Ok(received) => {
            check::action_subject(&received.subject, m.subject);
            let action = &received.action;
            assert_eq!(action.tenant_id, received.subject.tenant);
            check::action_type(&action.action_type);
            if let Some(callback) = &received.callback {
                check::callback(callback, &received.subject.tenant);
            }
            let address = shared::action::ResultAddress::from(action);
            let result = address.result(ActionResult::success(serde_json::Value::Null, 0));
            encode_result(&result, &address.chain_correlation).expect("a result encodes");
        }
        Err(rejection) => {
            if let Some(domain) = &rejection.domain {
                check::domain(domain);
            }
            if let Some(tenant) = &rejection.tenant {
                check::tenant(tenant);
                if let Some(callback) = &rejection.callback {
                    check::callback(callback, tenant);
                }
            } else {
                assert!(rejection.callback.is_none());
            }
            if let Some(address) = &rejection.address {
                check::action_type(&address.request_type);
                assert!(ActionType::new(address.request_type.result_type().as_str()).is_ok());
                let result =
                    address.result::<()>(ActionResult::failure(rejection.error.clone(), 0));
                encode_result(&result, &address.chain_correlation)
                    .expect("an error result encodes");
            }
        }
    }
});
