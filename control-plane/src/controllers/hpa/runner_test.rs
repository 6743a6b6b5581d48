//! Runner test.
