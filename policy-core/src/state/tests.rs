//! Tests of the limit state.
