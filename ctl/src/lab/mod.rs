//! `lab` verbs: local multi-node berth clusters made of network namespaces on a private bridge, and the fault
//! drills (`kill`, `restart`, `partition`, `heal`). Everything a lab creates is recorded in `{dir}/lab.json`;
//! `down` also finds leftovers by name pattern, so it works after a crash. A lab is TLS like any cluster:
//! its token is in `{dir}/token` (0600) and reaches the processes through their environment, and its
//! kubeconfig (0600) carries the CA and the admin client certificate the first server made.
//!
//! # Layout
//! - `plan` (pure): addresses, names and commands of every node; `host`: the `ip` and process calls.
//! - `state`: `lab.json`; `up`, `ready`, `status`, `down`: the verbs; `drill`: the fault drills.
//! - `ui`: the web view on a loopback port, forwarding to the lab's API as its admin, with the drills as buttons.

mod down;
mod drill;
pub mod host;
pub mod plan;
mod ready;
mod state;
mod status;
mod ui;
mod up;

pub use down::{down, DownReport};
pub use drill::{heal, kill, partition, restart};
pub use ready::wait_ready;
pub use state::{lab_dir, LabState, NodeRun, LABS_ROOT};
pub use status::{status, NodeStatus};
pub use ui::{check_address, route, serve, ui, Fault, Route, UiOptions};
pub use up::{find_binary, parse_env, up, UpOptions};

#[cfg(test)]
mod tests;
