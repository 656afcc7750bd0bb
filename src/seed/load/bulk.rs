//! Sending rows in bulk: multi-row INSERTs within SQLite's parameter
//! limit, COPY in text format on PostgreSQL.
use super::*;

/// `INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows.
pub(super) fn insert_statement(table: &str, columns: &[&str], rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    sql.reserve(rows * (row.len() + 2));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql
}

pub(super) async fn insert_sqlite<R: Row>(
    txn: &mut Transaction<'static, Sqlite>,
    rows: &[R],
) -> Result<(), sqlx::Error> {
    let per_statement = SQLITE_MAX_PARAMETERS / R::COLUMNS.len();
    let full = insert_statement(R::TABLE, R::COLUMNS, per_statement);
    let mut cells = Vec::with_capacity(per_statement * R::COLUMNS.len());
    // Timestamps as sqlx writes a DateTime<Utc> (RFC 3339, as few fraction
    // digits as needed), each distinct one formatted once: a seed's times
    // fall on whole minutes and hours, and repeat.
    let mut times: std::collections::HashMap<DateTime<Utc>, String> = Default::default();
    for chunk in rows.chunks(per_statement) {
        cells.clear();
        for row in chunk {
            row.cells(&mut cells);
        }
        for cell in &cells {
            if let Cell::Time(at) = cell {
                times
                    .entry(*at)
                    .or_insert_with(|| at.to_rfc3339_opts(SecondsFormat::AutoSi, false));
            }
        }
        let partial;
        let sql = if chunk.len() == per_statement {
            &full
        } else {
            partial = insert_statement(R::TABLE, R::COLUMNS, chunk.len());
            &partial
        };
        let mut query = sqlx::query(sql);
        for cell in &cells {
            query = match cell {
                Cell::Uuid(id) => query.bind(*id),
                Cell::Text(text) => query.bind(*text),
                Cell::Int(n) => query.bind(*n),
                Cell::Time(at) => query.bind(times[at].as_str()),
                Cell::Null => query.bind(None::<i64>),
            };
        }
        query.execute(&mut **txn).await?;
        if times.len() > 100_000 {
            times.clear();
        }
    }
    Ok(())
}

/// Appends `text` as a COPY text-format field.
pub(super) fn copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

pub(super) async fn copy_postgres<R: Row>(
    txn: &mut Transaction<'static, Postgres>,
    rows: &[R],
) -> Result<(), sqlx::Error> {
    let statement = format!(
        "COPY {} ({}) FROM STDIN WITH (FREEZE)",
        R::TABLE,
        R::COLUMNS.join(", ")
    );
    let mut copy = txn.copy_in_raw(&statement).await?;
    let mut buffer = String::with_capacity(COPY_BUFFER + 4096);
    let mut cells = Vec::with_capacity(R::COLUMNS.len());
    for row in rows {
        cells.clear();
        row.cells(&mut cells);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                buffer.push('\t');
            }
            // Writing to a String cannot fail.
            let _ = match cell {
                Cell::Uuid(id) => write!(buffer, "{id}"),
                Cell::Text(text) => {
                    copy_text(&mut buffer, text);
                    Ok(())
                }
                Cell::Int(n) => write!(buffer, "{n}"),
                Cell::Time(at) => write!(buffer, "{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00")),
                Cell::Null => {
                    buffer.push_str("\\N");
                    Ok(())
                }
            };
        }
        buffer.push('\n');
        if buffer.len() >= COPY_BUFFER {
            copy.send(std::mem::take(&mut buffer).into_bytes()).await?;
            buffer.reserve(COPY_BUFFER + 4096);
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.into_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_treats_specially() {
        let mut out = String::new();
        copy_text(&mut out, "a\\b\tc\nd\re");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re");
    }

    #[test]
    fn an_insert_statement_has_one_placeholder_per_cell() {
        let sql = insert_statement("t", &["a", "b"], 3);
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)");
    }
}
