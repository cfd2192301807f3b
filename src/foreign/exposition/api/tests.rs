use super::super::host::HostOptions;
use super::super::{parse, Converter, Dialect, MappingOptions};
use super::*;
use crate::model::{InstanceName, Reading, ServiceName};

fn origin() -> Origin {
    Origin {
        service: ServiceName::parse("shop").unwrap(),
        instance: InstanceName::parse("10.0.0.7:8080").unwrap(),
    }
}

fn options() -> MappingOptions {
    MappingOptions {
        api: ApiLabels::default(),
        host: HostOptions::default(),
    }
}

/// Scrapes `text` at `at` seconds; the API readings as `(method, path, code, count, ms)` and
/// the unmapped sample count.
/// An API reading as `(method, path, code, count, duration_ms)`.
type Row = (String, String, u16, u32, f64);

fn scrape(c: &mut Converter, text: &str, at: i64) -> (Vec<Row>, usize) {
    let e = parse(text, Dialect::Prometheus).unwrap();
    let out = c.convert(
        &e,
        TimestampMs::from_millis(at * 1000),
        &origin(),
        &options(),
    );
    let api = out
        .readings
        .iter()
        .filter_map(|r| match r {
            Reading::Api(a) => Some((
                a.method.to_string(),
                a.path.to_string(),
                a.code.get(),
                a.count,
                a.duration_ms,
            )),
            Reading::Host(_) => None,
        })
        .collect();
    (api, out.unmapped)
}

fn total(readings: &[Row]) -> u32 {
    readings.iter().map(|r| r.3).sum()
}

fn histogram(count_fast: u32, count_slow: u32, sum: f64) -> String {
    format!(
        "# TYPE http_request_duration_seconds histogram\n\
         http_request_duration_seconds_bucket{{method=\"GET\",handler=\"/users/{{id}}\",code=\"200\",le=\"0.01\"}} {count_fast}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",handler=\"/users/{{id}}\",code=\"200\",le=\"0.1\"}} {}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",handler=\"/users/{{id}}\",code=\"200\",le=\"+Inf\"}} {}\n\
         http_request_duration_seconds_sum{{method=\"GET\",handler=\"/users/{{id}}\",code=\"200\"}} {sum}\n\
         http_request_duration_seconds_count{{method=\"GET\",handler=\"/users/{{id}}\",code=\"200\"}} {}\n",
        count_fast + count_slow,
        count_fast + count_slow,
        count_fast + count_slow,
    )
}

#[test]
fn histogram_deltas_are_exact_across_scrapes_and_a_counter_reset() {
    let mut c = Converter::new(100);
    let (first, unmapped) = scrape(&mut c, &histogram(10, 2, 0.2), 1);
    assert!(first.is_empty(), "the first scrape only primes");
    assert_eq!(unmapped, 0);
    let (second, _) = scrape(&mut c, &histogram(13, 4, 0.33), 2);
    assert_eq!(total(&second), 5);
    let fast: Vec<_> = second.iter().filter(|r| r.4 <= 10.0).collect();
    assert_eq!(fast.iter().map(|r| r.3).sum::<u32>(), 3, "{second:?}");
    let sum_ms: f64 = second.iter().map(|r| f64::from(r.3) * r.4).sum();
    assert!((sum_ms - 130.0).abs() < 1e-6, "the sum is kept: {sum_ms}");
    assert_eq!(second[0].0, "GET");
    assert_eq!(second[0].1, "/users/{id}");
    // The target restarted: its totals went down, so all of them are new.
    let (after_reset, _) = scrape(&mut c, &histogram(1, 1, 0.06), 3);
    assert_eq!(total(&after_reset), 2);
    let (unchanged, _) = scrape(&mut c, &histogram(1, 1, 0.06), 4);
    assert!(unchanged.is_empty());
}

#[test]
fn a_series_that_appears_after_the_first_scrape_is_counted_whole() {
    let counter = |lines: &[(&str, u32)]| {
        lines
            .iter()
            .map(|(path, n)| {
                format!("http_requests_total{{method=\"GET\",path=\"{path}\",code=\"200\"}} {n}\n")
            })
            .collect::<String>()
    };
    let mut c = Converter::new(100);
    let (first, _) = scrape(&mut c, &counter(&[("/old", 50)]), 1);
    assert!(first.is_empty(), "what /old counted before is history");
    let (second, _) = scrape(&mut c, &counter(&[("/old", 51), ("/new", 3)]), 2);
    let by_path: Vec<(String, u32)> = second.iter().map(|r| (r.1.clone(), r.3)).collect();
    assert_eq!(by_path, [("/new".to_owned(), 3), ("/old".to_owned(), 1)]);
}

#[test]
fn a_histogram_outranks_the_counter_of_the_same_requests() {
    let both = |n: u32| {
        format!(
            "{}# TYPE http_requests_total counter\nhttp_requests_total{{method=\"GET\",handler=\"/users/{{id}}\",code=\"200\"}} {}\n",
            histogram(n, 0, 0.001 * f64::from(n)),
            n
        )
    };
    let mut c = Converter::new(100);
    let (_, unmapped) = scrape(&mut c, &both(1), 1);
    assert_eq!(unmapped, 1, "the counter is left unmapped");
    let (second, _) = scrape(&mut c, &both(4), 2);
    assert_eq!(total(&second), 3, "counted once: {second:?}");
}

#[test]
fn summaries_give_count_and_mean_and_counters_give_counts() {
    let summary = |count: u32, sum: f64| {
        format!(
            "# TYPE http_server_requests_seconds summary\n\
             http_server_requests_seconds_count{{method=\"POST\",uri=\"/pay\",status=\"503\"}} {count}\n\
             http_server_requests_seconds_sum{{method=\"POST\",uri=\"/pay\",status=\"503\"}} {sum}\n"
        )
    };
    let mut c = Converter::new(100);
    scrape(&mut c, &summary(10, 1.0), 1);
    let (readings, _) = scrape(&mut c, &summary(14, 1.2), 2);
    assert_eq!(readings.len(), 1);
    let (method, path, code, count, ms) = readings[0].clone();
    assert_eq!(
        (method.as_str(), path.as_str(), code, count),
        ("POST", "/pay", 503, 4)
    );
    assert!((ms - 50.0).abs() < 1e-9, "mean of 200 ms over 4: {ms}");

    let counter =
        |n: u32| format!("http_requests_total{{method=\"get\",path=\"/a\",code=\"404\"}} {n}\n");
    let mut c = Converter::new(100);
    scrape(&mut c, &counter(7), 1);
    let (readings, _) = scrape(&mut c, &counter(9), 2);
    assert_eq!(readings, [("GET".to_owned(), "/a".to_owned(), 404, 2, 0.0)]);
}

#[test]
fn series_without_a_method_path_or_code_are_unmapped() {
    let text = "# TYPE http_requests_total counter\n\
                http_requests_total{method=\"GET\",path=\"/a\",code=\"200\"} 1\n\
                http_requests_total{method=\"BREW\",path=\"/a\",code=\"200\"} 1\n\
                http_requests_total{method=\"GET\",path=\"a\",code=\"200\"} 1\n\
                http_requests_total{method=\"GET\",path=\"/a\",code=\"2xx\"} 1\n\
                http_requests_total{method=\"GET\",code=\"200\"} 1\n\
                go_goroutines 12\n";
    let mut c = Converter::new(100);
    assert_eq!(scrape(&mut c, text, 1).1, 5);
}

#[test]
fn label_names_are_configurable() {
    let mut c = Converter::new(100);
    let mut opts = options();
    opts.api.path = vec!["endpoint".to_owned()];
    let text = |n: u32| {
        format!("http_requests_total{{method=\"GET\",endpoint=\"/x\",code=\"200\"}} {n}\n")
    };
    for (at, n) in [(1, 1), (2, 3)] {
        let body = text(n);
        let e = parse(&body, Dialect::Prometheus).unwrap();
        let out = c.convert(&e, TimestampMs::from_millis(at * 1000), &origin(), &opts);
        assert_eq!(out.unmapped, 0);
        if at == 2 {
            assert!(
                matches!(&out.readings[0], Reading::Api(a) if a.count == 2 && a.path.as_str() == "/x")
            );
        }
    }
}

#[test]
fn node_exporter_and_process_metrics_make_the_host_reading() {
    let text = |idle: f64, user: f64, proc_cpu: f64| {
        format!(
            "node_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} {idle}\n\
             node_cpu_seconds_total{{cpu=\"0\",mode=\"user\"}} {user}\n\
             node_cpu_seconds_total{{cpu=\"1\",mode=\"idle\"}} {idle}\n\
             node_cpu_seconds_total{{cpu=\"1\",mode=\"user\"}} {user}\n\
             node_memory_MemTotal_bytes 1000\nnode_memory_MemAvailable_bytes 400\n\
             node_filesystem_size_bytes{{mountpoint=\"/boot\"}} 50\n\
             node_filesystem_size_bytes{{mountpoint=\"/\"}} 500\n\
             node_filesystem_avail_bytes{{mountpoint=\"/\"}} 100\n\
             process_resident_memory_bytes 4096\nprocess_cpu_seconds_total {proc_cpu}\n"
        )
    };
    let host = |c: &mut Converter, body: &str, at: i64| {
        let e = parse(body, Dialect::Prometheus).unwrap();
        let out = c.convert(&e, TimestampMs::from_millis(at), &origin(), &options());
        let Some(Reading::Host(h)) = out.readings.last().cloned() else {
            panic!("no host reading")
        };
        (h.gauges, out.unmapped)
    };
    let mut c = Converter::new(10);
    let (first, unmapped) = host(&mut c, &text(10.0, 10.0, 1.0), 1_000);
    assert_eq!(unmapped, 1, "only the /boot size is unused");
    assert_eq!(first.available, Some(true));
    assert_eq!(
        first.cpu_percent, None,
        "the first scrape primes the CPU totals"
    );
    assert_eq!(
        (first.mem_total_bytes, first.mem_used_bytes),
        (Some(1000), Some(600))
    );
    assert_eq!(
        (first.disk_total_bytes, first.disk_used_bytes),
        (Some(500), Some(400))
    );
    assert_eq!(first.heap_bytes, Some(4096));
    // Each CPU was busy 3 s of 4: 75% each, 150% in all.
    let (second, _) = host(&mut c, &text(11.0, 13.0, 2.0), 3_000);
    assert_eq!(second.cpu_percent, Some(150.0));

    let mut c = Converter::new(10);
    host(&mut c, "process_cpu_seconds_total 1.0\n", 1_000);
    let (g, _) = host(&mut c, "process_cpu_seconds_total 1.5\n", 3_000);
    assert_eq!(g.cpu_percent, Some(25.0), "0.5 CPU seconds in 2 s");
}
