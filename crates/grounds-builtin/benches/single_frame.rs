//! The builtin trainer on its own, without grounds around it: `cargo bench -p grounds-builtin`.
//!
//! Writes an `/opt/ml` tree holding a generated frame (numbers of different scales, string categories of
//! a few to a few hundred levels, values missing in both), then times [`grounds_builtin::run`] on it: the
//! CSV read, preprocessing, five folds of logistic regression and a refit, `model.json` and
//! `result_df.parquet`. What `make bench` measures end to end (packaging, the entry, the result zip)
//! this leaves out, so a change to the trainer shows here alone. `BENCH_ROWS` (default `100000 300000`)
//! and `BENCH_RUNS` (default 5) set the sizes and the runs per size; the median and range are printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use grounds_job::contract::{JobConfig, Layout, ResourceConfig};
use grounds_job::spec::{BuiltinKind, BuiltinSpec, ModelKind};

/// A small generator (xorshift) so the frame is the same on every run and needs no crate.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `rows` rows of: an amount (thousands), a count, a ratio, a time stamp, two string columns of 6 and 300
/// levels, and a label that depends on all of them; about 3% of values missing.
fn write_frame(path: &Path, rows: usize) -> std::io::Result<()> {
    let mut draws = Draws(0x9e37_79b9_7f4a_7c15);
    let mut text = String::with_capacity(rows * 64);
    text.push_str("amount,count,ratio,stamp,colour,shop,label\n");
    for _ in 0..rows {
        let amount = draws.unit() * 5000.0;
        let count = (draws.unit() * 40.0).floor();
        let ratio = draws.unit();
        let stamp = 1.6e9 + draws.unit() * 1e8;
        let colour = draws.next() % 6;
        let shop = ((draws.unit().powi(3)) * 300.0) as u64;
        let z = amount / 2500.0 - 1.0 + (count - 20.0) / 20.0 + ratio - 0.5 + colour as f64 * 0.2
            - 0.5
            + (shop % 7) as f64 * 0.1
            - 0.3;
        let label = u8::from(draws.unit() < 1.0 / (1.0 + (-z).exp()));
        let missing = |draws: &mut Draws| draws.unit() < 0.03;
        let mut field = |value: String, draws: &mut Draws| {
            if !missing(draws) {
                text.push_str(&value);
            }
            text.push(',');
        };
        field(format!("{amount:.2}"), &mut draws);
        field(format!("{count}"), &mut draws);
        field(format!("{ratio:.4}"), &mut draws);
        field(format!("{stamp:.0}"), &mut draws);
        field(format!("c{colour}"), &mut draws);
        field(format!("shop{shop}"), &mut draws);
        let _ = writeln!(text, "{label}");
    }
    std::fs::write(path, text)
}

fn median_and_range(mut seconds: Vec<f64>) -> (f64, f64, f64) {
    seconds.sort_by(f64::total_cmp);
    let middle = seconds.len() / 2;
    let median = if seconds.len().is_multiple_of(2) {
        (seconds[middle - 1] + seconds[middle]) / 2.0
    } else {
        seconds[middle]
    };
    (median, seconds[0], seconds[seconds.len() - 1])
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; run any other way (`cargo test --benches`), a small smoke run.
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let sizes: Vec<usize> = if smoke {
        vec![2000]
    } else {
        std::env::var("BENCH_ROWS")
            .unwrap_or_else(|_| "100000 300000".into())
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?
    };
    let runs: usize = if smoke {
        1
    } else {
        std::env::var("BENCH_RUNS").map_or(Ok(5), |v| v.parse())?
    };
    let spec = BuiltinSpec {
        kind: BuiltinKind::SingleFrame,
        label: "label".into(),
        features: None,
        model: ModelKind::LogisticRegression,
        folds: Some(5),
        test_size: None,
        seed: None,
    };
    // The trainer prints its metric lines as it goes; the table comes after them.
    let mut table = vec![
        "| rows | median s | range s | µs per row |".to_string(),
        "|---:|---:|---:|---:|".to_string(),
    ];
    for rows in sizes {
        let root = tempfile::tempdir()?;
        let layout = Layout::new(root.path());
        let training = layout.channel_dir("training");
        std::fs::create_dir_all(&training)?;
        write_frame(&training.join("frame.csv"), rows)?;
        let config = JobConfig {
            hyperparameters: BTreeMap::from([("max_iter".to_string(), "1000".to_string())]),
            input_data_config: BTreeMap::new(),
            resource_config: ResourceConfig::for_host(1, 1, "bench"),
        };
        let mut seconds = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            grounds_builtin::run(&spec, &layout, &config)?;
            seconds.push(started.elapsed().as_secs_f64());
        }
        let (median, low, high) = median_and_range(seconds);
        table.push(format!(
            "| {rows} | {median:.3} | {low:.3}–{high:.3} | {:.2} |",
            median / rows as f64 * 1e6
        ));
    }
    println!("\n{}", table.join("\n"));
    Ok(())
}
