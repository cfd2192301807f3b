//! Alerting (temporary stub while building).
pub mod clock;
pub mod lease;
pub mod notify;
pub mod rules;
pub mod state;
pub mod template;
