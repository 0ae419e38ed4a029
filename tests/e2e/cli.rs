//! The `domain-actions` command against a real server and an in-process echo worker.

use std::process::Output;

use serde_json::{Value, json};
use shared::{Action, PublishError, Publisher, TenantId};

use crate::harness::*;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout as JSON, after checking the command exited with `code`.
fn printed_json(output: &Output, code: i32) -> Value {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", stdout(output)))
}

/// Runs `args` and expects exit 0 and the success result of `echo.ping` with `data` printed.
async fn prints_ping_result(env: &Env, args: &str, data: Value) {
    let result = printed_json(&cli(&env.url(), args).await, 0);
    assert_eq!(result["action_type"], "echo.ping.result", "{result}");
    assert_eq!(result["data"]["status"], "success", "{result}");
    assert_eq!(result["data"]["result"], data, "{result}");
}

/// Runs `args`, expects it to fail with `needle` on stderr, and returns its exit code.
async fn fails_saying(env: &Env, args: &str, needle: &str) -> Option<i32> {
    let output = cli(&env.url(), args).await;
    assert!(!output.status.success(), "{args}: exited {}", output.status);
    assert!(
        stderr(&output).contains(needle),
        "{args}: stderr: {}",
        stderr(&output)
    );
    output.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_prints_the_result() {
    let env = Env::start().await;
    prints_ping_result(
        &env,
        r#"request echo.ping --tenant acme --data {"x":1}"#,
        json!({"x": 1}),
    )
    .await;
    env.assert_stored(ACTIONS, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_waits_for_the_result() {
    let env = Env::start().await;
    prints_ping_result(
        &env,
        r#"publish echo.ping --tenant acme --data {"durable":true}"#,
        json!({"durable": true}),
    )
    .await;
    env.assert_stored(ACTIONS, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_failure_exits_1_with_the_code() {
    let env = Env::start().await;
    let output = cli(&env.url(), "request echo.fail --tenant acme").await;
    assert_error(&printed_json(&output, 1), "handler_error");
    assert!(
        stderr(&output).contains("handler_error"),
        "stderr: {}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2() {
    let env = Env::start().await;
    let bad_tenant = fails_saying(&env, "request echo.ping --tenant a.b", "a.b").await;
    assert_eq!(bad_tenant, Some(2));
    let bad_data = fails_saying(&env, "request echo.ping --tenant acme --data {nope", "JSON").await;
    assert_eq!(bad_data, Some(2));
    env.assert_stored(ACTIONS, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_no_wait_prints_where_it_is_stored() {
    let env = Env::start().await;
    let stored = printed_json(
        &cli(&env.url(), "publish echo.ping --tenant acme --no-wait").await,
        0,
    );
    assert_eq!(stored["stream"], ECHO, "{stored}");
    assert_eq!(stored["duplicate"], false, "{stored}");
    let sequence = stored["sequence"].as_u64().expect("sequence");
    let action_id = stored["action_id"].as_str().expect("action_id");
    let message = env.stored_action(sequence).await;
    assert_eq!(message.subject.as_str(), ACTIONS);
    let body: Value = serde_json::from_slice(&message.payload).expect("stored body");
    assert_eq!(body["action_id"], action_id, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_body_is_refused_with_payload_too_large() {
    let env = Env::start().await;
    // A JSON string of about 1.1 MB: more than the server's 1 MiB max payload.
    let data = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(data.path(), format!("\"{}\"", "x".repeat(1_100_000))).expect("write data");
    for command in ["publish", "request"] {
        let args = format!(
            "{command} echo.ping --tenant acme --data @{}",
            data.path().display()
        );
        fails_saying(&env, &args, "payload_too_large").await;
    }
    env.assert_stored(ACTIONS, 0).await;
}

/// `bench` runs both sides in alternating rounds on its own fresh server and writes one
/// JSON row per scenario (no figure is judged: these machines are too noisy for that).
#[tokio::test(flavor = "multi_thread")]
async fn bench_writes_both_sides_of_each_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("bench.json");
    let args = format!(
        "bench --only rpc --seconds 0.4 --warmup 0.2 --rounds 2 --json {}",
        json.display()
    );
    // Without `--external` bench starts its own server: the URL given here is never dialled.
    let output = cli("nats://127.0.0.1:1", &args).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let rows: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&json).expect("bench wrote --json")).expect("JSON");
    let scenarios: Vec<&str> = rows.iter().filter_map(|r| r["scenario"].as_str()).collect();
    assert_eq!(
        scenarios,
        [
            "rpc, 1 in flight",
            "rpc, 64 in flight",
            "rpc against the limit (static-reply request/reply), 64 in flight"
        ],
        "{rows:?}"
    );
    for row in &rows {
        for side in ["ours_per_s", "baseline_per_s", "ratio"] {
            assert!(row[side].as_f64().is_some_and(|v| v > 0.0), "{side}: {row}");
        }
        for key in ["p50_us", "p99_us", "baseline_p50_us", "baseline_p99_us"] {
            assert!(row[key].as_u64().is_some(), "{key}: {row}");
        }
    }
    assert!(
        stdout(&output).contains("alternating rounds"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_ls_lists_the_streams() {
    let env = Env::start().await;
    let output = cli(&env.url(), "streams ls").await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let listed: Vec<String> = stdout(&output)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    for stream in [ECHO, "DLQ"] {
        assert!(
            listed.iter().any(|s| s == stream),
            "{stream} not listed:\n{}",
            stdout(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publisher_refuses_an_oversize_action() {
    let env = Env::start().await;
    let tenant = TenantId::new("acme").expect("tenant");
    let action = Action::new(
        tenant,
        echo::actions::Ping::new(&json!("x".repeat(1_100_000))),
    );
    let refused = Publisher::new(env.client.clone()).enqueue(&action).await;
    match refused {
        Err(PublishError::PayloadTooLarge { size, max }) => {
            assert_eq!(max, env.client.max_payload());
            assert!(size > max, "{size} > {max}");
        }
        other => panic!("expected payload_too_large, got {other:?}"),
    }
    env.assert_stored(ACTIONS, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_create_prints_only_a_key_and_refuses_a_bad_tenant() {
    let env = Env::server_only().await;
    let output = cli(&env.url(), "keys create --tenant acme --label ci").await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let printed = stdout(&output);
    let key = printed.trim_end();
    assert!(
        key.starts_with("da_") && !key.contains(char::is_whitespace),
        "stdout: {printed}"
    );
    let keys = platform::http::ApiKeys::open(&env.js, 1)
        .await
        .expect("api_keys");
    let tenant = keys.verify(key).await.expect("verify");
    assert_eq!(tenant.as_ref().map(TenantId::as_str), Some("acme"));

    let code = fails_saying(&env, "keys create --tenant bad.tenant", "invalid tenant").await;
    assert_eq!(code, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_set_show_and_list_round_trip() {
    let env = Env::server_only().await;
    let url = env.url();
    let set = "tenants set acme --requests-per-minute 3 --models a,b --tier free";
    let printed = printed_json(&cli(&url, set).await, 0);
    assert_eq!(printed["record"]["requests_per_minute"], 3, "{printed}");
    // Only what is given changes; 0 puts a limit back to the default.
    let set = "tenants set acme --concurrent 2 --requests-per-minute 0";
    printed_json(&cli(&url, set).await, 0);
    let shown = printed_json(&cli(&url, "tenants show acme").await, 0);
    assert_eq!(
        shown["record"],
        json!({"concurrent": 2, "models": ["a", "b"], "tier": "free"}),
        "{shown}"
    );
    assert_eq!(shown["limits"]["requests_per_minute"], 0, "{shown}");
    assert_eq!(shown["usage"]["tokens_today"], 0, "{shown}");
    assert_eq!(shown["usage"]["stored_bytes"], 0, "{shown}");

    let defaults = cli_with(
        &url,
        "tenants show globex",
        &[("DA_TENANT_CONCURRENT", "9")],
    )
    .await;
    let defaults = printed_json(&defaults, 0);
    assert_eq!(defaults["record"], Value::Null, "{defaults}");
    assert_eq!(defaults["limits"]["concurrent"], 9, "{defaults}");

    let listed = cli(&url, "tenants list").await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("acme"), "{}", stdout(&listed));

    let code = fails_saying(
        &env,
        "tenants set bad.tenant --concurrent 1",
        "invalid tenant",
    )
    .await;
    assert_eq!(code, Some(2));
    let code = fails_saying(&env, "tenants set acme", "nothing to set").await;
    assert_eq!(code, Some(2));
    let code = fails_saying(&env, "tenants set acme --concurrent lots", "lots").await;
    assert_eq!(code, Some(2));
}

/// A server with the embedding, query and ingestion services in-process (their data in the
/// returned temp dir): what `domain-actions ingest` needs running.
async fn ingestion_env() -> (Env, tempfile::TempDir) {
    let data = tempfile::TempDir::new().expect("temp dir");
    let vars = std::collections::HashMap::from([(
        "DA_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    let settings = shared::Settings::from_vars(&vars).expect("settings");
    let mut env = Env::server_only().await;
    let embedding = embedding::EmbeddingConfig::from_settings(&settings)
        .expect("embedding settings")
        .build()
        .await
        .expect("embedding model");
    let query = query::QueryConfig::from_settings(&settings)
        .expect("query settings")
        .build()
        .await
        .expect("query store");
    let ingestion = ingestion::IngestionConfig::from_settings(&settings)
        .expect("ingestion settings")
        .build(&env.js)
        .await
        .expect("ingestion buckets and tokenizer");
    let config = testkit::quick_config;
    env.add_worker(embedding::dispatcher(embedding), config())
        .await;
    env.add_worker(query::dispatcher(query), config()).await;
    env.add_worker(ingestion::dispatcher(ingestion), config())
        .await;
    (env, data)
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_indexes_documents_and_skips_unsupported_files() {
    let (env, _data) = ingestion_env().await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.path().join(name), bytes).expect("write a file to ingest")
    };
    write(
        "cats.txt",
        b"Cats sleep between twelve and sixteen hours a day. They eat meat, mostly fish.",
    );
    write(
        "rockets.md",
        b"# Rockets\n\nRockets burn liquid hydrogen and oxygen to reach orbit.\n",
    );
    write(
        "photo.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0",
    );

    let args = format!(
        "ingest {} --collection notes --tenant acme",
        dir.path().display()
    );
    let output = cli(&env.url(), &args).await;
    let table = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {table}\nstderr: {}",
        stderr(&output)
    );
    let row = |file: &str| {
        table
            .lines()
            .find(|line| line.contains(file))
            .unwrap_or_else(|| panic!("{file} is not in the summary:\n{table}"))
            .to_owned()
    };
    assert!(row("cats.txt").contains("completed"), "{table}");
    assert!(row("rockets.md").contains("completed"), "{table}");
    assert!(row("photo.png").contains("skipped"), "{table}");
    assert!(table.contains("2 documents"), "{table}");

    // The chunks are searchable, and say which file they came from.
    let body = tenant_action_body(
        "acme",
        &new_id(),
        "query.search",
        json!({"query": "What do rockets burn?", "collections": ["notes"], "top_k": 1}),
    );
    let (_, result) = env
        .request(
            "query.acme.rpc",
            headers(&[("action_type", "query.search")]),
            &body,
        )
        .await;
    let hit = &result["data"]["result"]["hits"][0];
    assert!(
        hit["metadata"]["path"]
            .as_str()
            .is_some_and(|path| path.ends_with("rockets.md")),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_refuses_bad_paths_and_flags_with_exit_2() {
    let env = Env::server_only().await;
    let missing = "ingest /no/such/path --collection notes --tenant acme";
    assert_eq!(fails_saying(&env, missing, "/no/such/path").await, Some(2));

    let empty = tempfile::TempDir::new().expect("temp dir");
    let dir = empty.path().display();
    let nothing = format!("ingest {dir} --collection notes --tenant acme");
    assert_eq!(
        fails_saying(&env, &nothing, "no files matched").await,
        Some(2)
    );
    let bad_glob = format!("ingest {dir} --collection notes --tenant acme --include a[");
    assert_eq!(fails_saying(&env, &bad_glob, "--include").await, Some(2));
    let bad_tenant = format!("ingest {dir} --collection notes --tenant a.b");
    assert_eq!(fails_saying(&env, &bad_tenant, "a.b").await, Some(2));
}
