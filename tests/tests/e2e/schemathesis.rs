//! The OpenAPI document against the running gateway: schemathesis (`.ci/run` installs a pinned
//! version in a venv and sets `SCHEMATHESIS` to its binary) fuzzes every operation of
//! `/openapi.json` on the secured demo practice, on loopback, with a `system/*.cruds` token, and
//! checks that no answer is a server error and every answer matches the document's schema.
//!
//! Skipped, saying why, when `SCHEMATHESIS` does not name the binary. The budget is bounded:
//! `SCHEMATHESIS_MAX_EXAMPLES` examples per operation (default 10) within `SCHEMATHESIS_MAX_TIME`
//! seconds (default 90); past twice that the run is stopped and the test fails. The figures
//! (operations tested, examples, failures) are printed; the run's files (its output and JSON
//! report) stay in a temporary directory when it fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::Env;
use serde_json::Value;

use crate::backend_client;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[tokio::test]
async fn the_openapi_document_holds_under_schemathesis() {
    let Some(binary) = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    else {
        eprintln!(
            "schemathesis: skipped: SCHEMATHESIS does not name the schemathesis binary \
             (.ci/run installs it in target/schemathesis-venv and sets it)"
        );
        return;
    };
    let max_examples = setting("SCHEMATHESIS_MAX_EXAMPLES", 10);
    let max_time = setting("SCHEMATHESIS_MAX_TIME", 90);
    let env = Env::start_secured().await;
    let base = &env.gw.base_url;
    let token = backend_client::token(
        &env.http,
        base,
        backend_client::DEMO_CLIENT_ID,
        backend_client::DEMO_KEY_ID,
        backend_client::DEMO_PRIVATE_KEY,
        "system/*.cruds",
    )
    .await
    .expect("a system/*.cruds token");
    let token = token["access_token"].as_str().expect("an access token").to_owned();

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("fhir-gateway-schemathesis-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the run");
    let report = dir.join("report.json");
    let stdout = std::fs::File::create(dir.join("stdout.txt")).expect("the output file");
    let stderr = std::fs::File::create(dir.join("stderr.txt")).expect("the error file");
    // Run in the temporary directory: schemathesis keeps its caches (`.hypothesis`,
    // `.schemathesis`) in the working directory.
    let mut child = Command::new(binary)
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base.as_str()])
        .arg("--checks")
        .arg("not_a_server_error,response_schema_conformance")
        // Readiness answers 503 by design once a vendor's budget is spent, which a fuzzing run of
        // thousands of requests does to DrChrono's 500 calls an hour.
        .args(["--exclude-path", "/readyz"])
        .arg("--max-examples")
        .arg(max_examples.to_string())
        .arg("--max-time")
        .arg(max_time.to_string())
        .arg("--workers")
        .arg("1")
        .arg("--request-timeout")
        .arg("30")
        .arg("--seed")
        .arg("20260615")
        .arg("--suppress-health-check")
        .arg("all")
        .arg("--generation-database")
        .arg("none")
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("--report")
        .arg("json")
        .arg("--report-json-path")
        .arg(&report)
        .arg("--no-color")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("schemathesis starts");
    // Poll, so the gateway (on this test's runtime) keeps serving while schemathesis runs.
    let hard_limit = Duration::from_secs(max_time * 2 + 60);
    let started = Instant::now();
    let mut stopped = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > hard_limit => {
                let _ = child.kill();
                stopped = true;
                break;
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => panic!("waiting for schemathesis: {e}"),
        }
    }
    let status = child.wait().expect("schemathesis ends");

    let output = std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    let summary: Value = std::fs::read(report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let figure = |pointer: &str| summary.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let (selected, tested) = (figure("/operations/selected"), figure("/operations/tested"));
    let (generated, failures) = (figure("/test_cases/generated"), figure("/test_cases/unique_failures"));
    let errored = summary["errors"].as_array().map_or(0, Vec::len);
    eprintln!(
        "schemathesis: {tested} of {selected} operations tested, {generated} examples, {failures} failures, \
         {errored} errors, in {}s ({status}; files in {})",
        summary["running_time"],
        dir.display()
    );
    if let Some(list) = summary["failures"].as_array() {
        for f in list {
            eprintln!("  {} ({}): {}", f["title"], f["count"], f["operations"]);
        }
    }
    let passed = !stopped && status.success() && failures == 0 && errored == 0 && tested > 0;
    assert!(
        passed,
        "schemathesis {}:\n{}\n{}",
        if stopped {
            "was stopped past its time budget"
        } else {
            "found problems"
        },
        tail(&output, 200),
        tail(&errors, 40)
    );
    let _ = std::fs::remove_dir_all(dir);
}
