//! The `fhir-gateway` binary refuses to start on a bad configuration, naming the setting, and
//! refuses to serve without authentication unless told to.

use std::process::Command;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fhir-gw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-gateway"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const GOOD: &str = r#"
[drchrono]
base_url = "http://127.0.0.1:9"
client_id = "c"
client_secret = "s"
refresh_token = "r"
redirect_uri = "http://localhost/cb"
"#;

#[test]
fn a_bad_setting_is_named_at_start_up() {
    let bad = write("bad.toml", &GOOD.replace("http://127.0.0.1:9", "not a url"));
    let (ok, stderr) = run(&["serve", "--config", bad.to_str().unwrap(), "--insecure-no-auth"]);
    assert!(!ok);
    assert!(stderr.contains("drchrono.base_url"), "{stderr}");
    let tz = write("tz.toml", &format!("[fhir]\ntimezone = \"Mars/Olympus\"\n{GOOD}"));
    let (ok, stderr) = run(&["serve", "--config", tz.to_str().unwrap(), "--insecure-no-auth"]);
    assert!(!ok);
    assert!(stderr.contains("fhir.timezone"), "{stderr}");
    let (ok, stderr) = run(&["serve", "--config", "/nonexistent/gateway.toml"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/gateway.toml"), "{stderr}");
}

#[test]
fn serve_refuses_to_run_without_auth_unless_told() {
    let good = write("good.toml", GOOD);
    let (ok, stderr) = run(&["serve", "--config", good.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("auth.mode") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\"s\"") && !stderr.contains("refresh_token = "),
        "no secrets in the message"
    );
}

#[test]
fn the_openapi_command_prints_the_committed_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-gateway"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../openapi/fhir-gateway.openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(
        printed == committed,
        "`fhir-gateway openapi` differs from openapi/fhir-gateway.openapi.json (regenerate it)"
    );
}
