//! One line per request, in the same format as every other log line (JSON or human), written
//! straight into the [`telemetry`](crate::telemetry) batch.
//!
//! This is the only hot log path, so it skips `tracing`'s generic formatting: the line is built
//! with plain byte appends into a per-thread buffer, and the timestamp's date-and-time part is
//! formatted once per second. The output is the shape `tracing-subscriber` gives the other lines:
//!
//! ```text
//! {"timestamp":"2026-11-25T19:39:28.123456Z","level":"INFO","target":"access","method":"GET","path":"/","status":200,"latency_us":41}
//! 2026-11-25T19:39:28.123456Z  INFO access: method=GET path=/ status=200 latency_us=41
//! ```

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;
use crate::telemetry::MakeBatch;

/// Where access lines go, and in which format.
#[derive(Clone)]
pub struct AccessLog {
    out: MakeBatch,
    format: LogFormat,
}

impl AccessLog {
    pub fn new(out: MakeBatch, format: LogFormat) -> Self {
        Self { out, format }
    }

    /// Records one finished request.
    pub fn record(&self, method: &str, path: &str, status: u16, latency_us: u64) {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let request = Request {
                method,
                path,
                status,
                latency_us,
            };
            write_line(
                line,
                self.format,
                now.as_secs(),
                now.subsec_micros(),
                &request,
            );
            self.out.append(line);
        });
    }
}

/// One request's facts.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_us: u64,
}

fn write_line(line: &mut Vec<u8>, format: LogFormat, secs: u64, micros: u32, r: &Request<'_>) {
    // Writing into a Vec cannot fail.
    match format {
        LogFormat::Json => {
            line.extend_from_slice(b"{\"timestamp\":\"");
            write_timestamp(line, secs, micros);
            line.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\",\"method\":");
            push_json_string(line, r.method);
            line.extend_from_slice(b",\"path\":");
            push_json_string(line, r.path);
            line.extend_from_slice(b",\"status\":");
            push_decimal(line, u64::from(r.status));
            line.extend_from_slice(b",\"latency_us\":");
            push_decimal(line, r.latency_us);
            line.extend_from_slice(b"}\n");
        }
        LogFormat::Human => {
            write_timestamp(line, secs, micros);
            line.extend_from_slice(b"  INFO access: method=");
            line.extend_from_slice(r.method.as_bytes());
            line.extend_from_slice(b" path=");
            // Paths are printed as they are, minus control characters (no log forging).
            line.extend(
                r.path
                    .bytes()
                    .map(|b| if b.is_ascii_control() { b'?' } else { b }),
            );
            line.extend_from_slice(b" status=");
            push_decimal(line, u64::from(r.status));
            line.extend_from_slice(b" latency_us=");
            push_decimal(line, r.latency_us);
            line.push(b'\n');
        }
    }
}

/// `2026-11-25T19:39:28.123456Z`; the part up to the seconds is cached per thread.
fn write_timestamp(line: &mut Vec<u8>, secs: u64, micros: u32) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            *text = format_second(secs);
        }
        line.extend_from_slice(text.as_bytes());
    });
    line.push(b'.');
    let digits = [100_000, 10_000, 1_000, 100, 10, 1];
    line.extend(digits.map(|d| b'0' + (micros / d % 10) as u8));
    line.push(b'Z');
}

/// `text` as a JSON string; copied as it is when nothing in it needs escaping (the usual case).
fn push_json_string(line: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        line.push(b'"');
        line.extend_from_slice(text.as_bytes());
        line.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *line, text);
    }
}

/// `n` in decimal, without `fmt`'s machinery (this runs once or twice per request).
fn push_decimal(line: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[start..]);
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for seconds since the Unix epoch.
fn format_second(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat, path: &str) -> String {
        let mut out = Vec::new();
        let request = Request {
            method: "GET",
            path,
            status: 200,
            latency_us: 41,
        };
        // 2026-11-25T19:39:28 UTC
        write_line(&mut out, format, 1_795_635_568, 1_234, &request);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let text = line(LogFormat::Json, "/");
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "timestamp": "2026-11-25T19:39:28.001234Z",
                "level": "INFO",
                "target": "access",
                "method": "GET",
                "path": "/",
                "status": 200,
                "latency_us": 41
            })
        );
    }

    #[test]
    fn a_hostile_path_cannot_break_the_json_line_or_forge_a_human_one() {
        let path = "/\"},\n{\"level\":\"ERROR\"\u{7}";
        let json = line(LogFormat::Json, path);
        assert_eq!(json.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["path"], path);
        let human = line(LogFormat::Human, path);
        assert_eq!(human.lines().count(), 1, "{human}");
    }

    #[test]
    fn human_lines_look_like_the_other_log_lines() {
        assert_eq!(
            line(LogFormat::Human, "/healthz"),
            "2026-11-25T19:39:28.001234Z  INFO access: method=GET path=/healthz status=200 latency_us=41\n"
        );
    }

    #[test]
    fn json_strings_match_serde_json_with_or_without_escapes() {
        for text in [
            "/",
            "/caf\u{e9}?q=1",
            "/a\"b",
            "/a\\b",
            "/\u{1}\n",
            "/\u{7f}",
            "",
        ] {
            let mut out = Vec::new();
            push_json_string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn numbers_are_written_in_full() {
        for n in [0, 7, 10, 200, 99_999, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        let mut out = Vec::new();
        write_timestamp(&mut out, 0, 999_999);
        assert!(String::from_utf8(out).unwrap().ends_with(".999999Z"));
    }

    #[test]
    fn dates_are_right_across_leap_years_and_centuries() {
        assert_eq!(format_second(0), "1970-01-01T00:00:00");
        assert_eq!(format_second(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(format_second(4_107_542_399), "2100-02-28T23:59:59");
        assert_eq!(format_second(4_107_542_400), "2100-03-01T00:00:00");
        assert_eq!(format_second(1_709_164_800), "2024-02-29T00:00:00");
    }
}
