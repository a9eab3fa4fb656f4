//! Parsing import files: JSON Lines and CSV, one record per line or row.
//!
//! Parsing yields one record at a time with the line it came from, so an import
//! of any size runs in bounded memory and every error names its line.

use std::io::{BufRead, Read};

use casesync_schema::record::{self, FieldValue, Fields, RecordInput, RecordType, ReleasableTo};

use crate::error::{NodeError, Result};

/// Longest accepted line; a longer one is an error, not an allocation.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

impl Format {
    /// From the file name (`.jsonl`, `.ndjson`, `.json`, `.csv`), else from the
    /// first non-blank byte (`{` means JSON Lines).
    pub fn detect(name: &str, head: &[u8]) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            return Format::Csv;
        }
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
            return Format::JsonLines;
        }
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

fn at(line: usize, reason: impl std::fmt::Display) -> NodeError {
    NodeError::Refused(format!("line {line}: {reason}; nothing was imported"))
}

/// Keys of `record show --json` that the node assigns: accepted and ignored, so
/// an export can be re-imported.
const ASSIGNED: [&str; 6] = ["id", "case", "originator", "created", "updated", "extra"];

/// One JSON Lines record.
pub fn parse_json_line(line: usize, text: &str) -> Result<RecordInput> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| at(line, format!("invalid JSON ({e})")))?;
    record_from_json(&v).map_err(|e| at(line, e))
}

/// A record as JSON (`{"type", "fields", "grading", "handling", "releasable_to"}`, the
/// shape of `record show --json`): an import line, or a body of the HTTP API.
pub fn record_from_json(v: &serde_json::Value) -> std::result::Result<RecordInput, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    let mut record_type = None;
    let mut fields = Fields::new();
    let mut grading = None;
    let mut handling = Default::default();
    let mut releasable_to = ReleasableTo::default();
    for (k, val) in obj {
        match k.as_str() {
            "type" => {
                let t = val
                    .as_str()
                    .ok_or_else(|| "`type` must be a string".to_string())?;
                record_type = Some(t.parse::<RecordType>().map_err(|e| e.to_string())?);
            }
            "fields" => {
                let f = val
                    .as_object()
                    .ok_or_else(|| "`fields` must be an object".to_string())?;
                for (name, fv) in f {
                    if fv.is_null() {
                        continue;
                    }
                    fields.insert(
                        name.clone(),
                        FieldValue::from_json(name, fv).map_err(|e| e.to_string())?,
                    );
                }
            }
            "grading" => {
                if let Some(g) = val.as_str() {
                    grading = Some(record::parse_grading(g).map_err(|e| e.to_string())?);
                } else if !val.is_null() {
                    return Err("`grading` must be a string like \"3x5x2:1AP\"".into());
                }
            }
            "handling" => {
                if let Some(h) = val.as_str() {
                    handling = h.parse().map_err(|e: String| format!("`handling`: {e}"))?;
                } else if !val.is_null() {
                    return Err("`handling` must be a string: H0, H1, H2 or H3:CONDITIONS".into());
                }
            }
            "releasable_to" => {
                if let Some(a) = val.as_array() {
                    let items = a
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(String::from)
                                .ok_or_else(|| "`releasable_to` must list strings".to_string())
                        })
                        .collect::<std::result::Result<Vec<_>, String>>()?;
                    releasable_to = ReleasableTo::from_items(items).map_err(|e| e.to_string())?;
                } else if !val.is_null() {
                    return Err("`releasable_to` must be an array like [\"GB\", \"RO\"]".into());
                }
            }
            k if ASSIGNED.contains(&k) => {}
            other => {
                return Err(format!(
                    "unknown key `{}` (expected type, fields, grading, handling, releasable_to)",
                    crate::short(other)
                ));
            }
        }
    }
    let record_type = record_type.ok_or_else(|| "missing `type`".to_string())?;
    Ok(RecordInput {
        handling,
        record_type,
        fields,
        grading,
        releasable_to,
    })
}

/// Reads JSON Lines, yielding (line number, record) and skipping blank lines.
pub fn json_lines(input: impl Read) -> impl Iterator<Item = Result<(usize, RecordInput)>> {
    let mut reader = std::io::BufReader::new(input);
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    std::iter::from_fn(move || {
        loop {
            buf.clear();
            line_no += 1;
            let n = match (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
            {
                Ok(n) => n,
                Err(e) => return Some(Err(at(line_no, format!("cannot read: {e}")))),
            };
            if n == 0 {
                return None;
            }
            if buf.len() > MAX_LINE_BYTES {
                return Some(Err(at(
                    line_no,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                )));
            }
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(_) => return Some(Err(at(line_no, "not valid UTF-8"))),
            };
            if text.is_empty() {
                continue;
            }
            return Some(parse_json_line(line_no, text).map(|r| (line_no, r)));
        }
    })
}

/// Largest CSV row (header included): the CSV reader holds one row whole, so
/// rows are bounded before it sees them.
pub const MAX_CSV_ROW_BYTES: usize = 4 * MAX_LINE_BYTES;

/// A reader that fails once a CSV row (newlines inside quotes belong to the
/// row) passes [`MAX_CSV_ROW_BYTES`]: memory stays flat whatever the file.
struct BoundedRows<R> {
    inner: R,
    in_quotes: bool,
    row_bytes: usize,
    line: usize,
}

impl<R: Read> Read for BoundedRows<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    self.row_bytes = 0;
                    self.line += 1;
                    continue;
                }
                b'\n' => self.line += 1,
                _ => {}
            }
            self.row_bytes += 1;
            if self.row_bytes > MAX_CSV_ROW_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line {}: a CSV row longer than {MAX_CSV_ROW_BYTES} bytes (a cell too large, or a quote never closed)",
                        self.line
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// Reads CSV with a header row: `type`, optional `grading`, `handling` and `releasable_to`
/// (separated by `;` or `,`), every other column a field; empty cells are absent.
pub fn csv_rows(input: impl Read) -> Result<impl Iterator<Item = Result<(usize, RecordInput)>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(BoundedRows {
            inner: input,
            in_quotes: false,
            row_bytes: 0,
            line: 1,
        });
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| at(1, format!("cannot read the CSV header ({e})")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if !headers.iter().any(|h| h == "type") {
        return Err(at(1, "the CSV header has no `type` column"));
    }
    for h in &headers {
        if !matches!(
            h.as_str(),
            "type" | "grading" | "handling" | "releasable_to"
        ) {
            record::check_field_name(h).map_err(|e| at(1, e))?;
        }
    }
    let mut records = reader.into_records();
    Ok(std::iter::from_fn(move || {
        let row = records.next()?;
        Some(match row {
            Err(e) => match e.kind() {
                // A row past the bound says its line itself.
                csv::ErrorKind::Io(io) => Err(NodeError::Refused(io.to_string())),
                _ => {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    Err(at(line, format!("malformed CSV ({e})")))
                }
            },
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                csv_record(line, &headers, &r).map(|x| (line, x))
            }
        })
    }))
}

fn csv_record(line: usize, headers: &[String], row: &csv::StringRecord) -> Result<RecordInput> {
    let mut record_type = None;
    let mut fields = Fields::new();
    let mut grading = None;
    let mut handling = Default::default();
    let mut releasable_to = ReleasableTo::default();
    for (h, cell) in headers.iter().zip(row.iter()) {
        if cell.len() > MAX_LINE_BYTES {
            return Err(at(line, "cell too large"));
        }
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        match h.as_str() {
            "type" => record_type = Some(cell.parse::<RecordType>().map_err(|e| at(line, e))?),
            "grading" => grading = Some(record::parse_grading(cell).map_err(|e| at(line, e))?),
            "handling" => {
                handling = cell
                    .parse()
                    .map_err(|e: String| at(line, format!("handling: {e}")))?
            }
            "releasable_to" => {
                releasable_to =
                    ReleasableTo::parse_list(&cell.replace(';', ",")).map_err(|e| at(line, e))?
            }
            _ => {
                fields.insert(h.clone(), FieldValue::Str(cell.to_string()));
            }
        }
    }
    let record_type = record_type.ok_or_else(|| at(line, "empty `type`"))?;
    Ok(RecordInput {
        handling,
        record_type,
        fields,
        grading,
        releasable_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_json(s: &str) -> Vec<usize> {
        json_lines(s.as_bytes()).map(|r| r.unwrap().0).collect()
    }

    #[test]
    fn json_lines_numbers_lines_and_skips_blanks() {
        let s = "{\"type\":\"person\",\"fields\":{\"name\":\"Ana\"}}\n\n{\"type\":\"note\",\"fields\":{\"text\":\"x\"},\"grading\":\"europol:B2\",\"releasable_to\":[\"GB\"]}\n";
        assert_eq!(ok_json(s), vec![1, 3]);
    }

    #[test]
    fn json_errors_name_the_line() {
        let s = "{\"type\":\"person\",\"fields\":{\"name\":\"Ana\"}}\n{not json\n";
        let errs: Vec<String> = json_lines(s.as_bytes())
            .filter_map(|r| r.err())
            .map(|e| e.to_string())
            .collect();
        assert!(errs[0].starts_with("line 2: invalid JSON"), "{errs:?}");
        let e = parse_json_line(7, "{\"type\":\"person\",\"feilds\":{}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 7") && e.contains("feilds"), "{e}");
        assert!(parse_json_line(1, "{\"type\":\"rocket\"}").is_err());
        assert!(parse_json_line(1, "[1,2]").is_err());
    }

    #[test]
    fn csv_maps_columns() {
        let s = "type,name,grading,releasable_to\nperson,Ana Popescu,3x5x2:1AP,GB;RO\nperson,\"Dobre, Marin\",,\n";
        let rows: Vec<_> = csv_rows(s.as_bytes())
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.releasable_to.0, vec!["GB", "RO"]);
        assert_eq!(
            rows[1].1.fields["name"],
            FieldValue::Str("Dobre, Marin".into())
        );
        assert!(csv_rows("name\nx\n".as_bytes()).is_err());
        let bad: Vec<_> = csv_rows("type,name\nperson,a,extra\n".as_bytes())
            .unwrap()
            .collect();
        assert!(
            bad[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("line 2")
        );
    }

    #[test]
    fn an_endless_csv_cell_is_refused_at_the_row_bound() {
        // A quoted cell that never ends, then one that is only too long:
        // both refused once the row passes the bound, not read whole.
        let endless = "type,name\nperson,\""
            .as_bytes()
            .chain(std::io::repeat(b'a'));
        let first = csv_rows(endless).unwrap().next().unwrap();
        let e = first.unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("longer than"), "{e}");
        let long = "type,name\nperson,"
            .as_bytes()
            .chain(std::io::repeat(b'a').take(MAX_CSV_ROW_BYTES as u64 + 10))
            .chain("\n".as_bytes());
        assert!(csv_rows(long).unwrap().next().unwrap().is_err());
        let header = std::io::repeat(b'a');
        assert!(csv_rows(header).is_err());
    }

    #[test]
    fn format_detection() {
        assert_eq!(Format::detect("x.csv", b"{"), Format::Csv);
        assert_eq!(Format::detect("x.jsonl", b"type"), Format::JsonLines);
        assert_eq!(Format::detect("x", b"  {\"type\""), Format::JsonLines);
        assert_eq!(Format::detect("x", b"type,name"), Format::Csv);
    }
}
