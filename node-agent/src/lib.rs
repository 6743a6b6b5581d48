//! berth node agent: the `berth-agent` library.
