//! Shared helpers for tests against real peers.
