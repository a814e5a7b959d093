//! The load generator: Debian's `wrk`, spawned per load run, and a parser of its `--latency` report.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The Debian package that provides the `wrk` binary.
pub const PACKAGE: &str = "wrk";

/// What one `wrk` run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkReport {
    /// `Requests/sec:` (completed requests over the run's wall time).
    pub requests_per_sec: f64,
    /// The 50% line of the latency distribution.
    pub p50: Duration,
    /// The 99% line of the latency distribution.
    pub p99: Duration,
    /// `N requests in …`.
    pub requests: u64,
    /// `Non-2xx or 3xx responses: N` (0 when the line is absent).
    pub non_2xx: u64,
    /// The sum of `Socket errors: connect a, read b, write c, timeout d` (0 when absent).
    pub socket_errors: u64,
}

/// `wrk`'s version line (`wrk debian/4.1.0-3+b2 [epoll] …`), or an error naming the package when
/// the binary is missing.
pub fn version() -> Result<String> {
    // `wrk -v` prints the banner and the usage, and exits with a failure status.
    let out = Command::new("wrk").arg("-v").output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run `wrk` ({e}): the load generator is missing; install the Debian package `{PACKAGE}` \
             (apt-get install -y {PACKAGE})"
        )
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("wrk "))
        .unwrap_or("wrk (unknown version)");
    // Drop the copyright notice.
    Ok(line.split(" Copyright").next().unwrap_or(line).trim().to_owned())
}

/// Runs `wrk -t2 -c<conns> -d<secs>s --latency -H "Authorization: Bearer <token>" <url>` (blocking).
pub fn run(url: &str, connections: u32, seconds: u64, token: Option<&str>) -> Result<WrkReport> {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    if let Some(token) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `wrk` (install the Debian package `{PACKAGE}`)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&stdout).with_context(|| format!("unexpected wrk output:\n{stdout}"))
}

/// Parses the report `wrk --latency` prints.
pub fn parse(output: &str) -> Result<WrkReport> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in output.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        match first {
            "Requests/sec:" => rps = Some(number(words.next().context("Requests/sec without a value")?)?),
            "50%" => p50 = Some(duration(words.next().context("50% without a value")?)?),
            "99%" => p99 = Some(duration(words.next().context("99% without a value")?)?),
            _ if line.starts_with("Non-2xx or 3xx responses:") => {
                non_2xx = number(line.rsplit(' ').next().unwrap_or(""))? as u64;
            }
            _ if line.starts_with("Socket errors:") => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                socket_errors = line
                    .trim_start_matches("Socket errors:")
                    .split(',')
                    .filter_map(|part| part.split_whitespace().nth(1))
                    .map(|n| n.parse::<u64>().unwrap_or(0))
                    .sum();
            }
            _ if words.next() == Some("requests") && words.next() == Some("in") => {
                requests = Some(
                    first
                        .parse::<u64>()
                        .with_context(|| format!("request count `{first}`"))?,
                );
            }
            _ => {}
        }
    }
    Ok(WrkReport {
        requests_per_sec: rps.context("no `Requests/sec:` line")?,
        p50: p50.context("no 50% latency line (was --latency given?)")?,
        p99: p99.context("no 99% latency line (was --latency given?)")?,
        requests: requests.context("no `N requests in` line")?,
        non_2xx,
        socket_errors,
    })
}

fn number(s: &str) -> Result<f64> {
    s.parse::<f64>().with_context(|| format!("not a number: `{s}`"))
}

/// A wrk duration: `812.00us`, `1.23ms`, `2.50s`, `1.20m`, `1.00h`.
pub fn duration(s: &str) -> Result<Duration> {
    let units: [(&str, f64); 5] = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    for (suffix, scale) in units {
        if let Some(value) = s.strip_suffix(suffix) {
            let secs = number(value)? * scale;
            return Duration::try_from_secs_f64(secs).with_context(|| format!("bad duration `{s}`"));
        }
    }
    bail!("a duration without a unit: `{s}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `wrk -t2 -c32 -d5s --latency -H "Authorization: Bearer …" <gateway Patient URL>`
    /// (Debian wrk 4.1.0-3+b2).
    const SAMPLE: &str = include_str!("../testdata/wrk-latency.txt");

    /// The same report with failed responses and socket errors.
    const WITH_ERRORS: &str = "Running 2s test @ http://127.0.0.1:9/fhir/Patient/x
  2 threads and 128 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.61ms   30.02ms   1.02s    98.51%
    Req/Sec     5.43k     1.21k    7.01k    67.50%
  Latency Distribution
     50%    9.10ms
     75%   12.87ms
     90%   15.30ms
     99%  101.26ms
  21662 requests in 2.00s, 45.11MB read
  Socket errors: connect 0, read 3, write 0, timeout 12
  Non-2xx or 3xx responses: 17
Requests/sec:  10818.37
Transfer/sec:     22.53MB
";

    #[test]
    fn parses_a_captured_report() {
        let r = parse(SAMPLE).unwrap();
        assert!(r.requests_per_sec > 0.0);
        assert!(r.requests > 0);
        assert!(r.p50 > Duration::ZERO && r.p99 >= r.p50, "{r:?}");
        assert_eq!((r.non_2xx, r.socket_errors), (0, 0));
    }

    #[test]
    fn parses_errors_and_units() {
        let r = parse(WITH_ERRORS).unwrap();
        assert_eq!(r.requests, 21662);
        assert!((r.requests_per_sec - 10818.37).abs() < 1e-9);
        assert_eq!(r.p50, Duration::from_micros(9100));
        assert_eq!(r.p99, Duration::from_micros(101_260));
        assert_eq!(r.non_2xx, 17);
        assert_eq!(r.socket_errors, 15);
    }

    #[test]
    fn durations() {
        assert_eq!(duration("812.00us").unwrap(), Duration::from_micros(812));
        assert_eq!(duration("1.50ms").unwrap(), Duration::from_micros(1500));
        assert_eq!(duration("2.00s").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("1.50m").unwrap(), Duration::from_secs(90));
        assert!(duration("12").is_err());
        assert!(duration("x.yms").is_err());
    }

    #[test]
    fn a_report_without_latency_lines_is_refused() {
        let without = SAMPLE
            .lines()
            .filter(|l| !l.contains('%') || l.contains("Stdev"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&without).is_err());
    }
}
