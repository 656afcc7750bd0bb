//! The table `biblio cache stats` prints, and the formatters it and the
//! other `biblio cache` commands share.
use super::{hit_rate, Deployment, Figures};
use chrono::{DateTime, Utc};

/// Seconds as a person reads them: µs, ms or s.
fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

/// `bytes` for people: B, KiB, MiB or GiB with one decimal.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A rate as a percentage with one decimal; `-` before any read.
fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |rate| format!("{:.1}%", rate * 100.0))
}

/// How long a replica has been up, in its two largest units.
fn uptime(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let seconds = (to - from).num_seconds().max(0);
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Writes rows as columns: the first `left` columns aligned left, the rest
/// (numbers) right.
fn table(out: &mut std::fmt::Formatter<'_>, rows: &[Vec<String>], left: usize) -> std::fmt::Result {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c] - cell.chars().count();
            if c < left {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The table `biblio cache stats` prints.
impl std::fmt::Display for Deployment {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(out, "deployment {}", self.prefix)?;
        match &self.redis {
            Some(redis) => writeln!(
                out,
                ": Redis {}, {} used, {} clients, {}{} keys",
                redis.version,
                bytes(redis.used_memory_bytes),
                redis.connected_clients,
                if redis.keys_complete { "" } else { "at least " },
                redis.keys
            )?,
            None => writeln!(out, ": Redis did not answer; this replica alone")?,
        }
        writeln!(out)?;
        let header = [
            "replica",
            "version",
            "mode",
            "up",
            "requests",
            "last min",
            "p50",
            "p99",
            "lag p50",
            "lag p99",
            "L1 entries",
            "L1 bytes",
        ];
        let figures_row = |figures: &Figures| {
            vec![
                figures.requests.to_string(),
                figures.latency.count().to_string(),
                duration(figures.latency.quantile(0.5)),
                duration(figures.latency.quantile(0.99)),
                duration(figures.lag.quantile(0.5)),
                duration(figures.lag.quantile(0.99)),
                figures.l1_entries.to_string(),
                bytes(figures.l1_bytes),
            ]
        };
        let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
        for replica in &self.replicas {
            let mut row = vec![
                replica.replica.clone(),
                replica.version.clone(),
                replica.mode.clone(),
                uptime(replica.started_at, replica.taken_at),
            ];
            row.extend(figures_row(&replica.figures));
            rows.push(row);
        }
        let total = self.total();
        let mut row = vec![
            format!("total ({} replicas)", self.replicas.len()),
            String::new(),
            String::new(),
            String::new(),
        ];
        row.extend(figures_row(&total));
        rows.push(row);
        table(out, &rows, 3)?;
        writeln!(out)?;

        let mut rows = vec![["tier", "kind", "hits", "misses", "hit rate"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect::<Vec<_>>()];
        for tier in &total.tiers {
            rows.push(vec![
                tier.tier.clone(),
                "(all)".into(),
                tier.hits().to_string(),
                tier.misses().to_string(),
                percent(hit_rate(tier.hits(), tier.misses())),
            ]);
            for kind in &tier.kinds {
                rows.push(vec![
                    String::new(),
                    kind.kind.clone(),
                    kind.hits.to_string(),
                    kind.misses.to_string(),
                    percent(hit_rate(kind.hits, kind.misses)),
                ]);
            }
        }
        table(out, &rows, 2)?;
        writeln!(
            out,
            "\nloads from the database: {}; invalidations published: {}, received: {}",
            total.loads, total.invalidations_published, total.invalidations_received
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
