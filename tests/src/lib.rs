//! Shared helpers for berth end-to-end tests.
