//! Alerting (temporary stub while building).
pub mod clock;
pub mod rules;
pub mod state;
pub mod template;
