//! Mapping throughput: DrChrono patient JSON → FHIR Patient JSON, per second.
//!
//! `cargo bench -p adapter-drchrono --bench mapping` prints one table. Each figure is the median of
//! several runs over the demo practice's patients (as the simulator serves them, verbose), and the
//! baseline — parsing the same bytes into `serde_json::Value` and writing them back, with no
//! mapping — is measured in the same run, so the ratio says what the mapping itself costs.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use adapter::MapCtx;
use adapter_drchrono::{map, wire};
use chrono::{NaiveDate, TimeZone, Utc};
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};

const RUNS: usize = 9;
const COPIES: usize = 25;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn measure(label: &str, inputs: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> usize) -> (String, f64, f64) {
    // Warm up once, then time whole passes over the inputs.
    let mut bytes_out = 0usize;
    for i in inputs {
        bytes_out += f(i);
    }
    let rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for i in inputs {
                black_box(f(i));
            }
            inputs.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    (label.to_owned(), median(rates), bytes_out as f64 / inputs.len() as f64)
}

fn main() {
    let anchor = NaiveDate::from_ymd_opt(2026, 6, 15).expect("valid date");
    let sim = DrChronoSim::new(DrChronoSimConfig::demo(2026, anchor));
    let data = sim.dataset();
    let one_copy: Vec<Vec<u8>> = data
        .patients
        .iter()
        .map(|p| serde_json::to_vec(p).expect("serialisable"))
        .collect();
    let inputs: Vec<Vec<u8>> = (0..COPIES).flat_map(|_| one_copy.iter().cloned()).collect();
    let zones: HashMap<i64, chrono_tz::Tz> = data
        .doctors
        .iter()
        .filter_map(|d| Some((d.id, d.timezone.parse().ok()?)))
        .collect();
    let ctx = map::DrCtx {
        base: MapCtx::new(
            Utc.from_utc_datetime(&anchor.and_hms_opt(12, 0, 0).expect("valid time")),
            chrono_tz::UTC,
        ),
        doctor_tz: zones,
    };

    let baseline = measure(
        "baseline: parse + write the same JSON (serde_json::Value)",
        &inputs,
        |bytes| {
            let v: serde_json::Value = serde_json::from_slice(bytes).expect("json");
            serde_json::to_vec(&v).expect("json").len()
        },
    );
    let parse = measure("parse into DrChrono wire::Patient", &inputs, |bytes| {
        let p: wire::Patient = serde_json::from_slice(bytes).expect("wire");
        black_box(p);
        0
    });
    let full = measure("wire JSON → FHIR Patient → FHIR JSON (fhirbolt)", &inputs, |bytes| {
        let p: wire::Patient = serde_json::from_slice(bytes).expect("wire");
        let fhir = map::patient(&p, &ctx).expect("maps");
        let resource = adapter::Resource::Patient(Box::new(fhir));
        fhirbolt::json::to_vec(&resource, None).expect("fhir json").len()
    });

    let avg_in = inputs.iter().map(Vec::len).sum::<usize>() as f64 / inputs.len() as f64;
    println!(
        "DrChrono patient mapping throughput ({} patients x {COPIES} copies, median of {RUNS} runs, 1 thread)",
        one_copy.len()
    );
    println!("average input {avg_in:.0} bytes of DrChrono JSON per patient\n");
    println!("| step | patients/s | output bytes/patient | vs baseline |");
    println!("|---|---:|---:|---:|");
    for (label, rate, out) in [&baseline, &parse, &full] {
        let out = if *out > 0.0 {
            format!("{out:.0}")
        } else {
            "—".to_owned()
        };
        println!("| {label} | {rate:.0} | {out} | {:.2}x |", rate / baseline.1);
    }
}
