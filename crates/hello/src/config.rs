//! Settings from the environment. Every variable has a default, so the service runs with none.
//!
//! | variable                  | default   | meaning                                                    |
//! |---------------------------|-----------|------------------------------------------------------------|
//! | `PORT`                    | `8000`    | TCP port (`0`: any free port, logged at start)            |
//! | `BIND_ADDRESS`            | `0.0.0.0` | address to listen on                                       |
//! | `LOG_FORMAT`              | `json`    | `json` (one object per line) or `human`                    |
//! | `LOG_LEVEL`               | `info`    | a tracing filter, e.g. `warn` or `hello=debug`             |
//! | `ACCESS_LOG`              | `true`    | one log line per request                                   |
//! | `REQUEST_TIMEOUT_SECONDS` | `10`      | a request running longer gets 408                          |
//! | `HEADER_TIMEOUT_SECONDS`  | `10`      | a client must send its whole request head within this (slowloris guard) |
//! | `FIRST_BYTE_TIMEOUT_SECONDS` | `5`    | a connection that sends nothing this long is closed        |
//! | `SHUTDOWN_DELAY_SECONDS`  | `0`       | after SIGTERM, keep serving (ready=503) this long so load balancers notice |
//! | `SHUTDOWN_DRAIN_SECONDS`  | `25`      | then wait at most this long for in-flight requests         |
//!
//! Durations are seconds and may have a fraction (`0.5`).
//! | `MAX_CONNECTIONS`         | `1024`    | open connections kept at most; over it the oldest is closed |
//! | `HELLO_TEST_DELAY_MS`     | `0`       | test hook: delay `GET /` by this much (for drain tests)    |

use std::net::IpAddr;
use std::time::Duration;

/// Log output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Human,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub bind_address: IpAddr,
    pub port: u16,
    pub log_format: LogFormat,
    pub log_level: String,
    pub access_log: bool,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub shutdown_delay: Duration,
    pub shutdown_drain: Duration,
    pub max_connections: usize,
    pub test_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            port: 8000,
            log_format: LogFormat::Json,
            log_level: "info".into(),
            access_log: true,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
            shutdown_drain: Duration::from_secs(25),
            max_connections: 1024,
            test_delay: Duration::ZERO,
        }
    }
}

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{name}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Settings::default();
        // Seconds, with an optional fraction; never negative, NaN or absurdly large.
        let secs = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 86_400.0)
                .map(Duration::from_secs_f64)
        };
        let positive = |s: &str| secs(s).filter(|d| !d.is_zero());
        let boolean = |s: &str| match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        };
        let log_format = |s: &str| match s {
            "json" => Some(LogFormat::Json),
            "human" | "text" => Some(LogFormat::Human),
            _ => None,
        };
        Ok(Self {
            port: var(&lookup, "PORT", "a port number 0-65535", |s| s.parse().ok())?
                .unwrap_or(d.port),
            bind_address: var(
                &lookup,
                "BIND_ADDRESS",
                "an IP address such as 0.0.0.0 or ::",
                |s| s.parse().ok(),
            )?
            .unwrap_or(d.bind_address),
            log_format: var(&lookup, "LOG_FORMAT", "`json` or `human`", log_format)?
                .unwrap_or(d.log_format),
            log_level: lookup("LOG_LEVEL")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or(d.log_level),
            access_log: var(&lookup, "ACCESS_LOG", "true or false", boolean)?
                .unwrap_or(d.access_log),
            request_timeout: var(
                &lookup,
                "REQUEST_TIMEOUT_SECONDS",
                "seconds above 0, e.g. 10",
                positive,
            )?
            .unwrap_or(d.request_timeout),
            header_timeout: var(
                &lookup,
                "HEADER_TIMEOUT_SECONDS",
                "seconds above 0, e.g. 10",
                positive,
            )?
            .unwrap_or(d.header_timeout),
            first_byte_timeout: var(
                &lookup,
                "FIRST_BYTE_TIMEOUT_SECONDS",
                "seconds above 0, e.g. 5",
                positive,
            )?
            .unwrap_or(d.first_byte_timeout),
            shutdown_delay: var(
                &lookup,
                "SHUTDOWN_DELAY_SECONDS",
                "seconds, e.g. 5 or 0.5",
                secs,
            )?
            .unwrap_or(d.shutdown_delay),
            shutdown_drain: var(&lookup, "SHUTDOWN_DRAIN_SECONDS", "seconds, e.g. 25", secs)?
                .unwrap_or(d.shutdown_drain),
            max_connections: var(
                &lookup,
                "MAX_CONNECTIONS",
                "a whole number above 0, e.g. 1024",
                |s| s.parse::<usize>().ok().filter(|n| *n > 0),
            )?
            .unwrap_or(d.max_connections),
            test_delay: var(
                &lookup,
                "HELLO_TEST_DELAY_MS",
                "milliseconds, e.g. 500",
                |s| s.parse::<u64>().ok().map(Duration::from_millis),
            )?
            .unwrap_or(d.test_delay),
        })
    }
}

/// One variable: unset or blank is `None`; set but unparsable is an error naming it.
fn var<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    match lookup(name) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => match parse(v.trim()) {
            Some(value) => Ok(Some(value)),
            None => Err(ConfigError {
                name,
                value: v,
                expected,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn no_variables_give_the_documented_defaults() {
        assert_eq!(from(&[]).unwrap(), Settings::default());
        assert_eq!(Settings::default().port, 8000);
    }

    #[test]
    fn variables_override_defaults() {
        let s = from(&[
            ("PORT", "9000"),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("LOG_FORMAT", "human"),
            ("ACCESS_LOG", "off"),
            ("SHUTDOWN_DRAIN_SECONDS", "5"),
        ])
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.bind_address.to_string(), "127.0.0.1");
        assert_eq!(s.log_format, LogFormat::Human);
        assert!(!s.access_log);
        assert_eq!(s.shutdown_drain, Duration::from_secs(5));
        let s = from(&[
            ("HEADER_TIMEOUT_SECONDS", "1.5"),
            ("FIRST_BYTE_TIMEOUT_SECONDS", "0.25"),
            ("SHUTDOWN_DELAY_SECONDS", "0.5"),
        ])
        .unwrap();
        assert_eq!(s.header_timeout, Duration::from_millis(1500));
        assert_eq!(s.first_byte_timeout, Duration::from_millis(250));
        assert_eq!(s.shutdown_delay, Duration::from_millis(500));
        assert_eq!(Settings::default().header_timeout, Duration::from_secs(10));
        assert_eq!(
            Settings::default().first_byte_timeout,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_the_value_and_what_is_accepted() {
        let err = from(&[("PORT", "eighty")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PORT=\"eighty\" is not valid: expected a port number 0-65535"
        );
        let err = from(&[("LOG_FORMAT", "xml")]).unwrap_err();
        assert!(err.to_string().contains("`json` or `human`"));
        assert!(from(&[("REQUEST_TIMEOUT_SECONDS", "0")]).is_err());
        for bad in ["-1", "NaN", "inf", "1e9", "soon"] {
            assert!(from(&[("HEADER_TIMEOUT_SECONDS", bad)]).is_err(), "{bad}");
        }
        assert!(from(&[("FIRST_BYTE_TIMEOUT_SECONDS", "0")]).is_err());
        assert!(from(&[("MAX_CONNECTIONS", "0")]).is_err());
        assert_eq!(
            from(&[("MAX_CONNECTIONS", "50")]).unwrap().max_connections,
            50
        );
    }
}
