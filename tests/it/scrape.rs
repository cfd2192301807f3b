//! Scraping, end to end: the real `timebucket serve --scrape-config` (embedded store) against
//! targets served by the official Python client, the capture layer's own endpoint, and targets
//! that hang, fail, vanish or serve garbage. Intervals are short; the tests wait for behaviour
//! (scrape counts, stored readings), never for a time.

mod backlog;
mod capture;
mod failures;
mod python;
mod reload;
mod replicas;
mod support;
