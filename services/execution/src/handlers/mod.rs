//! One file per handler.

mod agent_delete;
mod agent_get;
mod agent_list;
mod agent_put;
mod agent_run;
mod session_delete;
mod session_get;

pub use agent_delete::agent_delete;
pub use agent_get::agent_get;
pub use agent_list::agent_list;
pub use agent_put::agent_put;
pub use agent_run::agent_run;
pub use session_delete::session_delete;
pub use session_get::session_get;
