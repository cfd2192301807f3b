//! TLS round trips with self-signed certificates made here (rcgen): ingest, queries, OTLP/HTTP
//! and OTLP/gRPC over TLS; plain HTTP and clients that do not trust the certificate are
//! refused; a reload swaps the certificate for new connections.

use std::path::Path;

use timebucket::access::TlsFiles;

use super::support::{body, grpc_export_with, otlp_json, SecuredApp};

/// A self-signed certificate for localhost and 127.0.0.1: its PEM, written with its key to
/// `files`.
fn certificate(files: &TlsFiles) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(&files.cert, made.cert.pem()).unwrap();
    std::fs::write(&files.key, made.key_pair.serialize_pem()).unwrap();
    made.cert.pem()
}

/// A client that trusts only `pem` (HTTP/1.1 and HTTP/2 by ALPN).
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

fn files_in(dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

#[tokio::test]
async fn readings_go_in_and_come_out_over_tls_and_a_reload_swaps_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = files_in(dir.path());
    let first = certificate(&files);
    let app = SecuredApp::start_with(Some((files.clone(), trusting(&first)))).await;
    let keys = &app.keys;
    assert!(app.api.starts_with("https://"));

    let written = app
        .client
        .post(format!("{}/v1/metrics", app.api))
        .bearer_auth(keys.writer.reveal())
        .json(&body(&["checkout"]))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 202);
    let otlp = app
        .client
        .post(format!("{}/v1/metrics", app.otlp_http))
        .bearer_auth(keys.writer.reveal())
        .json(&otlp_json("checkout"))
        .send()
        .await
        .unwrap();
    assert_eq!(otlp.status(), 200, "{}", otlp.text().await.unwrap());
    let grpc = grpc_export_with(
        &app.client,
        &app.otlp_grpc,
        Some(keys.writer.reveal()),
        "checkout",
    );
    assert_eq!(grpc.await, None, "OTLP/gRPC over TLS (ALPN h2) succeeds");
    let latest = format!("{}/v1/latest?service=checkout", app.api);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = app
            .client
            .get(&latest)
            .bearer_auth(keys.reader.reveal())
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            let text = answer.text().await.unwrap();
            assert!(text.contains("\"checkout\""), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.accepted().await, 3.0);

    // Plain HTTP on the TLS port, and a client that trusts another certificate, get nowhere.
    let plain = app.api.replace("https://", "http://");
    let refused = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(refused.is_err() || !refused.unwrap().status().is_success());
    let other = tempfile::tempdir().unwrap();
    let stranger = certificate(&files_in(other.path()));
    assert!(trusting(&stranger)
        .get(format!("{}/healthz", app.api))
        .send()
        .await
        .is_err());

    // A new certificate in the same files, reloaded: new connections get it.
    let second = certificate(&files);
    let reloaded = app
        .client
        .post(format!("{}/-/reload", app.api))
        .bearer_auth(keys.admin.reveal())
        .send()
        .await
        .unwrap();
    let answer: serde_json::Value = reloaded.json().await.unwrap();
    assert!(
        answer["reloaded"]["tls"]
            .as_str()
            .unwrap()
            .contains("cert.pem"),
        "{answer}"
    );
    let healthz = format!("{}/healthz", app.api);
    assert_eq!(
        trusting(&second)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(trusting(&first).get(&healthz).send().await.is_err());
    // A reload that cannot use the files keeps the running certificate.
    std::fs::write(&files.key, "not a key").unwrap();
    let refused = trusting(&second)
        .post(format!("{}/-/reload", app.api))
        .bearer_auth(keys.admin.reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(
        trusting(&second)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}
