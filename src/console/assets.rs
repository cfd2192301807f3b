//! The console's stylesheet and script, compiled into the binary (`include_str!`): nothing is
//! built by another toolchain and nothing is fetched at run time, so the console works offline.
//!
//! Pages link them as `/assets/console.css?v=HASH`: the hash of the content changes with it, so
//! the files are cached for a year and a new binary is still picked up at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The icon, inline: no request for `/favicon.ico` (which would 404 and log a console error).
pub const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
    viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%232f6fde'/%3E%3Cpath \
    d='M3 11h2V7H3zm4 0h2V4H7zm4 0h2V8h-2z' fill='white'/%3E%3C/svg%3E";

fn version(text: &str) -> String {
    format!("{:08x}", crc32c::crc32c(text.as_bytes()))
}

static CSS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/assets/console.css?v={}", version(CSS)));
static JS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/assets/console.js?v={}", version(JS)));

/// The stylesheet's URL.
pub fn css_href() -> &'static str {
    &CSS_HREF
}

/// The script's URL.
pub fn js_href() -> &'static str {
    &JS_HREF
}

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
