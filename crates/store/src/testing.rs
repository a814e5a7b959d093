//! A real PostgreSQL server for tests: `initdb` into a temporary directory, started on a free
//! loopback port, stopped (and its directory removed) when dropped.
//!
//! The server binaries come from `$PG_BINDIR`, else `pg_config --bindir`, else
//! `/usr/lib/postgresql/<newest>/bin` (Debian's `postgresql` package). PostgreSQL refuses to run
//! as root: as root, the server runs as the `postgres` user the package creates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running throw-away PostgreSQL server.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    root: bool,
}

fn bindir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (apt-get install postgresql)".to_owned())?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "PostgreSQL server binaries not found (apt-get install postgresql)".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when this process is root.
fn as_server_user(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

impl TempPostgres {
    /// Initialises and starts a server; waits until it accepts connections.
    pub fn start() -> Result<Self, String> {
        let bin = bindir()?;
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("fhir-gateway-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err("chown to the postgres user failed".to_owned());
            }
        }
        let out = as_server_user(&bin.join("initdb"), root)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "gateway", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| e.to_string())?;
        if root {
            let _ = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path().join("server.log"))
                .status();
        }
        let child = as_server_user(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        let mut server = Self {
            dir,
            child: Some(child),
            port,
            bin: bin.clone(),
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
                return Err(format!("postgres exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                return Err("postgres did not accept connections within 30 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = Command::new(bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "gateway", "gateway"])
            .output()
            .map_err(|e| format!("createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("createdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(server)
    }

    /// The URL of its `gateway` database.
    pub fn url(&self) -> String {
        format!("postgres://gateway@127.0.0.1:{}/gateway", self.port)
    }

    /// A URL of another, new database on the same server.
    pub fn new_database(&self, name: &str) -> Result<String, String> {
        let bin = bindir()?;
        let out = Command::new(bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "gateway", name])
            .output()
            .map_err(|e| format!("createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("createdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(format!("postgres://gateway@127.0.0.1:{}/{name}", self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A fast shutdown (clients still connected are disconnected), by the server's own tool:
            // the child may be `runuser`, which a signal would not pass on reliably.
            let _ = as_server_user(&self.bin.join("pg_ctl"), self.root)
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "fast", "-w", "-t", "20", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
