//! Prometheus' HTTP query API over the PromQL engine: the endpoints Grafana's Prometheus data
//! source calls, with Prometheus' parameters, envelope and error classes.
//!
//! Every answer is `{"status": "success", "data": ...}` or `{"status": "error", "errorType":
//! "bad_data" | "execution" | "timeout" | "unavailable" | "internal", "error": "..."}` with
//! Prometheus' HTTP status for the class (400, 422, 503, 503, 500). Parameters come from the
//! query string and, for POST, from a form-encoded body (Grafana POSTs by default); unknown
//! parameters are ignored, as Prometheus does, because clients add their own. Times are Unix
//! seconds (fractions allowed) or RFC 3339; durations are seconds or PromQL durations (`5m`).
//!
//! `/api/v1/query` and `/api/v1/query_range` also take `source=raw|rollup|auto` (default auto),
//! as `/v1/stats` does, and their answers say what served them in a `source` member next to
//! `data`, shaped like the stats answers' (Prometheus clients ignore members they do not know).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};
use serde_json::json;

use super::AppState;
use crate::access::Caller;
use crate::model::TimestampMs;
use crate::promql::families::METADATA;
use crate::promql::source::queries::QueriesSource;
use crate::promql::{Answer, Engine, Labels, PromqlError, Query, QueryValue};
use crate::query::source::Source as Sources;
use crate::store::Store;

/// The engine the handlers use.
pub type PromEngine<S> = Engine<QueriesSource<S>>;

/// The Prometheus version `buildinfo` reports: the PromQL grammar `promql-parser` follows, so
/// clients that choose features by version (Grafana) expect what we parse.
pub const COMPATIBLE_VERSION: &str = "2.45.0";

/// How far back the metadata endpoints look when `start` is not given, ms.
const DEFAULT_METADATA_RANGE_MS: i64 = 3_600_000;

/// A failed request, answered in Prometheus' error envelope.
#[derive(Debug)]
pub struct PromError(PromqlError);

impl From<PromqlError> for PromError {
    fn from(error: PromqlError) -> Self {
        PromError(error)
    }
}

pub(super) fn bad(message: impl Into<String>) -> PromError {
    PromError(PromqlError::BadData(message.into()))
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let class = self.0.error_type();
        if class.http_status() >= 500 {
            tracing::warn!(error = %self.0, "PromQL query failed");
        }
        let status =
            StatusCode::from_u16(class.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "status": "error",
            "errorType": class.as_str(),
            "error": self.0.to_string(),
        });
        (status, Json(body)).into_response()
    }
}

/// `{"status": "success", "data": data}`.
pub(super) fn success(data: impl Serialize) -> Response {
    Json(json!({ "status": "success", "data": serde_json::to_value(data).unwrap_or_default() }))
        .into_response()
}

/// The request's parameters: the query string, then a form body.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn read(query: Option<String>, body: &Bytes) -> Self {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        pairs.extend(form_urlencoded::parse(body).into_owned());
        Self(pairs)
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str) -> Result<Option<TimestampMs>, PromError> {
        self.get(name)
            .map(|v| parse_time(v).map_err(|e| bad(format!("invalid parameter \"{name}\": {e}"))))
            .transpose()
    }

    fn required_time(&self, name: &str) -> Result<TimestampMs, PromError> {
        self.time(name)?
            .ok_or_else(|| bad(format!("invalid parameter \"{name}\": is required")))
    }

    fn duration(&self, name: &str) -> Result<Option<Duration>, PromError> {
        self.get(name)
            .map(|v| {
                parse_duration(v).map_err(|e| bad(format!("invalid parameter \"{name}\": {e}")))
            })
            .transpose()
    }

    fn query(&self) -> Result<Query, PromError> {
        let text = self
            .get("query")
            .ok_or_else(|| bad("invalid parameter \"query\": is required"))?;
        Ok(Query::parse(text)?)
    }

    fn limit(&self) -> Result<Option<usize>, PromError> {
        match self.get("limit") {
            None | Some("") | Some("0") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                bad(format!(
                    "invalid parameter \"limit\": {v:?} is not a number"
                ))
            }),
        }
    }

    /// `[start, end]` of a metadata request: `end` defaults to now, `start` to an hour before.
    fn metadata_range(&self) -> Result<(TimestampMs, TimestampMs), PromError> {
        let end = self.time("end")?.unwrap_or_else(TimestampMs::now);
        let start = self
            .time("start")?
            .unwrap_or_else(|| TimestampMs::from_millis(end.millis() - DEFAULT_METADATA_RANGE_MS));
        if start > end {
            return Err(bad(
                "invalid parameter \"start\": must not be after \"end\"",
            ));
        }
        Ok((start, end))
    }

    fn selectors(
        &self,
        required: bool,
    ) -> Result<Vec<Vec<promql_parser::label::Matcher>>, PromError> {
        let texts = self.all("match[]");
        if texts.is_empty() {
            if required {
                return Err(bad("no match[] parameter provided"));
            }
            return Ok(vec![Query::selector(r#"{__name__=~".+"}"#)?]);
        }
        Ok(texts
            .into_iter()
            .map(Query::selector)
            .collect::<Result<_, _>>()?)
    }
}

/// Unix seconds with an optional fraction, or RFC 3339.
pub fn parse_time(text: &str) -> Result<TimestampMs, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > 9.2e15 {
            return Err(format!("cannot parse {text:?} to a valid timestamp"));
        }
        return Ok(TimestampMs::from_millis((seconds * 1000.0).round() as i64));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| TimestampMs::from_millis(t.timestamp_millis()))
        .map_err(|_| format!("cannot parse {text:?} to a valid timestamp"))
}

/// Seconds with an optional fraction, or a PromQL duration (`1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || !(0.0..=3.2e10).contains(&seconds) {
            return Err(format!("cannot parse {text:?} to a valid duration"));
        }
        return Ok(Duration::from_millis((seconds * 1000.0).round() as u64));
    }
    promql_parser::util::parse_duration(text)
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))
}

/// A sample value as Prometheus writes it: shortest round-trip digits, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// `[<unix seconds>, "<value>"]`.
struct Point(TimestampMs, String);

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&(self.0.millis() as f64 / 1000.0))?;
        t.serialize_element(&self.1)?;
        t.end()
    }
}

/// `{"resultType": ..., "result": ...}`.
struct QueryData(QueryValue);

struct Metric<'a>(&'a Labels, Option<Point>, Vec<Point>);

impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("metric", self.0)?;
        match &self.1 {
            Some(point) => map.serialize_entry("value", point)?,
            None => map.serialize_entry("values", &self.2)?,
        }
        map.end()
    }
}

impl Serialize for QueryData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("resultType", self.0.result_type())?;
        match &self.0 {
            QueryValue::Scalar { t, v } => {
                map.serialize_entry("result", &Point(*t, format_value(*v)))?
            }
            QueryValue::String { t, s } => map.serialize_entry("result", &Point(*t, s.clone()))?,
            QueryValue::Vector(samples) => map.serialize_entry(
                "result",
                &Seq(samples
                    .iter()
                    .map(|s| Metric(&s.labels, Some(Point(s.t, format_value(s.v))), Vec::new()))
                    .collect()),
            )?,
            QueryValue::Matrix(series) => map.serialize_entry(
                "result",
                &Seq(series
                    .iter()
                    .map(|s| {
                        Metric(
                            &s.labels,
                            None,
                            s.points
                                .iter()
                                .map(|(t, v)| Point(*t, format_value(*v)))
                                .collect(),
                        )
                    })
                    .collect()),
            )?,
        }
        map.end()
    }
}

struct Seq<T>(Vec<T>);

impl<T: Serialize> Serialize for Seq<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in &self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// The engine as `caller` sees it: only its services, when its token is limited to some.
fn visible<S: Store>(state: &AppState<S>, caller: &Caller) -> PromEngine<S> {
    match caller.services() {
        None => state.promql.clone(),
        Some(services) => Engine::new(
            QueriesSource::new(state.queries.clone()).only(services.clone()),
            *state.promql.config(),
        ),
    }
}

fn engine<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    params: &Params,
) -> Result<PromEngine<S>, PromError> {
    let engine = visible(state, caller);
    let engine = match params.get("source") {
        None => engine,
        Some(text) => engine.with_sources(
            Sources::parse(text).map_err(|e| bad(format!("invalid parameter \"source\": {e}")))?,
        ),
    };
    Ok(match params.duration("timeout")? {
        Some(timeout) => engine.with_timeout(timeout),
        None => engine,
    })
}

/// `GET|POST /api/v1/query`: `query`, optional `time` (default now), `timeout` and `source`.
pub async fn query<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    let query = params.query()?;
    let at = params.time("time")?.unwrap_or_else(TimestampMs::now);
    let answer = engine(&state, &caller, &params)?
        .instant_answer(&query, at)
        .await?;
    Ok(answered(answer))
}

/// `GET|POST /api/v1/query_range`: `query`, `start`, `end`, `step`, optional `timeout` and
/// `source`.
pub async fn query_range<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    let query = params.query()?;
    let start = params.required_time("start")?;
    let end = params.required_time("end")?;
    let step = params
        .duration("step")?
        .ok_or_else(|| bad("invalid parameter \"step\": is required"))?;
    let answer = engine(&state, &caller, &params)?
        .range_answer(&query, start, end, step)
        .await?;
    Ok(answered(answer))
}

/// `{"status": "success", "data": ..., "source": ...}`: a query's answer.
fn answered(answer: Answer) -> Response {
    Json(json!({
        "status": "success",
        "data": serde_json::to_value(QueryData(answer.value)).unwrap_or_default(),
        "source": answer.source,
    }))
    .into_response()
}

/// The series of a metadata request, capped at `limit`.
async fn matching_series<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    params: &Params,
) -> Result<Vec<Labels>, PromError> {
    let selectors = params.selectors(true)?;
    let (start, end) = params.metadata_range()?;
    let mut series = visible(state, caller)
        .series(&selectors, start, end)
        .await?;
    if let Some(limit) = params.limit()? {
        series.truncate(limit);
    }
    Ok(series)
}

/// `GET|POST /api/v1/series`: the label sets matching `match[]` in `[start, end]`.
pub async fn series<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    Ok(success(matching_series(&state, &caller, &params).await?))
}

/// `GET|POST /api/v1/labels`: the label names of the matching series, sorted.
pub async fn labels<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    let series = metadata_series(&state, &caller, &params).await?;
    let names = series.iter().flat_map(|l| l.iter().map(|(n, _)| n));
    Ok(success(sorted_unique(names, params.limit()?)))
}

/// `GET /api/v1/label/<name>/values`: the values of one label over the matching series.
pub async fn label_values<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    let series = metadata_series(&state, &caller, &params).await?;
    let values = series
        .iter()
        .map(|l| l.get(&name))
        .filter(|v| !v.is_empty());
    Ok(success(sorted_unique(values, params.limit()?)))
}

/// The label sets of the series `match[]` selects in the metadata range.
async fn metadata_series<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    params: &Params,
) -> Result<Vec<Labels>, PromError> {
    let (start, end) = params.metadata_range()?;
    Ok(visible(state, caller)
        .series(&params.selectors(false)?, start, end)
        .await?)
}

/// `items` sorted, without repeats, the first `limit` of them.
fn sorted_unique<'a>(items: impl Iterator<Item = &'a str>, limit: Option<usize>) -> Vec<&'a str> {
    let mut items: Vec<&str> = items.collect();
    items.sort_unstable();
    items.dedup();
    if let Some(limit) = limit {
        items.truncate(limit);
    }
    items
}

/// `GET /api/v1/metadata`: type, help and unit of every family (or `metric`), capped at `limit`.
pub async fn metadata(RawQuery(q): RawQuery) -> Result<Response, PromError> {
    let params = Params::read(q, &Bytes::new());
    let mut data = serde_json::Map::new();
    for m in METADATA
        .iter()
        .filter(|m| params.get("metric").is_none_or(|want| want == m.metric))
    {
        data.insert(
            m.metric.to_owned(),
            json!([{"type": m.kind, "help": m.help, "unit": m.unit}]),
        );
    }
    if let Some(limit) = params.limit()? {
        data = data.into_iter().take(limit).collect();
    }
    Ok(success(data))
}

/// `GET /api/v1/status/buildinfo`: a Prometheus-compatible build description.
pub async fn buildinfo() -> Response {
    success(json!({
        "version": COMPATIBLE_VERSION,
        "revision": concat!("timebucket-", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// `GET|POST /api/v1/query_exemplars`: timebucket keeps no exemplars; the query must parse.
pub async fn query_exemplars(RawQuery(q): RawQuery, body: Bytes) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    if let Some(text) = params.get("query") {
        promql_parser::parser::parse(text).map_err(PromqlError::Parse)?;
    }
    Ok(success(Vec::<()>::new()))
}

/// `GET|POST /api/v1/format_query`: the query in Prometheus' canonical form.
pub async fn format_query(RawQuery(q): RawQuery, body: Bytes) -> Result<Response, PromError> {
    let params = Params::read(q, &body);
    let text = params
        .get("query")
        .ok_or_else(|| bad("invalid parameter \"query\": is required"))?;
    let expr = promql_parser::parser::parse(text).map_err(PromqlError::Parse)?;
    Ok(success(expr.prettify()))
}
