//! Sending a durable result again while its stream cannot store it for a moment.
//!
//! On a cluster, a stream whose leader died has no leader until its peers elect one (the
//! nats-server raft election timeout, 4–9 s): meanwhile a publish to its subjects gets "no
//! responders" at once (only a leader listens on them), and one sent just before the leader
//! died gets no acknowledgement. By then the handler's work is done, and a result carries a
//! `Nats-Msg-Id`, so sending it again is safe: the stream stores it once. So the worker sends
//! it again for a while rather than naking the action straight away. A nak would run the
//! handler again and use up deliveries: the 1 s and 5 s backoffs pass within one election,
//! and the next one waits 30 s, so results came half a minute late after a leader kill
//! (`tests/e2e/cluster.rs`).

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::action::{Action, ActionResult};
use crate::publish::{PublishError, Publisher};
use crate::subject::CallbackSubject;

/// The pause before the first resend; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between two sends.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Whether a failed send of a result is worth repeating: anything but a result too large.
fn worth_resending(err: &PublishError) -> bool {
    !matches!(err, PublishError::PayloadTooLarge { .. })
}

/// After sending `result` to `to` failed with `err`, sends it again (same id) after a growing
/// pause while that fails too, until `within` has passed; then returns the last error (at once
/// if `err` is not worth resending). Only called on a failure, so a result stored at the
/// first try costs no timer.
pub(crate) async fn send_result_again<R: Serialize>(
    publisher: &Publisher,
    to: &CallbackSubject,
    result: &Action<ActionResult<R>>,
    chain_correlation: &str,
    mut err: PublishError,
    within: Duration,
) -> Result<(), PublishError> {
    let give_up = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    while worth_resending(&err) && Instant::now() + pause <= give_up {
        tracing::debug!(%err, %to, ?pause, "result not stored; sending it again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
        err = match publisher.send_result(to, result, chain_correlation).await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::{self, stream};

    use super::*;
    use crate::action::{ActionType, ResultAddress};
    use crate::{Domain, TenantId};
    use testkit::TestServer;

    /// A result for `echo.acme.callbacks`, and where it goes.
    fn result() -> (CallbackSubject, Action<ActionResult<u32>>, String) {
        let tenant = TenantId::new("acme").expect("tenant");
        let to = CallbackSubject::callbacks(&Domain::new("echo").expect("domain"), &tenant);
        let action_type = ActionType::new("echo.ping").expect("type");
        let request = Action::of_type(action_type, tenant, ());
        let address = ResultAddress::from(&request);
        let result = address.result(ActionResult::success(7, 1));
        (to, result, address.chain_correlation)
    }

    #[tokio::test]
    async fn a_result_is_stored_once_its_stream_answers_again() {
        let server = TestServer::start().await;
        let publisher = Publisher::new(server.client().await);
        let (to, result, chain) = result();
        // No stream stores the subject yet: every send gets "no responders" at once, as on
        // a cluster whose stream is electing a leader.
        let first = publisher.send_result(&to, &result, &chain).await;
        let Err(err) = first else {
            panic!("stored without a stream: {first:?}")
        };
        let sending = tokio::spawn({
            let (publisher, to) = (publisher.clone(), to.clone());
            async move {
                let within = Duration::from_secs(20);
                send_result_again(&publisher, &to, &result, &chain, err, within).await
            }
        });
        tokio::time::sleep(Duration::from_millis(600)).await;
        let js = jetstream::new(server.client().await);
        let mut stream = js
            .create_stream(stream::Config {
                name: "ECHO".to_owned(),
                subjects: vec![to.as_str().to_owned()],
                ..Default::default()
            })
            .await
            .expect("stream");
        sending.await.expect("task").expect("stored");
        let stored = stream.info().await.expect("info").state.messages;
        assert_eq!(stored, 1);
    }

    #[tokio::test]
    async fn a_result_no_stream_stores_fails_after_the_given_time() {
        let server = TestServer::start().await;
        let publisher = Publisher::new(server.client().await);
        let (to, result, chain) = result();
        let first = PublishError::NoStream(to.as_str().to_owned());
        let within = Duration::from_millis(300);
        let sent = send_result_again(&publisher, &to, &result, &chain, first, within).await;
        assert!(matches!(sent, Err(PublishError::NoStream(_))), "{sent:?}");
    }
}
