//! `publish` and `request`: build a valid action from flags and a JSON body, send it, and
//! print the result. Exit 1 when the result is an error, 2 when the flags are.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;
use shared::{Action, ActionType, CallbackSubject, Publisher, TenantId};

use crate::exit::{Failure, Outcome, connect};

/// What both commands take.
#[derive(clap::Args)]
pub struct ActionArgs {
    /// The action type, e.g. echo.ping.
    pub action_type: String,
    /// The tenant (one token of [A-Za-z0-9_-]).
    #[arg(long, short)]
    pub tenant: String,
    /// The data as JSON; `-` reads it from stdin; `@FILE` reads a file.
    #[arg(long, short, default_value = "{}")]
    pub data: String,
    /// Session id.
    #[arg(long)]
    pub session: Option<String>,
    /// Task id.
    #[arg(long)]
    pub task: Option<String>,
    /// Correlation id of the chain this action belongs to.
    #[arg(long)]
    pub correlation: Option<String>,
    /// How long to wait for the result.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Flags of `publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub action: ActionArgs,
    /// Send the result here (`<domain>.<tenant>.callbacks` or an inbox) instead of waiting for it.
    #[arg(long)]
    pub callback: Option<String>,
    /// Print the stored action's id and sequence without waiting for a result.
    #[arg(long)]
    pub no_wait: bool,
}

/// Flags of `request`.
#[derive(clap::Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub action: ActionArgs,
}

impl ActionArgs {
    fn build(&self) -> Result<Action<Value>, Failure> {
        let action_type = ActionType::new(&self.action_type).map_err(Failure::usage)?;
        let tenant = TenantId::new(&self.tenant).map_err(Failure::usage)?;
        let text = match self.data.as_str() {
            "-" => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| Failure::usage(format!("reading stdin: {e}")))?;
                text
            }
            data => match data.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| Failure::usage(format!("reading {path}: {e}")))?,
                None => data.to_owned(),
            },
        };
        let data: Value = serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("--data is not JSON: {e}")))?;
        let mut action = Action::of_type(action_type, tenant, data);
        action.session_id = self.session.clone();
        action.task_id = self.task.clone();
        action.correlation_id = self.correlation.clone();
        Ok(action)
    }
}

/// `publish`: enqueue durably; wait for the result on an inbox unless told otherwise.
pub async fn publish(url: &str, args: PublishArgs) -> Outcome {
    let mut action = args.action.build()?;
    let publisher = Publisher::new(connect(url).await?);
    if args.no_wait || args.callback.is_some() {
        if let Some(callback) = &args.callback {
            let callback = CallbackSubject::parse(
                callback,
                &action.tenant_id,
                shared::subject::Inboxes::Shared,
            )
            .map_err(|e| Failure::usage(e.message))?;
            action = action.with_callback(&callback);
        }
        let stored = publisher.enqueue(&action).await.map_err(Failure::runtime)?;
        let out = serde_json::json!({
            "action_id": stored.action_id, "stream": stored.stream,
            "sequence": stored.sequence, "duplicate": stored.duplicate,
        });
        println!("{out}");
        return Ok(());
    }
    let timeout = args.action.timeout;
    let domain = action.action_type.domain().to_owned();
    let (_, result) = publisher
        .enqueue_and_wait(action, timeout)
        .await
        .map_err(Failure::runtime)?;
    let result = result.ok_or_else(|| {
        Failure::runtime(format!(
            "no result within {timeout:?} (the action is stored; is a {domain} worker running?)"
        ))
    })?;
    let result = serde_json::to_value(&result).map_err(Failure::runtime)?;
    print_result(&result)
}

/// `request`: rpc; the reply is the result.
pub async fn request(url: &str, args: RequestArgs) -> Outcome {
    let action = args.action.build()?;
    let publisher = Publisher::new(connect(url).await?);
    let result = publisher
        .request_result(&action, args.action.timeout)
        .await
        .map_err(Failure::runtime)?;
    let result = serde_json::to_value(&result).map_err(Failure::runtime)?;
    print_result(&result)
}

/// Prints the result action; an error result fails the command with its code and message.
fn print_result(result: &Value) -> Outcome {
    println!(
        "{}",
        serde_json::to_string_pretty(result).unwrap_or_default()
    );
    let data = &result["data"];
    if data["status"] == "success" {
        return Ok(());
    }
    let error = &data["error"];
    Err(Failure::runtime(format!(
        "{}: {}",
        error["code"].as_str().unwrap_or("error"),
        error["message"].as_str().unwrap_or("the action failed")
    )))
}
