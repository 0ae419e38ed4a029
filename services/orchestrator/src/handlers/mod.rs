//! One file per handler. The orchestrator handles no actions of its own, only the results
//! of the actions it sent.

mod agent_run_result;

pub use agent_run_result::agent_run_result;
