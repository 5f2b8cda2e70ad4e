//! The figures a run produces: each a value beside its baseline, as a ratio, and the
//! table printed at the end.

use hdrhistogram::Histogram;

/// One figure of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Figure {
    bench: String,
    metric: String,
    value: f64,
    unit: String,
    baseline: String,
    baseline_value: f64,
    /// `value / baseline_value`.
    ratio: f64,
    target: Option<String>,
    met: Option<bool>,
}

pub(crate) fn figure(
    bench: &str,
    metric: &str,
    value: f64,
    unit: &str,
    baseline: &str,
    baseline_value: f64,
    target: Option<(&str, bool)>,
) -> Figure {
    Figure {
        bench: bench.into(),
        metric: metric.into(),
        value,
        unit: unit.into(),
        baseline: baseline.into(),
        baseline_value,
        ratio: if baseline_value == 0.0 {
            f64::NAN
        } else {
            value / baseline_value
        },
        target: target.map(|t| t.0.to_owned()),
        met: target.map(|t| t.1),
    }
}

pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The table of every figure, as the run ends.
pub(crate) fn print_table(figures: &[Figure]) {
    println!(
        "{:<52} {:<34} {:>12} {:>12} {:>8}  target",
        "benchmark", "metric", "value", "baseline", "ratio"
    );
    for f in figures {
        println!(
            "{:<52} {:<34} {:>9.2} {:<2} {:>12.2} {:>8.2}  {}",
            f.bench.chars().take(52).collect::<String>(),
            f.metric.chars().take(34).collect::<String>(),
            f.value,
            f.unit.chars().take(2).collect::<String>(),
            f.baseline_value,
            f.ratio,
            match (&f.target, f.met) {
                (Some(t), Some(true)) => format!("{t}: met"),
                (Some(t), _) => format!("{t}: NOT met"),
                _ => String::new(),
            }
        );
    }
}
