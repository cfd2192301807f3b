//! The query endpoints: `GET /v1/readings`, `/v1/series`, `/v1/latest`, `/v1/stats` and
//! `/v1/stats/host`.
//!
//! Each handler takes the query string as raw pairs, checks it into a typed request (a 400
//! naming every parameter at fault), and hands it to [`Queries`](crate::query::Queries).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use std::time::Duration;

use super::error::ApiError;
use super::AppState;
use crate::query::answer::{
    HostStatsAnswer, LatestAnswer, ReadingsAnswer, SeriesAnswer, StatsAnswer,
};
use crate::query::requests::{
    HostStatsRequest, LatestRequest, ReadingsRequest, SeriesRequest, StatsRequest,
};
use crate::store::Store;

/// The query string as `(name, value)` pairs, in order.
type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn pairs(query: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::bad_request(format!("cannot read the query string: {e}")))
}

/// Runs a query within `--query-request-timeout`: past it, a 503 naming the flag, whatever
/// the store is doing (a stalled node would otherwise hold the request for the driver's own
/// timeout, 30 s per read).
async fn within<S: Store, T>(
    state: &AppState<S>,
    query: impl std::future::Future<Output = T>,
) -> Result<T, ApiError> {
    let timeout = state.queries.limits().request_timeout;
    tokio::time::timeout(timeout, query).await.map_err(|_| {
        tracing::warn!(?timeout, "a query ran past --query-request-timeout");
        ApiError::Unavailable(
            format!(
                "the query did not finish within --query-request-timeout ({}); the store may \
                 be slow or stalled, retry shortly",
                humantime::format_duration(timeout)
            ),
            Duration::from_secs(1),
        )
    })
}

/// Raw API readings of one service in `[from, to]`, paged with a cursor.
pub async fn readings<S: Store>(
    State(state): State<AppState<S>>,
    query: Pairs,
) -> Result<Json<ReadingsAnswer>, ApiError> {
    let request = ReadingsRequest::parse(&pairs(query)?, state.queries.limits())?;
    Ok(Json(
        within(&state, state.queries.readings(&request)).await??,
    ))
}

/// The instances and API methods of a service in `[from, to]`, paged with a cursor.
pub async fn series<S: Store>(
    State(state): State<AppState<S>>,
    query: Pairs,
) -> Result<Json<SeriesAnswer>, ApiError> {
    let request = SeriesRequest::parse(&pairs(query)?, state.queries.limits())?;
    Ok(Json(within(&state, state.queries.series(&request)).await??))
}

/// The latest reading of every series and instance, of one service or all, paged with a cursor.
pub async fn latest<S: Store>(
    State(state): State<AppState<S>>,
    query: Pairs,
) -> Result<Json<LatestAnswer>, ApiError> {
    let request = LatestRequest::parse(&pairs(query)?, state.queries.limits())?;
    Ok(Json(within(&state, state.queries.latest(&request)).await??))
}

/// API stats per step and group.
pub async fn stats<S: Store>(
    State(state): State<AppState<S>>,
    query: Pairs,
) -> Result<Json<StatsAnswer>, ApiError> {
    let request = StatsRequest::parse(&pairs(query)?, state.queries.limits())?;
    Ok(Json(within(&state, state.queries.stats(&request)).await??))
}

/// Host gauges per instance and step.
pub async fn host_stats<S: Store>(
    State(state): State<AppState<S>>,
    query: Pairs,
) -> Result<Json<HostStatsAnswer>, ApiError> {
    let request = HostStatsRequest::parse(&pairs(query)?, state.queries.limits())?;
    Ok(Json(
        within(&state, state.queries.host_stats(&request)).await??,
    ))
}
