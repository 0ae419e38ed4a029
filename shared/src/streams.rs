//! Stream and consumer definitions, applied idempotently at start.
//!
//! The definitions live as JSON under `nats/` in the shape `nats stream add --config` and
//! `nats consumer add --config` accept, so an operator can read, diff and apply them with
//! the `nats` CLI too. They are compiled into the binary, so a service started anywhere
//! applies exactly the definitions it was built with.
//!
//! The framework knows no application domain. It defines its own streams (`DLQ`,
//! `ADVISORIES`: `nats/streams/`) and one template for every domain (`nats/template/`),
//! with `{domain}` and `{STREAM}` filled in:
//! - the work queue `<DOMAIN>` on `<domain>.*.actions` and `<domain>.*.callbacks`: a
//!   handled message is removed, and a full stream, or a tenant with a full backlog
//!   (`max_msgs_per_subject`), refuses new messages instead of evicting any;
//! - `<DOMAIN>_HISTORY`, where `<DOMAIN>` republishes every action (as
//!   `history.<domain>.<tenant>.actions`) so `replay` can read what was handled;
//! - a durable consumer per tenant with work, `<domain>-actions-<tenant>`, made from
//!   `actions.json` when the tenant shows up (`{tenant}` filled in; see
//!   `crate::worker` for why one per tenant), the shared `<domain>-callbacks`, and
//!   `<domain>-max-deliveries` on `ADVISORIES`.
//!
//! A domain that needs other limits overrides its stream or consumers with files of those
//! names in a directory laid out like `nats/` ([`Definitions::from_dir`], `streams apply
//! --dir`), or in code ([`Definitions::with_stream`]). A new service is a new crate: nothing here changes.
//!
//! Applying is create-or-update: running it twice changes nothing, and a changed file
//! updates the live stream or consumer (the server refuses changes it cannot make, such as
//! renaming subjects of a consumer in flight, with an error naming the field).

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::action::Domain;

/// The framework's own streams, compiled in from `nats/streams/<NAME>.json`.
const STREAMS: &[(&str, &str)] = &[
    ("DLQ.json", include_str!("../../nats/streams/DLQ.json")),
    (
        "ADVISORIES.json",
        include_str!("../../nats/streams/ADVISORIES.json"),
    ),
];

/// The per-domain template, compiled in from `nats/template/`.
const TEMPLATE: Template = Template {
    stream: include_str!("../../nats/template/stream.json"),
    actions: include_str!("../../nats/template/actions.json"),
    callbacks: include_str!("../../nats/template/callbacks.json"),
    max_deliveries: include_str!("../../nats/template/max-deliveries.json"),
    history: include_str!("../../nats/template/history.json"),
};

/// The definitions every domain gets, with `{domain}` and `{STREAM}` to fill in.
#[derive(Debug, Clone)]
struct Template<S = &'static str> {
    stream: S,
    actions: S,
    callbacks: S,
    max_deliveries: S,
    history: S,
}

/// The stream holding every dead letter.
pub const DLQ_STREAM: &str = "DLQ";
/// The stream keeping the server's max-deliveries advisories.
pub const ADVISORIES_STREAM: &str = "ADVISORIES";

/// Why definitions could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A definition file is not valid JSON of the right shape.
    #[error("definition {file}: {source}")]
    Parse {
        /// The file.
        file: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A definitions directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server refused a definition.
    #[error("applying {what}: {message}")]
    Apply {
        /// Which stream or consumer.
        what: String,
        /// The server's answer.
        message: String,
    },
}

/// A stream and the durable consumers defined on it.
#[derive(Debug, Clone)]
pub struct StreamDefinition {
    /// The stream, as `nats stream add --config` takes it.
    pub stream: stream::Config,
    /// Its consumers, as `nats consumer add --config` takes them.
    pub consumers: Vec<consumer::pull::Config>,
    /// Consumers made for each tenant that has work, with `{tenant}` still to fill in
    /// ([`Definitions::tenant_consumer`]); not created by [`Definitions::apply`].
    pub per_tenant: Vec<consumer::pull::Config>,
}

impl StreamDefinition {
    /// A stream with no consumers.
    pub fn new(stream: stream::Config) -> Self {
        Self {
            stream,
            consumers: Vec::new(),
            per_tenant: Vec::new(),
        }
    }
}

/// A set of stream definitions: the framework's streams, any per-domain overrides, and the
/// template every other domain is made from.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The streams, in the order they are applied.
    pub streams: Vec<StreamDefinition>,
    template: Template<String>,
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, json: &str) -> Result<T, StreamsError> {
    serde_json::from_str(json).map_err(|source| StreamsError::Parse {
        file: file.to_owned(),
        source,
    })
}

impl Template<String> {
    /// The template compiled in from `nats/template/`.
    fn built_in() -> Self {
        Template {
            stream: TEMPLATE.stream.to_owned(),
            actions: TEMPLATE.actions.to_owned(),
            callbacks: TEMPLATE.callbacks.to_owned(),
            max_deliveries: TEMPLATE.max_deliveries.to_owned(),
            history: TEMPLATE.history.to_owned(),
        }
    }

    /// `file` of the template with `domain` filled in, parsed.
    fn fill<T: serde::de::DeserializeOwned>(
        file: &str,
        json: &str,
        domain: &Domain,
    ) -> Result<T, StreamsError> {
        let json = json
            .replace("{domain}", domain.as_str())
            .replace("{STREAM}", &domain.stream_name());
        parse(&format!("template/{file} for {domain}"), &json)
    }
}

impl Definitions {
    /// The definitions compiled into this binary from `nats/`: the framework's streams and
    /// the per-domain template.
    pub fn built_in() -> Result<Self, StreamsError> {
        let mut streams = Vec::new();
        for (file, json) in STREAMS {
            streams.push(StreamDefinition::new(parse(file, json)?));
        }
        Ok(Self {
            streams,
            template: Template::built_in(),
        })
    }

    /// Reads definitions from a directory laid out like `nats/` (`streams/*.json`,
    /// `consumers/<STREAM>/*.json`, `template/*.json`), for operators who edit them without
    /// rebuilding. A stream or consumer file named as a domain's own overrides the
    /// template for that domain; a missing `template/` file is the built-in one.
    pub fn from_dir(dir: &Path) -> Result<Self, StreamsError> {
        let read_dir = |path: &Path| -> Result<Vec<std::path::PathBuf>, StreamsError> {
            let err = |source| StreamsError::Read {
                path: path.display().to_string(),
                source,
            };
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(err)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .collect();
            files.sort();
            Ok(files)
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| StreamsError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let mut definitions = Self {
            streams: Vec::new(),
            template: Template::built_in(),
        };
        for file in read_dir(&dir.join("streams"))? {
            if file.extension().is_some_and(|e| e == "json") {
                let stream = parse(&file.display().to_string(), &read(&file)?)?;
                definitions = definitions.with_stream(StreamDefinition::new(stream));
            }
        }
        let consumers_dir = dir.join("consumers");
        if consumers_dir.is_dir() {
            for stream_dir in read_dir(&consumers_dir)? {
                let stream = stream_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                for file in read_dir(&stream_dir)? {
                    if file.extension().is_some_and(|e| e == "json") {
                        let consumer = parse(&file.display().to_string(), &read(&file)?)?;
                        definitions.add_consumer(&stream, consumer);
                    }
                }
            }
        }
        let template_dir = dir.join("template");
        let template = &mut definitions.template;
        for (name, text) in [
            ("stream.json", &mut template.stream),
            ("actions.json", &mut template.actions),
            ("callbacks.json", &mut template.callbacks),
            ("max-deliveries.json", &mut template.max_deliveries),
            ("history.json", &mut template.history),
        ] {
            let file = template_dir.join(name);
            if file.is_file() {
                *text = read(&file)?;
            }
        }
        Ok(definitions)
    }

    /// These definitions with `definition` in place of the stream of the same name (a
    /// domain's override in code, or one more stream of the application's own).
    pub fn with_stream(mut self, definition: StreamDefinition) -> Self {
        self.streams
            .retain(|d| d.stream.name != definition.stream.name);
        self.streams.push(definition);
        self
    }

    fn add_consumer(&mut self, stream: &str, consumer: consumer::pull::Config) {
        if let Some(def) = self.streams.iter_mut().find(|d| d.stream.name == stream) {
            def.consumers.retain(|c| durable(c) != durable(&consumer));
            def.consumers.push(consumer);
        }
    }

    /// What `domain`'s service needs: its stream and consumers (an override of that name,
    /// else the template's), the DLQ, and its max-deliveries advisory consumer. Any valid
    /// domain has them: the framework needs no list of domains.
    pub fn for_domain(&self, domain: &Domain) -> Result<Self, StreamsError> {
        self.for_domains(std::slice::from_ref(domain))
    }

    /// [`Definitions::for_domain`] of several domains at once (`streams apply`).
    pub fn for_domains(&self, domains: &[Domain]) -> Result<Self, StreamsError> {
        let template = &self.template;
        let mut streams: Vec<StreamDefinition> = Vec::new();
        let mut advisory_consumers = Vec::new();
        for domain in domains {
            let name = domain.stream_name();
            let own_or = |name: &str, file: &str, json: &str| -> Result<_, StreamsError> {
                Ok(match self.streams.iter().find(|d| d.stream.name == name) {
                    Some(overridden) => overridden.clone(),
                    None => StreamDefinition::new(Template::fill(file, json, domain)?),
                })
            };
            let mut own = own_or(&name, "stream.json", &template.stream)?;
            let callbacks: consumer::pull::Config =
                Template::fill("callbacks.json", &template.callbacks, domain)?;
            if !own
                .consumers
                .iter()
                .any(|c| durable(c) == durable(&callbacks))
            {
                own.consumers.push(callbacks);
            }
            if own.per_tenant.is_empty() {
                own.per_tenant
                    .push(Template::fill("actions.json", &template.actions, domain)?);
            }
            streams.push(own);
            let history = format!("{name}_HISTORY");
            streams.push(own_or(&history, "history.json", &template.history)?);
            let advisory = format!("{domain}-max-deliveries");
            let overridden = self
                .streams
                .iter()
                .filter(|d| d.stream.name == ADVISORIES_STREAM)
                .flat_map(|d| d.consumers.iter())
                .find(|c| durable(c) == advisory);
            advisory_consumers.push(match overridden {
                Some(consumer) => consumer.clone(),
                None => Template::fill("max-deliveries.json", &template.max_deliveries, domain)?,
            });
        }
        for def in &self.streams {
            if def.stream.name == DLQ_STREAM {
                streams.push(def.clone());
            } else if def.stream.name == ADVISORIES_STREAM {
                streams.push(StreamDefinition {
                    consumers: advisory_consumers.clone(),
                    ..StreamDefinition::new(def.stream.clone())
                });
            }
        }
        Ok(Self {
            streams,
            template: template.clone(),
        })
    }

    /// Sets the replica count of every stream (1 on one server, 3 on a cluster).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        for def in &mut self.streams {
            def.stream.num_replicas = replicas;
        }
        self
    }

    /// Overrides the ack wait and max deliveries of the per-tenant `<domain>-actions-…`
    /// and the `<domain>-callbacks` consumers (a worker setting; the files hold the
    /// defaults).
    pub fn with_delivery(
        mut self,
        domain: &Domain,
        ack_wait: Option<Duration>,
        max_deliver: Option<i64>,
    ) -> Self {
        let callbacks = format!("{domain}-callbacks");
        let stream = domain.stream_name();
        for def in &mut self.streams {
            let own = def.stream.name == stream;
            let per_tenant = def.per_tenant.iter_mut().filter(move |_| own);
            let callbacks = def.consumers.iter_mut().filter(|c| durable(c) == callbacks);
            for consumer in callbacks.chain(per_tenant) {
                if let Some(wait) = ack_wait {
                    consumer.ack_wait = wait;
                }
                if let Some(max) = max_deliver {
                    consumer.max_deliver = max;
                }
            }
        }
        self
    }

    /// The consumer definition with this durable name.
    pub fn consumer(&self, name: &str) -> Option<&consumer::pull::Config> {
        self.streams
            .iter()
            .flat_map(|d| d.consumers.iter())
            .find(|c| durable(c) == name)
    }

    /// The consumer of the actions stored under `<domain>.<tenant>.actions`
    /// (`<domain>-actions-<tenant>` as the template writes it), or `None` if `domain` is not
    /// among these definitions. `tenant` is the subject's token as stored: a valid
    /// [`crate::TenantId`] is used as it is; anything else (which the worker will only
    /// dead-letter) is named `invalid-<hash>` in the consumer's name, since a name may not
    /// hold every character a subject token may.
    pub fn tenant_consumer(&self, domain: &Domain, tenant: &str) -> Option<consumer::pull::Config> {
        let stream = domain.stream_name();
        let def = self.streams.iter().find(|d| d.stream.name == stream)?;
        let mut consumer = def.per_tenant.first()?.clone();
        let name = match crate::TenantId::new(tenant) {
            Ok(_) => tenant.to_owned(),
            Err(_) => {
                let hash = crate::action::derived_id(&[tenant.as_bytes()]).simple();
                format!("invalid-{}", &hash.to_string()[..16])
            }
        };
        let name = |text: &str| text.replace("{tenant}", &name);
        consumer.durable_name = consumer.durable_name.as_deref().map(name);
        consumer.name = consumer.name.as_deref().map(name);
        consumer.description = consumer.description.as_deref().map(name);
        consumer.filter_subject = consumer.filter_subject.replace("{tenant}", tenant);
        Some(consumer)
    }

    /// Creates or updates every stream and consumer. Safe to run at every start, from
    /// every instance at once.
    pub async fn apply(&self, js: &jetstream::Context) -> Result<(), StreamsError> {
        for def in &self.streams {
            let name = def.stream.name.clone();
            js.create_or_update_stream(def.stream.clone())
                .await
                .map_err(|err| StreamsError::Apply {
                    what: format!("stream {name}"),
                    message: err.to_string(),
                })?;
            for consumer in &def.consumers {
                js.create_consumer_on_stream(consumer.clone(), &name)
                    .await
                    .map_err(|err| StreamsError::Apply {
                        what: format!("consumer {name}/{}", durable(consumer)),
                        message: err.to_string(),
                    })?;
            }
        }
        Ok(())
    }
}

/// A consumer's durable name ("" if it has none).
pub fn durable(consumer: &consumer::pull::Config) -> &str {
    consumer.durable_name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str) -> Domain {
        Domain::new(name).unwrap()
    }

    #[test]
    fn any_domain_gets_its_stream_and_consumers_from_the_template() {
        let defs = Definitions::built_in().unwrap();
        let billing = defs.for_domain(&domain("billing")).unwrap();
        let names: Vec<_> = billing
            .streams
            .iter()
            .map(|d| d.stream.name.as_str())
            .collect();
        assert_eq!(names, ["BILLING", "BILLING_HISTORY", "DLQ", "ADVISORIES"]);
        let stream = &billing.streams[0].stream;
        assert_eq!(
            stream.subjects,
            vec!["billing.*.actions", "billing.*.callbacks"]
        );
        assert_eq!(stream.retention, stream::RetentionPolicy::WorkQueue);
        assert_eq!(stream.discard, stream::DiscardPolicy::New);
        assert!(stream.discard_new_per_subject);
        assert_eq!(stream.duplicate_window, Duration::from_secs(120));
        let republish = stream.republish.as_ref().unwrap();
        assert_eq!(
            republish.destination,
            "history.billing.{{wildcard(1)}}.actions"
        );
        assert_eq!(
            billing.streams[1].stream.subjects,
            vec!["history.billing.*.actions"]
        );
        assert!(
            billing.consumer("billing-actions").is_none(),
            "one per tenant"
        );
        let actions = billing.tenant_consumer(&domain("billing"), "acme").unwrap();
        assert_eq!(
            actions.durable_name.as_deref(),
            Some("billing-actions-acme")
        );
        assert_eq!(actions.filter_subject, "billing.acme.actions");
        assert_eq!(actions.ack_policy, consumer::AckPolicy::Explicit);
        assert!(actions.inactive_threshold > Duration::ZERO);
        assert_eq!(
            billing
                .consumer("billing-callbacks")
                .unwrap()
                .filter_subject,
            "billing.*.callbacks"
        );
        assert_eq!(
            billing
                .consumer("billing-max-deliveries")
                .unwrap()
                .filter_subject,
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BILLING.*"
        );
        let tuned =
            billing.with_delivery(&domain("billing"), Some(Duration::from_secs(2)), Some(2));
        let acme = tuned.tenant_consumer(&domain("billing"), "acme").unwrap();
        assert_eq!(acme.max_deliver, 2);
        assert_eq!(tuned.consumer("billing-callbacks").unwrap().max_deliver, 2);
    }

    #[test]
    fn several_domains_share_the_dlq_and_advisories() {
        let defs = Definitions::built_in().unwrap();
        let both = defs
            .for_domains(&[domain("echo"), domain("query")])
            .unwrap();
        let names: Vec<_> = both
            .streams
            .iter()
            .map(|d| d.stream.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "ECHO",
                "ECHO_HISTORY",
                "QUERY",
                "QUERY_HISTORY",
                "DLQ",
                "ADVISORIES"
            ]
        );
        assert!(both.consumer("echo-max-deliveries").is_some());
        assert!(both.consumer("query-max-deliveries").is_some());
    }

    #[test]
    fn a_stream_can_be_overridden_in_code_or_in_a_directory() {
        let defs = Definitions::built_in().unwrap();
        let mut big = defs.for_domain(&domain("video")).unwrap().streams.remove(0);
        big.stream.max_bytes = 10 << 30;
        let video = defs.with_stream(big).for_domain(&domain("video")).unwrap();
        assert_eq!(video.streams[0].stream.max_bytes, 10 << 30);
        assert!(
            video.consumer("video-callbacks").is_some()
                && video.tenant_consumer(&domain("video"), "acme").is_some(),
            "template consumers kept"
        );

        let dir = tempfile::tempdir().unwrap();
        let nats = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats");
        std::fs::create_dir_all(dir.path().join("streams")).unwrap();
        for file in ["DLQ.json", "ADVISORIES.json"] {
            std::fs::copy(
                nats.join("streams").join(file),
                dir.path().join("streams").join(file),
            )
            .unwrap();
        }
        let mut echo: serde_json::Value = serde_json::from_str(
            &TEMPLATE
                .stream
                .replace("{domain}", "echo")
                .replace("{STREAM}", "ECHO"),
        )
        .unwrap();
        echo["max_age"] = serde_json::json!(3_600_000_000_000u64);
        std::fs::write(dir.path().join("streams/ECHO.json"), echo.to_string()).unwrap();
        let from_dir = Definitions::from_dir(dir.path()).unwrap();
        let echo = from_dir.for_domain(&domain("echo")).unwrap();
        assert_eq!(echo.streams[0].stream.max_age, Duration::from_secs(3600));
        assert!(echo.tenant_consumer(&domain("echo"), "acme").is_some());
    }

    #[test]
    fn files_on_disk_are_the_built_in_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats");
        let from_disk = Definitions::from_dir(&dir).unwrap();
        let built_in = Definitions::built_in().unwrap();
        let echo = domain("echo");
        let names = |d: &Definitions| {
            let mut n: Vec<String> = d
                .for_domain(&echo)
                .unwrap()
                .streams
                .iter()
                .flat_map(|s| {
                    std::iter::once(s.stream.name.clone())
                        .chain(s.consumers.iter().map(|c| durable(c).to_owned()))
                })
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&from_disk), names(&built_in));
    }
}
