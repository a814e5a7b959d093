//! The practice in a child process, for the items that watch the gateway's own memory (7 `rss`,
//! 8 `auth-flood`): the hidden `serve-child` subcommand, the parent's handle on it, and the
//! child's `VmRSS`/`VmHWM` from `/proc/<pid>/status`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use crate::practice::{Cache, Practice};

/// The hidden `serve-child` subcommand: the demo practice (SMART on FHIR on) with a cache bound of
/// `cache_mb` MiB; prints `{"base", "token", "pid"}` on one line, serves until its stdin closes.
pub async fn serve_child(cache_mb: u64) -> Result<()> {
    let p = Practice::start(Cache::Bound(cache_mb * 1024 * 1024)).await?;
    let line = json!({"base": p.base, "token": p.token, "pid": std::process::id()});
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    })
    .await?;
    p.stop();
    Ok(())
}

/// A `serve-child` process; closing its stdin (drop) ends it. Blocking: spawn and drop it on a
/// blocking thread (`tokio::task::spawn_blocking`).
pub struct ChildGateway {
    child: Child,
    /// `http://127.0.0.1:PORT` of the child's gateway.
    pub base: String,
    /// A `demo-backend` access token (`system/*.rs`) the child got at start-up.
    pub token: String,
}

impl ChildGateway {
    pub fn spawn(cache_mb: u64) -> Result<ChildGateway> {
        let exe = std::env::current_exe().context("the bench binary's path")?;
        let mut child = Command::new(exe)
            .args(["serve-child", "--cache-mb", &cache_mb.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the child gateway")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: Value = serde_json::from_str(line.trim()).map_err(|e| {
            let _ = child.kill();
            anyhow!("the child gateway did not start ({e}): `{}`", line.trim())
        })?;
        Ok(ChildGateway {
            base: v["base"].as_str().context("no base")?.to_owned(),
            token: v["token"].as_str().context("no token")?.to_owned(),
            child,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's memory now.
    pub fn status(&self) -> Result<Memory> {
        Memory::of(self.pid())
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

impl Memory {
    /// From `/proc/<pid>/status`.
    pub fn of(pid: u32) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = |key: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(key))
                .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
            let n: u64 = line
                .trim_start_matches(key)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(n * 1024)
        };
        Ok(Memory {
            rss: kb("VmRSS:")?,
            hwm: kb("VmHWM:")?,
        })
    }
}
