//! `berthctl bench`: the seed's performance metrics measured on any berth cluster, each side by side
//! with its reference in one run, written as Markdown, JSON and SVG plots.
//!
//! - `report`: the data every measurement returns and every writer reads.
//! - `ctx`: [`BenchCtx`], what every measurement gets (session, namespace, nodes, image, lab host).
//! - `image`: the bench image; `run`: one whole run; `write`: Markdown, JSON, SVG.
//! - `startup`, `images`, `memory`: measurements.
//! - [`MEASUREMENTS`]: the registration list; one line per measurement module.

pub mod cpu;
pub mod ctx;
pub mod disk;
pub mod image;
pub mod images;
pub mod memory;
pub mod network;
pub mod pods;
pub mod report;
pub mod run;
pub mod startup;
pub mod write;

pub use ctx::{BenchCtx, BenchNode, LabHost, PodRun, IMAGE, NAMESPACE, PROBE_PATH};

use anyhow::Result;
use futures::future::LocalBoxFuture;

use report::Comparison;

/// A measurement: runs against the context, returns its comparisons.
pub type Measure = fn(&BenchCtx) -> LocalBoxFuture<'_, Result<Vec<Comparison>>>;

/// Every measurement `--only` can name, in the order a full run does them. A new module adds one line
/// here: `("disk", |c| Box::pin(disk::run(c))),`.
pub const MEASUREMENTS: &[(&str, Measure)] = &[
    ("startup", |c| Box::pin(startup::run(c))),
    ("images", |c| Box::pin(images::run(c))),
    ("memory", |c| Box::pin(memory::run(c))),
    ("disk", |c| Box::pin(disk::run(c))),
    ("cpu", |c| Box::pin(cpu::run(c))),
    ("network", |c| Box::pin(network::run(c))),
];
