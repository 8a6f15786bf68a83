//! Inline SVG line charts for the console's history series (rates, lag): no script, no
//! external file, readable without colour (each series has its own dash pattern) and
//! without the picture (the caption names each series and its latest value).

use super::html::{escape, push_escaped};
use super::model::{Chart, Point, Series, Unit};
use super::pages::{duration, iso_utc, time_of_day, unit_value};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
/// Room for the value labels left of the plot and the time labels under it.
const LEFT: f64 = 76.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// Line colours, each at least 4.5:1 against the white plot, and told apart also by
/// `DASHES`, so no series is known by its colour alone.
const COLOURS: [&str; 8] = [
    "#1f5fbf", "#b3261e", "#1b7a3a", "#7a3fb0", "#9a4d00", "#00707a", "#4d4d4d", "#9c2a6e",
];
const DASHES: [&str; 4] = ["", "8 4", "2 3", "10 3 2 3"];

/// The SVG chart of `chart` inside a `<figure>` with a text caption.
pub fn render(chart: &Chart) -> String {
    let points: Vec<Vec<Point>> = chart.series.iter().map(finite_points).collect();
    let total: usize = points.iter().map(Vec::len).sum();
    let id = escape(&chart.id);
    let mut out = String::with_capacity(1024 + total * 16);
    out.push_str(&format!(
        "<figure class=\"chart\">\n<svg id=\"chart-{id}\" class=\"chart\" role=\"img\" \
         aria-labelledby=\"chart-{id}-title\" data-points=\"{total}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" preserveAspectRatio=\"xMidYMid meet\">\n\
         <title id=\"chart-{id}-title\">"
    ));
    push_escaped(&mut out, &chart.title);
    out.push_str("</title>\n");
    out.push_str(&format!(
        "<rect class=\"plot\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" \
         fill=\"#ffffff\" stroke=\"#767676\"/>\n"
    ));
    let Some(frame) = Frame::of(&points) else {
        out.push_str(&format!(
            "<text class=\"no-data\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#4d4d4d\" \
             font-size=\"16\">no data yet</text>\n</svg>\n<figcaption>",
            LEFT + PLOT_W / 2.0,
            TOP + PLOT_H / 2.0
        ));
        push_escaped(&mut out, &chart.title);
        out.push_str(": no data yet.</figcaption>\n</figure>\n");
        return out;
    };
    push_axes(&mut out, &frame, chart.unit);
    for (i, series) in points.iter().enumerate() {
        push_series(&mut out, &frame, i, series);
    }
    out.push_str("</svg>\n");
    push_caption(&mut out, chart, &points, &frame);
    out.push_str("</figure>\n");
    out
}

/// The series' points that can be drawn: NaN and infinities are gaps in a sample, not
/// values, and would poison the scale.
fn finite_points(series: &Series) -> Vec<Point> {
    series
        .points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// The ranges the chart maps onto the plot.
struct Frame {
    t_min: i64,
    t_max: i64,
    lo: f64,
    hi: f64,
}

impl Frame {
    fn of(series: &[Vec<Point>]) -> Option<Frame> {
        let mut all = series.iter().flatten();
        let &(t0, v0) = all.next()?;
        let mut frame = Frame {
            t_min: t0,
            t_max: t0,
            lo: v0,
            hi: v0,
        };
        for &(t, v) in all {
            frame.t_min = frame.t_min.min(t);
            frame.t_max = frame.t_max.max(t);
            frame.lo = frame.lo.min(v);
            frame.hi = frame.hi.max(v);
        }
        // Rates and lag read best from zero; a flat line at zero still needs a range.
        frame.lo = frame.lo.min(0.0);
        frame.hi = frame.hi.max(0.0);
        if frame.hi <= frame.lo {
            frame.hi = frame.lo + 1.0;
        }
        Some(frame)
    }

    /// Milliseconds the chart spans (i128: the ends may be any i64).
    fn span_ms(&self) -> i128 {
        i128::from(self.t_max) - i128::from(self.t_min)
    }

    fn x(&self, t: i64) -> f64 {
        let span = self.span_ms();
        if span == 0 {
            return LEFT + PLOT_W / 2.0;
        }
        let offset = i128::from(t) - i128::from(self.t_min);
        LEFT + (offset as f64 / span as f64) * PLOT_W
    }

    fn y(&self, v: f64) -> f64 {
        // Halved so that hi - lo stays finite even for values near f64::MAX.
        let range = self.hi / 2.0 - self.lo / 2.0;
        let fraction = ((v / 2.0 - self.lo / 2.0) / range).clamp(0.0, 1.0);
        TOP + (1.0 - fraction) * PLOT_H
    }
}

fn push_axes(out: &mut String, frame: &Frame, unit: Unit) {
    let mid = TOP + PLOT_H / 2.0;
    out.push_str(&format!(
        "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{mid}\" x2=\"{}\" y2=\"{mid}\" \
         stroke=\"#d0d0d0\" stroke-dasharray=\"2 4\"/>\n",
        LEFT + PLOT_W
    ));
    let label = |x: f64, y: f64, anchor: &str, text: &str| {
        format!(
            "<text class=\"axis\" x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\" fill=\"#333333\" \
             font-size=\"12\">{}</text>\n",
            escape(text)
        )
    };
    out.push_str(&label(
        LEFT - 6.0,
        TOP + 10.0,
        "end",
        &unit_value(unit, frame.hi),
    ));
    out.push_str(&label(
        LEFT - 6.0,
        TOP + PLOT_H,
        "end",
        &unit_value(unit, frame.lo),
    ));
    let time_y = TOP + PLOT_H + 16.0;
    let span_secs = u64::try_from(frame.span_ms() / 1000).unwrap_or(u64::MAX);
    if frame.span_ms() == 0 {
        out.push_str(&label(
            LEFT + PLOT_W / 2.0,
            time_y,
            "middle",
            &format!("{} UTC", time_of_day(frame.t_max)),
        ));
        return;
    }
    out.push_str(&label(LEFT, time_y, "start", &time_of_day(frame.t_min)));
    out.push_str(&label(
        LEFT + PLOT_W,
        time_y,
        "end",
        &format!("{} UTC", time_of_day(frame.t_max)),
    ));
    out.push_str(&label(
        LEFT + PLOT_W / 2.0,
        time_y + 16.0,
        "middle",
        &format!("span {}", duration(span_secs)),
    ));
}

fn push_series(out: &mut String, frame: &Frame, index: usize, points: &[Point]) {
    if points.is_empty() {
        return;
    }
    let colour = COLOURS[index % COLOURS.len()];
    let dash = DASHES[index % DASHES.len()];
    let dash_attr = if dash.is_empty() {
        String::new()
    } else {
        format!(" stroke-dasharray=\"{dash}\"")
    };
    out.push_str(&format!(
        "<polyline class=\"series\" data-series=\"{index}\" fill=\"none\" stroke=\"{colour}\" \
         stroke-width=\"2\"{dash_attr} points=\""
    ));
    for (i, &(t, v)) in points.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{:.1},{:.1}", frame.x(t), frame.y(v)));
    }
    out.push_str("\"/>\n");
    // A line through one point draws nothing: mark the latest point so it shows.
    if let Some(&(t, v)) = points.last() {
        out.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\n",
            frame.x(t),
            frame.y(v)
        ));
    }
}

fn push_caption(out: &mut String, chart: &Chart, points: &[Vec<Point>], frame: &Frame) {
    out.push_str("<figcaption><span class=\"chart-title\">");
    push_escaped(out, &chart.title);
    out.push_str(&format!(
        "</span>, {} to {}. Latest values:\n<ul class=\"legend\">\n",
        iso_utc(frame.t_min),
        iso_utc(frame.t_max)
    ));
    for (i, (series, finite)) in chart.series.iter().zip(points).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dash = DASHES[i % DASHES.len()];
        out.push_str(&format!(
            "<li><svg class=\"swatch\" aria-hidden=\"true\" focusable=\"false\" width=\"28\" \
             height=\"10\" viewBox=\"0 0 28 10\"><line x1=\"0\" y1=\"5\" x2=\"28\" y2=\"5\" \
             stroke=\"{colour}\" stroke-width=\"3\" stroke-dasharray=\"{dash}\"/></svg> \
             <span class=\"series-label\">"
        ));
        push_escaped(out, &series.label);
        out.push_str("</span>: ");
        match finite.last() {
            Some(&(_, v)) => out.push_str(&escape(&unit_value(chart.unit, v))),
            None => out.push_str("no data yet"),
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul></figcaption>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            id: "messages-in".to_string(),
            title: "Messages in".to_string(),
            unit: Unit::PerSecond,
            series,
        }
    }

    fn series(label: &str, points: Vec<Point>) -> Series {
        Series {
            label: label.to_string(),
            points,
        }
    }

    fn data_points(svg: &str) -> usize {
        let start = svg.find("data-points=\"").map(|i| i + 13).unwrap_or(0);
        let end = svg[start..].find('"').map(|i| i + start).unwrap_or(start);
        svg[start..end].parse().unwrap_or(usize::MAX)
    }

    #[test]
    fn follows_the_contract_markup() {
        let svg = render(&chart(vec![
            series("a", vec![(0, 1.0), (60_000, 2.0)]),
            series("b", vec![(0, 5.0), (30_000, 4.0), (60_000, 3.0)]),
        ]));
        assert!(svg.starts_with("<figure class=\"chart\">"));
        assert!(svg.contains(
            "<svg id=\"chart-messages-in\" class=\"chart\" role=\"img\" \
             aria-labelledby=\"chart-messages-in-title\" data-points=\"5\" viewBox="
        ));
        assert!(svg.contains("<title id=\"chart-messages-in-title\">Messages in</title>"));
        assert_eq!(data_points(&svg), 5);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("<figcaption>"));
        assert!(svg.contains("a</span>: 2/s"));
        assert!(svg.contains("b</span>: 3/s"));
        assert!(svg.contains("span 1m 0s"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn series_differ_in_colour_and_dash() {
        let svg = render(&chart(vec![
            series("a", vec![(0, 1.0)]),
            series("b", vec![(0, 2.0)]),
        ]));
        assert!(svg.contains(COLOURS[0]) && svg.contains(COLOURS[1]));
        assert!(svg.contains(&format!("stroke-dasharray=\"{}\"", DASHES[1])));
    }

    #[test]
    fn empty_chart_says_no_data_yet() {
        for c in [
            chart(vec![]),
            chart(vec![series("a", vec![])]),
            chart(vec![series("a", vec![(0, f64::NAN), (1, f64::INFINITY)])]),
        ] {
            let svg = render(&c);
            assert_eq!(data_points(&svg), 0);
            assert!(svg.contains("no data yet"));
            assert!(svg.contains("id=\"chart-messages-in\""));
            assert!(!svg.contains("<polyline"));
        }
    }

    #[test]
    fn one_point_is_drawn_as_a_marker() {
        let svg = render(&chart(vec![series("a", vec![(5_000, 7.0)])]));
        assert_eq!(data_points(&svg), 1);
        assert!(svg.contains("<circle"));
        assert!(svg.contains("a</span>: 7/s"));
    }

    #[test]
    fn constant_values_and_zeroes_do_not_divide_by_zero() {
        for v in [0.0, 3.0, -2.0] {
            let svg = render(&chart(vec![series("a", vec![(0, v), (1_000, v)])]));
            assert_eq!(data_points(&svg), 2);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn huge_values_and_times_stay_finite() {
        let svg = render(&chart(vec![series(
            "a",
            vec![
                (i64::MIN, f64::MAX),
                (0, -f64::MAX),
                (i64::MAX, 1e300),
                (1, f64::NEG_INFINITY),
            ],
        )]));
        assert_eq!(data_points(&svg), 3);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn nan_points_are_skipped_not_counted() {
        let svg = render(&chart(vec![series(
            "a",
            vec![(0, 1.0), (1_000, f64::NAN), (2_000, 2.0)],
        )]));
        assert_eq!(data_points(&svg), 2);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn labels_and_ids_are_escaped() {
        let mut c = chart(vec![series("<script>alert(1)</script>", vec![(0, 1.0)])]);
        c.id = "x\"y".to_string();
        c.title = "t<&>".to_string();
        let svg = render(&c);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("id=\"chart-x&quot;y\""));
        assert!(svg.contains("t&lt;&amp;&gt;"));
    }

    #[test]
    fn bytes_per_second_use_binary_units() {
        let mut c = chart(vec![series("a", vec![(0, 0.0), (1_000, 2048.0)])]);
        c.unit = Unit::BytesPerSecond;
        let svg = render(&c);
        assert!(svg.contains("2.0 KiB/s"));
    }
}
