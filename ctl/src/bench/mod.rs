//! `berthctl bench`: the seed's performance metrics measured on any berth cluster, each side by side
//! with its reference in one run, written as Markdown, JSON and SVG plots.
//!
//! - `report`: the data every measurement returns and every writer reads.

pub mod report;
