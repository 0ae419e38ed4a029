//! Stream and consumer definitions, applied idempotently at start.
//!
//! The definitions live as JSON under `nats/` in the shape `nats stream add --config` and
//! `nats consumer add --config` accept, so an operator can read, diff and apply them with
//! the `nats` CLI too. They are compiled into the binary, so a service started anywhere
//! applies exactly the definitions it was built with.
//!
//! Applying is create-or-update: running it twice changes nothing, and a changed file
//! updates the live stream or consumer (the server refuses changes it cannot make, such as
//! renaming subjects of a consumer in flight, with an error naming the field).

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::action::Domain;

/// A stream definition compiled in from `nats/streams/<NAME>.json`.
macro_rules! stream_file {
    ($name:literal) => {
        (
            concat!($name, ".json"),
            include_str!(concat!("../../nats/streams/", $name, ".json")),
        )
    };
}

/// A consumer definition compiled in from `nats/consumers/<STREAM>/<name>.json`.
macro_rules! consumer_file {
    ($stream:literal, $name:literal) => {
        (
            $stream,
            concat!($name, ".json"),
            include_str!(concat!(
                "../../nats/consumers/",
                $stream,
                "/",
                $name,
                ".json"
            )),
        )
    };
}

/// The built-in stream definitions: `nats/streams/*.json`.
const STREAMS: &[(&str, &str)] = &[
    stream_file!("ECHO"),
    stream_file!("EMBEDDING"),
    stream_file!("QUERY"),
    stream_file!("INGESTION"),
    stream_file!("EXECUTION"),
    stream_file!("ORCHESTRATOR"),
    stream_file!("DLQ"),
    stream_file!("ADVISORIES"),
];

/// The built-in consumer definitions: `nats/consumers/<STREAM>/*.json`.
const CONSUMERS: &[(&str, &str, &str)] = &[
    consumer_file!("ECHO", "echo-actions"),
    consumer_file!("ECHO", "echo-callbacks"),
    consumer_file!("EMBEDDING", "embedding-actions"),
    consumer_file!("EMBEDDING", "embedding-callbacks"),
    consumer_file!("QUERY", "query-actions"),
    consumer_file!("QUERY", "query-callbacks"),
    consumer_file!("INGESTION", "ingestion-actions"),
    consumer_file!("INGESTION", "ingestion-callbacks"),
    consumer_file!("EXECUTION", "execution-actions"),
    consumer_file!("EXECUTION", "execution-callbacks"),
    consumer_file!("ORCHESTRATOR", "orchestrator-actions"),
    consumer_file!("ORCHESTRATOR", "orchestrator-callbacks"),
    consumer_file!("ADVISORIES", "echo-max-deliveries"),
    consumer_file!("ADVISORIES", "embedding-max-deliveries"),
    consumer_file!("ADVISORIES", "query-max-deliveries"),
    consumer_file!("ADVISORIES", "ingestion-max-deliveries"),
    consumer_file!("ADVISORIES", "execution-max-deliveries"),
    consumer_file!("ADVISORIES", "orchestrator-max-deliveries"),
];

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
    /// The domain has no stream definition.
    #[error("no stream definition for domain {0} (expected nats/streams/{1}.json)")]
    UnknownDomain(Domain, String),
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
}

/// A set of stream definitions.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The streams, in the order they are applied.
    pub streams: Vec<StreamDefinition>,
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, json: &str) -> Result<T, StreamsError> {
    serde_json::from_str(json).map_err(|source| StreamsError::Parse {
        file: file.to_owned(),
        source,
    })
}

impl Definitions {
    /// The definitions compiled into this binary from `nats/`.
    pub fn built_in() -> Result<Self, StreamsError> {
        let mut streams = Vec::new();
        for (file, json) in STREAMS {
            streams.push(StreamDefinition {
                stream: parse(file, json)?,
                consumers: Vec::new(),
            });
        }
        let mut definitions = Self { streams };
        for (stream, file, json) in CONSUMERS {
            definitions.add_consumer(stream, parse(file, json)?);
        }
        Ok(definitions)
    }

    /// Reads definitions from a directory laid out like `nats/` (`streams/*.json`,
    /// `consumers/<STREAM>/*.json`), for operators who edit them without rebuilding.
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
        };
        for file in read_dir(&dir.join("streams"))? {
            if file.extension().is_some_and(|e| e == "json") {
                let stream = parse(&file.display().to_string(), &read(&file)?)?;
                definitions.streams.push(StreamDefinition {
                    stream,
                    consumers: Vec::new(),
                });
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
        Ok(definitions)
    }

    fn add_consumer(&mut self, stream: &str, consumer: consumer::pull::Config) {
        if let Some(def) = self.streams.iter_mut().find(|d| d.stream.name == stream) {
            def.consumers.push(consumer);
        }
    }

    /// Only what `domain`'s service needs: its stream and consumers, the DLQ, and its
    /// max-deliveries advisory consumer.
    pub fn for_domain(&self, domain: &Domain) -> Result<Self, StreamsError> {
        let name = domain.stream_name();
        if !self.streams.iter().any(|d| d.stream.name == name) {
            return Err(StreamsError::UnknownDomain(domain.clone(), name));
        }
        let prefix = format!("{domain}-");
        let streams = self
            .streams
            .iter()
            .filter(|d| {
                [name.as_str(), DLQ_STREAM, ADVISORIES_STREAM].contains(&d.stream.name.as_str())
            })
            .map(|d| StreamDefinition {
                stream: d.stream.clone(),
                consumers: d
                    .consumers
                    .iter()
                    .filter(|c| {
                        d.stream.name != ADVISORIES_STREAM || durable(c).starts_with(&prefix)
                    })
                    .cloned()
                    .collect(),
            })
            .collect();
        Ok(Self { streams })
    }

    /// Sets the replica count of every stream (1 on one server, 3 on a cluster).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        for def in &mut self.streams {
            def.stream.num_replicas = replicas;
        }
        self
    }

    /// Overrides the ack wait and max deliveries of the `<domain>-actions` and
    /// `<domain>-callbacks` consumers (a worker setting; the files hold the defaults).
    pub fn with_delivery(
        mut self,
        domain: &Domain,
        ack_wait: Option<Duration>,
        max_deliver: Option<i64>,
    ) -> Self {
        let names = [format!("{domain}-actions"), format!("{domain}-callbacks")];
        for consumer in self.streams.iter_mut().flat_map(|d| d.consumers.iter_mut()) {
            if names.iter().any(|n| n == durable(consumer)) {
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

    #[test]
    fn built_in_definitions_parse_and_match_the_wire_contract() {
        let defs = Definitions::built_in().unwrap();
        let echo = defs
            .streams
            .iter()
            .find(|d| d.stream.name == "ECHO")
            .unwrap();
        assert_eq!(
            echo.stream.subjects,
            vec!["echo.*.actions", "echo.*.callbacks"]
        );
        assert_eq!(echo.stream.retention, stream::RetentionPolicy::Limits);
        assert_eq!(echo.stream.duplicate_window, Duration::from_secs(120));
        let actions = defs.consumer("echo-actions").unwrap();
        assert_eq!(actions.filter_subject, "echo.*.actions");
        assert_eq!(actions.ack_policy, consumer::AckPolicy::Explicit);
    }

    #[test]
    fn files_on_disk_are_the_built_in_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats");
        let from_disk = Definitions::from_dir(&dir).unwrap();
        let built_in = Definitions::built_in().unwrap();
        let names = |d: &Definitions| {
            let mut n: Vec<String> = d
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
        assert_eq!(
            names(&from_disk),
            names(&built_in),
            "every file under nats/ must be listed in streams.rs"
        );
    }

    #[test]
    fn for_domain_keeps_only_its_own() {
        let defs = Definitions::built_in().unwrap();
        let echo = defs.for_domain(&Domain::new("echo").unwrap()).unwrap();
        let names: Vec<_> = echo
            .streams
            .iter()
            .map(|d| d.stream.name.as_str())
            .collect();
        assert_eq!(names, ["ECHO", "DLQ", "ADVISORIES"]);
        assert!(defs.for_domain(&Domain::new("nosuch").unwrap()).is_err());
        let tuned = echo.with_delivery(
            &Domain::new("echo").unwrap(),
            Some(Duration::from_secs(2)),
            Some(2),
        );
        assert_eq!(tuned.consumer("echo-actions").unwrap().max_deliver, 2);
    }
}
