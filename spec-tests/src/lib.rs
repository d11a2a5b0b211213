//! Test support for husk's spec-tests.
