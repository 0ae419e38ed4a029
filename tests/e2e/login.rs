//! Logging in the way the `nats` CLI does, against real servers that ask for each kind of
//! login: user and password (in `NATS_URL` or `NATS_USER`/`NATS_PASSWORD`), a token (in
//! `NATS_URL` or `NATS_TOKEN`), an nkey seed file (`NATS_NKEY`). A failed login exits 1 and
//! says which login was tried, never the secret.

use std::path::Path;

use platform::nats_server::{LocalServer, ServerOptions};
use tempfile::TempDir;

use crate::harness::*;

/// A JetStream server whose `authorization` block is `authorization`.
async fn server_asking_for(dir: &Path, authorization: &str) -> LocalServer {
    let config = dir.join("auth.conf");
    std::fs::write(
        &config,
        format!("jetstream {{}}\nauthorization {{ {authorization} }}\n"),
    )
    .expect("write config");
    let options = ServerOptions {
        config,
        ..ServerOptions::single_node(dir, None)
    };
    LocalServer::start(options).await.expect("nats-server")
}

/// `domain-actions streams ls` against `url` with `env`: its exit code and output.
async fn streams_ls(url: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = cli_with(url, "streams ls", env).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn with_userinfo(url: &str, userinfo: &str) -> String {
    url.replacen("nats://", &format!("nats://{userinfo}@"), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn user_and_password_from_the_url_or_the_environment() {
    let dir = TempDir::new().expect("temp dir");
    let server = server_asking_for(dir.path(), "user: svc, password: \"p@ss w\"").await;
    let url = server.url();
    let (code, out) = streams_ls(&with_userinfo(url, "svc:p%40ss%20w"), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = streams_ls(url, &[("NATS_USER", "svc"), ("NATS_PASSWORD", "p@ss w")]).await;
    assert_eq!(code, Some(0), "{out}");

    let (code, out) = streams_ls(&with_userinfo(url, "svc:wrong-secret"), &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("user \"svc\" from NATS_URL"), "{out}");
    assert!(
        !out.contains("wrong-secret"),
        "the password is printed: {out}"
    );
    let (code, out) = streams_ls(url, &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no credentials"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_the_url_or_the_environment() {
    let dir = TempDir::new().expect("temp dir");
    let server = server_asking_for(dir.path(), "token: s3cret-token").await;
    let url = server.url();
    let (code, out) = streams_ls(&with_userinfo(url, "s3cret-token"), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = streams_ls(url, &[("NATS_TOKEN", "s3cret-token")]).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = streams_ls(url, &[("NATS_TOKEN", "guessed-token")]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("a token from NATS_TOKEN"), "{out}");
    assert!(
        !out.contains("guessed-token"),
        "the token is printed: {out}"
    );
    let (code, out) = streams_ls(url, &[("NATS_TOKEN", "a"), ("NATS_USER", "b")]).await;
    assert_eq!(code, Some(2), "two logins at once are a usage error: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_nkey_seed_file() {
    let dir = TempDir::new().expect("temp dir");
    let user = nkeys::KeyPair::new_user();
    let server = server_asking_for(
        dir.path(),
        &format!("users: [ {{ nkey: {} }} ]", user.public_key()),
    )
    .await;
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, user.seed().expect("seed")).expect("write seed");
    let seed_path = seed_file.to_string_lossy().into_owned();
    let (code, out) = streams_ls(server.url(), &[("NATS_NKEY", &seed_path)]).await;
    assert_eq!(code, Some(0), "{out}");

    let other = nkeys::KeyPair::new_user();
    let other_file = dir.path().join("other.nk");
    std::fs::write(&other_file, other.seed().expect("seed")).expect("write seed");
    let other_path = other_file.to_string_lossy().into_owned();
    let (code, out) = streams_ls(server.url(), &[("NATS_NKEY", &other_path)]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("nkey seed file"), "{out}");
}
