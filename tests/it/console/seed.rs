//! The console tests' readings, sent through `POST /v1/metrics` like any client's, ending a
//! little before now: four services, one named with markup and one path that is a `<script>`
//! (names and paths are user input: the pages must show them as text); instances with gaps in
//! their heartbeats and one that reports itself unavailable.

use std::time::Duration;

use serde_json::{json, Value};

/// The service whose name is markup.
pub const EVIL_SERVICE: &str = "evil\"><script>window.__pwned=2</script>";
/// The path that is markup.
pub const EVIL_PATH: &str = "/x/<script>window.__pwned=1</script>";
/// The service with more paths than a table page holds (50).
pub const WIDE_SERVICE: &str = "catalog";
/// Its paths.
pub const WIDE_PATHS: usize = 60;
/// Every seeded service.
pub const SERVICES: [&str; 5] = ["checkout", "search", "auth", WIDE_SERVICE, EVIL_SERVICE];

const MINUTE: i64 = 60_000;

fn service_plan(service: &str) -> (Vec<String>, Vec<&'static str>, &'static [i64]) {
    match service {
        "checkout" => (
            (1..=3).map(|i| format!("checkout-{i}")).collect(),
            vec!["/cart", "/cart/{id}", "/pay", "/users/{id}"],
            &[200, 200, 200, 200, 200, 200, 201, 404, 500],
        ),
        "search" => (
            vec!["search-1".into(), "search-2".into()],
            vec!["/q", "/suggest", EVIL_PATH],
            &[200, 200, 200, 200, 200, 200, 200, 200, 404],
        ),
        "auth" => (
            vec!["auth-1".into(), "auth-2".into()],
            vec!["/login", "/token"],
            &[200, 200, 200, 401, 503, 503],
        ),
        WIDE_SERVICE => (vec!["catalog-1".into()], Vec::new(), &[200]),
        _ => (vec!["e-1".into()], vec!["/"], &[200, 500]),
    }
}

/// Posts 50 minutes of readings ending at `end` (ms) and waits until `/v1/stats` counts them
/// all, so pages and the API answer from the same stored data.
pub async fn seed(url: &str, end: i64) {
    let mut rng = fastrand::Rng::with_seed(16);
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for service in SERVICES {
        let (instances, paths, codes) = service_plan(service);
        let mut api = Vec::new();
        let mut total = 0u64;
        let readings = match service {
            EVIL_SERVICE => 40,
            WIDE_SERVICE => WIDE_PATHS,
            _ => 900,
        };
        for n in 0..readings {
            let path = match service {
                WIDE_SERVICE => format!("/items/{n:02}"),
                _ => paths[rng.usize(0..paths.len())].to_owned(),
            };
            let count = if rng.u8(0..4) == 0 {
                rng.u32(2..=20)
            } else {
                1
            };
            let method = ["GET", "POST"][rng.usize(0..2)];
            total += u64::from(count);
            api.push(json!({
                "service": service,
                "instance": instances[rng.usize(0..instances.len())],
                "method": method,
                "path": path,
                "code": codes[rng.usize(0..codes.len())],
                "duration_ms": ((rng.f64() * 4.0).exp() * 2.0 * 100.0).round() / 100.0,
                "count": count,
                "timestamp": end - rng.i64(0..50 * MINUTE),
            }));
        }
        let mut host = Vec::new();
        for (i, instance) in instances.iter().enumerate() {
            for k in 0..150 {
                let at = end - k * 20_000;
                // checkout-2 was silent for ten minutes; auth-2 went unavailable at the end.
                if instance == "checkout-2" && (20..50).contains(&k) {
                    continue;
                }
                let available = !(instance == "auth-2" && k < 12);
                host.push(json!({
                    "service": service,
                    "instance": instance,
                    "timestamp": at,
                    "cpu_percent": 5.0 + rng.f64() * 80.0,
                    "mem_used_bytes": (300 + 200 * i as i64) << 20,
                    "mem_total_bytes": 2i64 << 30,
                    "disk_used_bytes": (10 + 5 * i as i64) << 30,
                    "disk_total_bytes": 50i64 << 30,
                    "available": available,
                }));
            }
        }
        let response = client
            .post(format!("{url}/v1/metrics"))
            .json(&json!({"api": api, "host": host}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        requests.push((service.to_owned(), total));
    }
    for (service, total) in &requests {
        wait_counted(url, service, *total, end).await;
    }
}

async fn wait_counted(url: &str, service: &str, total: u64, end: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer: Value = reqwest::Client::new()
            .get(format!("{url}/v1/stats"))
            .query(&[
                ("service", service.to_owned()),
                ("from", (end - 60 * MINUTE).to_string()),
                ("to", end.to_string()),
                ("step", "1h".to_owned()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        let counted: u64 = answer["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["points"].as_array().into_iter().flatten())
            .map(|p| p["count"].as_u64().unwrap_or(0))
            .sum();
        if counted == total {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{service}: {counted} of {total} requests stored after a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
