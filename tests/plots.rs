//! The latency suite's pictures, drawn from a small fixed set of results: each parses as XML,
//! every text fits inside the view box (at the fixed character width the layout assumes), and
//! every series the legend names has a path.

#[path = "../benches/latency/chart.rs"]
mod chart;
#[path = "../benches/latency/panels/mod.rs"]
mod panels;

use panels::{Burst, NoiseCurve, Points, Results};

/// A made-up run: latency doubling every nine from `p50`.
fn run(p50: f64) -> Points {
    panels::percentiles()
        .into_iter()
        .map(|p| (p, p50 * (1.0 / (1.0 - p / 100.0) / 2.0).sqrt()))
        .collect()
}

fn results() -> Results {
    Results {
        footer: "Run 2026-12-03 08:00 UTC at commit abc1234; 2 CPUs (a long CPU model name, \
                 AMD EPYC 7B13 64-Core Processor), Linux 6.18.0; peer: nginx 1.22.1. Open loop, \
                 latency from each request's scheduled send time."
            .to_owned(),
        peer: "nginx 1.22.1".to_owned(),
        keep_alive: [8540.0, 21350.0, 42701.0, 64051.0, 76861.0, 20000.0, 50000.0]
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                let level = format!("{rate:.0} req/s");
                (level, run(40.0 + i as f64), Some(run(45.0 + i as f64)))
            })
            .collect(),
        new_connection: Some((
            run(120.0),
            vec![
                ("nginx 1.22.1".to_owned(), run(590.0)),
                ("nginx 1.22.1, deferred".to_owned(), run(400.0)),
            ],
        )),
        isolation: vec![
            ("/hello, baseline".to_owned(), run(57.0)),
            ("/hello, 16 /slow jobs outstanding".to_owned(), run(58.0)),
            ("/hello with /slow at 4× C".to_owned(), run(60.0)),
            (
                "/hello control: the same rate answered 503 inline".to_owned(),
                run(61.0),
            ),
        ],
        isolation_spoiled: None,
        noise: vec![
            NoiseCurve {
                label: "quiet".to_owned(),
                capacity: 1870.0,
                points: vec![(0.5, 0.5), (1.0, 0.99), (2.0, 0.97), (4.0, 0.99)],
            },
            NoiseCurve {
                label: "noise 1/4 ms ordinary".to_owned(),
                capacity: 1800.0,
                points: vec![(0.5, 0.5), (1.0, 0.95), (2.0, 0.93), (4.0, 0.9)],
            },
            NoiseCurve {
                label: "noise 1/4 ms FIFO".to_owned(),
                capacity: 1400.0,
                points: vec![(0.5, 0.5), (1.0, 0.9), (2.0, 0.85), (4.0, 0.8)],
            },
        ],
        goodput: vec![
            (0.5, 0.5, 0.0),
            (1.0, 0.99, 0.001),
            (1.5, 0.98, 0.002),
            (2.0, 0.97, 0.003),
            (4.0, 0.99, 0.001),
        ],
        burst: Some(Burst {
            windows: (0..120)
                .map(|i| {
                    let t = i as f64 * 0.05;
                    let offered: f64 = if (2.0..4.0).contains(&t) {
                        5600.0
                    } else {
                        940.0
                    };
                    (t, offered.min(1870.0) * 0.98, offered)
                })
                .collect(),
            span: (2.0, 4.0),
            capacity: 1870.0,
            window_ms: 50,
        }),
        lateness: vec![
            (10, 40),
            (25, 80),
            (50, 60),
            (100, 70),
            (250, 10),
            (500, 3),
            (1000, 1),
            (2500, 0),
            (5000, 0),
            (10000, 0),
            (u64::MAX, 1),
        ],
    }
}

/// The width a text element takes, as the layout reckons it.
fn text_width(node: roxmltree::Node<'_, '_>) -> f64 {
    let size: f64 = node
        .attribute("font-size")
        .map_or(12.0, |s| s.parse().expect("a font size"));
    let bold = if node.attribute("font-weight") == Some("bold") {
        1.1
    } else {
        1.0
    };
    let chars = node.text().unwrap_or("").chars().count() as f64;
    chars * chart::CHAR_WIDTH * size / 12.0 * bold
}

#[test]
fn every_panel_is_drawn_within_its_view_box_with_a_path_per_legend_entry() {
    let panels = panels::panels(&results());
    let names: Vec<&str> = panels.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "keep-alive",
            "new-connection",
            "isolation",
            "goodput",
            "misses",
            "noise",
            "burst",
            "lateness"
        ]
    );
    for (name, chart) in panels {
        let svg = chart.svg();
        let doc =
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: not XML: {e}"));
        let root = doc.root_element();
        let view: Vec<f64> = root
            .attribute("viewBox")
            .expect("a view box")
            .split(' ')
            .map(|v| v.parse().expect("a number"))
            .collect();
        let (width, height) = (view[2], view[3]);
        assert_eq!(width, chart::WIDTH);
        let mut legend = Vec::new();
        let mut paths = Vec::new();
        for node in root.descendants() {
            match node.tag_name().name() {
                "text" => {
                    let x: f64 = node.attribute("x").expect("x").parse().expect("x");
                    let y: f64 = node.attribute("y").expect("y").parse().expect("y");
                    let w = text_width(node);
                    let label = node.text().unwrap_or("");
                    if node.attribute("transform").is_some() {
                        // The y-axis label, turned a quarter: its length runs along y.
                        assert!(
                            y - w / 2.0 >= 0.0 && y + w / 2.0 <= height,
                            "{name}: {label}"
                        );
                        continue;
                    }
                    let (from, to) = match node.attribute("text-anchor") {
                        Some("middle") => (x - w / 2.0, x + w / 2.0),
                        Some("end") => (x - w, x),
                        _ => (x, x + w),
                    };
                    assert!(
                        from >= 0.0 && to <= width && y >= 10.0 && y <= height,
                        "{name}: {label:?} at {x},{y} spans {from:.0}..{to:.0} of {width}x{height}"
                    );
                    if node.attribute("class") == Some("legend") {
                        legend.push(label.to_owned());
                    }
                }
                "path" => paths.push(node.attribute("data-series").unwrap_or("").to_owned()),
                _ => {}
            }
        }
        assert!(!legend.is_empty(), "{name}: no legend");
        for entry in &legend {
            assert!(
                paths.contains(entry),
                "{name}: {entry:?} in the legend has no path"
            );
        }
        assert!(svg.contains(&chart.footer[..20]), "{name}: no footer");
    }
}

#[test]
fn a_long_title_or_caption_wraps_instead_of_running_off_the_edge() {
    let mut results = results();
    results.peer = "a peer with a very long name and version string, 1.22.1-9+deb12u11".to_owned();
    for (name, chart) in panels::panels(&results) {
        let svg = chart.svg();
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        for node in doc.descendants().filter(|n| n.has_tag_name("text")) {
            let x: f64 = node.attribute("x").unwrap().parse().unwrap();
            if node.attribute("text-anchor") == Some("start")
                && node.attribute("transform").is_none()
            {
                let label = node.text().unwrap_or("");
                assert!(
                    x + text_width(node) <= chart::WIDTH,
                    "{name}: {label:?} runs off"
                );
            }
        }
    }
}

#[test]
fn a_spoiled_isolation_baseline_gives_no_ratio() {
    let isolation = |results: &Results| {
        panels::panels(results)
            .into_iter()
            .find(|(name, _)| *name == "isolation")
            .expect("an isolation panel")
            .1
            .caption
    };
    let mut results = results();
    assert!(isolation(&results).contains('×'), "{}", isolation(&results));
    // A baseline that caught a stall: far worse than /hello beside the loaded pool.
    results.isolation[0].1 = run(57.0 * 20.0);
    let caption = isolation(&results);
    assert!(caption.contains("spoiled by the host"), "{caption}");
    assert!(!caption.contains("20.00×"), "{caption}");
    // The suite's own verdict, after its repeats, is said as it gave it.
    let mut results = self::results();
    results.isolation_spoiled = Some("/hello alone p99 9 ms against 1 ms".to_owned());
    let caption = isolation(&results);
    assert!(caption.contains("/hello alone p99 9 ms"), "{caption}");
}
