//! `schema`: the AsyncAPI 3 document of every action type the services handle, so clients
//! in other languages can be generated from the same Rust types the services decode.

use std::path::PathBuf;

use crate::exit::{Failure, Outcome};
use crate::services;

/// Flags of `schema`.
#[derive(clap::Args)]
pub struct Args {
    /// Describe only this service (repeatable); default: every service.
    #[arg(long = "service", value_name = "NAME",
          value_parser = clap::builder::PossibleValuesParser::new(services::ALL))]
    services: Vec<String>,
    /// Write the document to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Builds the document from the services' catalogs (no NATS needed) and prints it.
pub fn run(args: Args) -> Outcome {
    let names: Vec<&str> = if args.services.is_empty() {
        services::ALL.to_vec()
    } else {
        args.services.iter().map(String::as_str).collect()
    };
    let catalogs = names
        .iter()
        .map(|name| {
            services::catalog(name)
                .ok_or_else(|| Failure::usage(format!("unknown service {name:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let document =
        platform::asyncapi::document("Domain Actions", env!("CARGO_PKG_VERSION"), &catalogs);
    let mut text = serde_json::to_string_pretty(&document)
        .map_err(|err| Failure::runtime(format!("cannot encode the document: {err}")))?;
    text.push('\n');
    match args.out {
        Some(path) => std::fs::write(&path, text)
            .map_err(|err| Failure::runtime(format!("cannot write {}: {err}", path.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
