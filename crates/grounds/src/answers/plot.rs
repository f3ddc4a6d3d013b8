//! Metric curves as pictures (`results plot`, with plotters) and as one-line sparklines (`results show`).
//! Text in the pictures is drawn with DejaVu Sans built into grounds, so a PNG renders the same on a bare
//! machine without fonts; an SVG names the family and leaves the glyphs to the viewer.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::job::metrics::Series;
use crate::store::results::Stored;

/// What the horizontal axis of a plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// The place of each value in its series: 1, 2, 3, …
    Step,
    /// Seconds since the job started.
    Time,
}

/// What a plot shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drawn {
    /// The metrics drawn, one panel each.
    pub metrics: Vec<String>,
    /// The lines drawn over all panels (one per result that has the metric).
    pub series: usize,
    /// The name of each result in the legends, in the order given.
    pub labels: Vec<String>,
}

const FAMILY: &str = "sans-serif";
const PANEL: (u32, u32) = (620, 340);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The bundled font, registered once for plotters' text.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("the built-in font (DejaVu Sans) could not be loaded")
    }
}

/// How a result is named in a legend: its sweep member's or pipeline step's name where the id carries
/// one (`<task>-<name>-<stamp>`), else its id; ids when the names would not tell results apart.
pub fn labels(stored: &[Stored]) -> Vec<String> {
    let names: Vec<String> = stored
        .iter()
        .map(|s| {
            let id = &s.job.id;
            let base = id
                .len()
                .checked_sub(crate::config::task::JOB_SUFFIX_LEN)
                .and_then(|end| id.get(..end))
                .unwrap_or(id);
            let name = base
                .strip_prefix(&format!("{}-", s.job.task.name))
                .unwrap_or("");
            match &s.job.pipeline {
                Some(step) if name.is_empty() => step.step.clone(),
                _ if name.is_empty() => id.clone(),
                _ => name.to_string(),
            }
        })
        .collect();
    let distinct: BTreeSet<&String> = names.iter().collect();
    if distinct.len() == names.len() {
        names
    } else {
        stored.iter().map(|s| s.job.id.clone()).collect()
    }
}

/// The metrics to draw: those asked for (each must be in some result), else every metric with more than
/// one value in some result, else every metric.
fn chosen(stored: &[Stored], wanted: &[String]) -> anyhow::Result<Vec<String>> {
    let all: BTreeSet<&String> = stored.iter().flat_map(|s| s.metrics.0.keys()).collect();
    if all.is_empty() {
        bail!(
            "{} no metrics to plot (a job reports them as ###METRIC###name:value### lines or by [metrics] definitions)",
            if stored.len() == 1 { "the result has" } else { "the results have" }
        );
    }
    if !wanted.is_empty() {
        for name in wanted {
            if !all.contains(name) {
                bail!(
                    "no result given has the metric `{name}`; they have: {}",
                    all.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        return Ok(wanted.to_vec());
    }
    let curves: Vec<String> = all
        .iter()
        .filter(|name| {
            stored
                .iter()
                .any(|s| s.metrics.0.get(**name).is_some_and(|m| m.series.len() > 1))
        })
        .map(|s| s.to_string())
        .collect();
    Ok(if curves.is_empty() {
        all.into_iter().cloned().collect()
    } else {
        curves
    })
}

/// The finite points of a series against the chosen axis.
fn points(series: &Series, axis: Axis, started: chrono::DateTime<chrono::Utc>) -> Vec<(f64, f64)> {
    series
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.value.is_finite())
        .map(|(i, s)| {
            let x = match axis {
                Axis::Step => (i + 1) as f64,
                Axis::Time => (s.timestamp - started).num_milliseconds() as f64 / 1000.0,
            };
            (x, s.value)
        })
        .collect()
}

/// A range that shows `values`, widened when they are all one number.
fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return 0.0..1.0;
    }
    let pad = if high > low {
        (high - low) * 0.05
    } else {
        low.abs().max(1.0) * 0.05
    };
    (low - pad)..(high + pad)
}

/// Draws the metrics of `stored` into `path` (`.png` or `.svg`), whole or not at all.
pub fn draw(
    stored: &[Stored],
    wanted: &[String],
    axis: Axis,
    path: &Path,
) -> anyhow::Result<Drawn> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let svg = match extension.as_deref() {
        Some("svg") => true,
        Some("png") => false,
        _ => bail!(
            "{}: give a picture file ending in .png or .svg, e.g. -o curves.png",
            path.display()
        ),
    };
    register_font()?;
    let metrics = chosen(stored, wanted)?;
    let labels = labels(stored);
    let columns = if metrics.len() > 1 { 2 } else { 1 };
    let rows = metrics.len().div_ceil(columns);
    let size = (PANEL.0 * columns as u32, PANEL.1 * rows as u32);
    let series;
    let bytes = if svg {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
            series = panels(&root, stored, &metrics, &labels, axis, (rows, columns))?;
            root.present()
                .map_err(|e| anyhow::anyhow!("drawing the plot: {e}"))?;
        }
        text.into_bytes()
    } else {
        let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
            series = panels(&root, stored, &metrics, &labels, axis, (rows, columns))?;
            root.present()
                .map_err(|e| anyhow::anyhow!("drawing the plot: {e}"))?;
        }
        encode_png(&pixels, size)?
    };
    crate::store::results::export::write_file(path, &bytes)
        .with_context(|| format!("writing the plot {}", path.display()))?;
    Ok(Drawn {
        metrics,
        series,
        labels,
    })
}

fn encode_png(pixels: &[u8], (width, height): (u32, u32)) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the PNG")?;
    writer
        .write_image_data(pixels)
        .context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(bytes)
}

/// One panel per metric; returns how many lines were drawn.
fn panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    stored: &[Stored],
    metrics: &[String],
    labels: &[String],
    axis: Axis,
    grid: (usize, usize),
) -> anyhow::Result<usize> {
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing the plot: {e}");
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let areas = root.split_evenly(grid);
    let mut lines = 0;
    for (metric, area) in metrics.iter().zip(areas.iter()) {
        let curves: Vec<(usize, Vec<(f64, f64)>)> = stored
            .iter()
            .enumerate()
            .filter_map(|(k, s)| {
                let series = s.metrics.0.get(metric)?;
                let points = points(series, axis, s.job.started_at);
                (!points.is_empty()).then_some((k, points))
            })
            .collect();
        let xs = range(curves.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)));
        let ys = range(curves.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)));
        // Steps are whole numbers: ticks only there (never 1.5); seconds get plotters' own.
        let ticks = match axis {
            Axis::Step => whole_ticks(&xs, 10),
            Axis::Time => RangedCoordf64::from(xs.clone()).key_points(10),
        };
        let decimals = decimals_for(&ticks);
        let xs = Ticked {
            inner: RangedCoordf64::from(xs),
            ticks,
        };
        // The legend has a strip of its own below the chart, so it never covers a curve.
        let named: Vec<(usize, String)> = curves
            .iter()
            .map(|(k, _)| (*k, labels.get(*k).cloned().unwrap_or_default()))
            .collect();
        let (width, height) = area.dim_in_pixel();
        let per_row = (width as usize / LEGEND_ENTRY_WIDTH).max(1);
        let legend_rows = named.len().div_ceil(per_row) as u32;
        let legend_height = (legend_rows * LEGEND_ROW_HEIGHT + 6).min(height / 2);
        let (chart_area, legend_area) = area.split_vertically(height - legend_height);
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(metric, (FAMILY, 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(xs, ys)
            .map_err(|e| failed(&e))?;
        let tick_label = |x: &f64| format!("{:.*}", decimals, x + 0.0);
        chart
            .configure_mesh()
            .x_desc(match axis {
                Axis::Step => "step",
                Axis::Time => "seconds",
            })
            .x_label_formatter(&tick_label)
            .label_style((FAMILY, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| failed(&e))?;
        for (k, points) in curves {
            let color = PALETTE[k % PALETTE.len()];
            let style = ShapeStyle::from(&color).stroke_width(2);
            let single = points.len() == 1;
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(|e| failed(&e))?;
            if single {
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .map_err(|e| failed(&e))?;
            }
            lines += 1;
        }
        for (place, (k, label)) in named.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let x = 60 + (place % per_row * LEGEND_ENTRY_WIDTH) as i32;
            let y = 4 + (place / per_row) as i32 * LEGEND_ROW_HEIGHT as i32 + 8;
            legend_area
                .draw(&PathElement::new(
                    vec![(x, y), (x + 16, y)],
                    ShapeStyle::from(&color).stroke_width(2),
                ))
                .map_err(|e| failed(&e))?;
            legend_area
                .draw(&Text::new(
                    label.clone(),
                    (x + 22, y - 7),
                    (FAMILY, 12).into_font().color(&BLACK),
                ))
                .map_err(|e| failed(&e))?;
        }
    }
    Ok(lines)
}

/// A linear axis with the ticks given: whole steps only, or plotters' own for seconds.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// How many decimals tell ticks apart: none for whole numbers, else as many as their spacing needs
/// (0.25 apart: two), so that 0.30000000000000004 shows as 0.3.
fn decimals_for(ticks: &[f64]) -> usize {
    let spacing = ticks
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs())
        .fold(f64::INFINITY, f64::min);
    if !spacing.is_finite() || spacing <= 0.0 {
        return if ticks.iter().all(|x| x.fract() == 0.0) {
            0
        } else {
            2
        };
    }
    (0..=9)
        .find(|&places| {
            let scale = 10f64.powi(places as i32);
            (spacing * scale - (spacing * scale).round()).abs() < 1e-6
                && ticks
                    .iter()
                    .all(|x| (x * scale - (x * scale).round()).abs() < 1e-6)
        })
        .unwrap_or(9)
}

/// The width of one legend entry (its line and name), and the height of a row of them, in pixels.
const LEGEND_ENTRY_WIDTH: usize = 200;
const LEGEND_ROW_HEIGHT: u32 = 18;

/// Ticks for whole steps in `range`: every whole number, or every 2nd, 5th, 10th, 20th, … so that
/// there are at most `most`.
fn whole_ticks(range: &std::ops::Range<f64>, most: usize) -> Vec<f64> {
    let (low, high) = (range.start.ceil(), range.end.floor());
    if !(low.is_finite() && high.is_finite()) || high < low {
        return Vec::new();
    }
    let span = high - low;
    let mut stride = 1.0_f64;
    for factor in [2.0, 2.5, 2.0].iter().cycle() {
        if span / stride < most as f64 {
            break;
        }
        stride *= factor;
    }
    let first = (low / stride).ceil() * stride;
    (0..)
        // `+ 0.0` makes a -0 (the first tick of a range that starts below zero) a 0.
        .map(|i| first + i as f64 * stride + 0.0)
        .take_while(|x| *x <= high)
        .collect()
}

/// A series as one line of block characters, at most `width` long (longer series are averaged into
/// buckets); values that are not finite show as a space.
pub fn sparkline(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let buckets = values.len().min(width);
    let points: Vec<f64> = (0..buckets)
        .map(|b| {
            let start = b * values.len() / buckets;
            let end = ((b + 1) * values.len() / buckets).max(start + 1);
            let finite: Vec<f64> = values[start..end]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().sum::<f64>() / finite.len() as f64
            }
        })
        .collect();
    let finite = points.iter().copied().filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    points
        .iter()
        .map(|v| {
            if !v.is_finite() {
                ' '
            } else if high > low {
                let level = ((v - low) / (high - low) * 7.0).round() as usize;
                BARS[level.min(7)]
            } else {
                BARS[3]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_between_the_lowest_and_highest_value() {
        assert_eq!(
            sparkline(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 20),
            "▁▂▃▄▅▆▇█"
        );
        assert_eq!(sparkline(&[1.0, f64::NAN, 3.0], 10), "▁ █");
        assert_eq!(sparkline(&[2.0, 2.0], 10), "▄▄");
        // 100 values into 10 buckets, still rising.
        let rising: Vec<f64> = (0..100).map(f64::from).collect();
        let line = sparkline(&rising, 10);
        assert_eq!(line.chars().count(), 10);
        assert!(line.starts_with('▁') && line.ends_with('█'), "{line}");
    }

    #[test]
    fn whole_steps_get_whole_ticks_at_most_as_many_as_asked() {
        assert_eq!(whole_ticks(&(0.9..3.1), 10), vec![1.0, 2.0, 3.0]);
        assert_eq!(whole_ticks(&(0.95..1.05), 10), vec![1.0]);
        assert_eq!(whole_ticks(&(1.2..1.8), 10), Vec::<f64>::new());
        let many = whole_ticks(&(-4.5..104.5), 10);
        assert!(many.len() <= 10 && many.len() >= 5, "{many:?}");
        assert!(many.iter().all(|x| x.fract() == 0.0), "{many:?}");
        assert_eq!(many, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    }

    #[test]
    fn tick_labels_have_the_decimals_their_spacing_needs() {
        assert_eq!(decimals_for(&[1.0, 2.0, 3.0]), 0);
        assert_eq!(decimals_for(&[0.0, 0.25, 0.5]), 2);
        assert_eq!(decimals_for(&[0.1, 0.2, 0.30000000000000004]), 1);
        assert_eq!(decimals_for(&[5.0]), 0);
    }

    #[test]
    fn a_png_renders_with_the_bundled_font() {
        register_font().unwrap();
        let mut pixels = vec![0u8; 200 * 60 * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (200, 60)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            root.draw_text("loss", &(FAMILY, 30).into_font().color(&BLACK), (10, 10))
                .unwrap();
            root.present().unwrap();
        }
        // Glyphs were drawn: some pixels are no longer white.
        let inked = pixels.chunks(3).filter(|p| p[0] < 128).count();
        assert!(inked > 50, "{inked} dark pixels");
        let png = encode_png(&pixels, (200, 60)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
