//! Log lines on stderr, as text or one JSON object per line (for log
//! pipelines). Structured fields travel as `log` key-values, so an alert is
//! an ordinary log record. A failing sink (closed stderr, full pipe) never
//! stops the agent: env_logger drops lines it cannot write.

use log::kv::{self, VisitSource};
use std::io::Write as _;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time LEVEL target] message key=value ...`
    #[default]
    Text,
    /// `{"ts":..,"level":..,"target":..,"msg":..,"key":value,...}`
    Json,
}

/// Installs the logger; `RUST_LOG` filters as usual (default `info`).
pub fn init(format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => b.format(|buf, r| {
            let mut line = format!(
                "[{} {:<5} {}] {}",
                buf.timestamp_millis(),
                r.level(),
                r.target(),
                r.args()
            );
            for (k, v) in fields(r) {
                line.push_str(&format!(" {k}={}", text_value(&v)));
            }
            writeln!(buf, "{line}")
        }),
        LogFormat::Json => b.format(|buf, r| {
            let mut obj = serde_json::Map::new();
            obj.insert("ts".into(), buf.timestamp_millis().to_string().into());
            obj.insert("level".into(), r.level().as_str().into());
            obj.insert("target".into(), r.target().into());
            obj.insert("msg".into(), r.args().to_string().into());
            obj.extend(fields(r));
            writeln!(buf, "{}", serde_json::Value::Object(obj))
        }),
    };
    // A second init (tests) keeps the first logger.
    let _ = b.try_init();
}

/// A record's key-values as JSON values (numbers and booleans kept).
fn fields(r: &log::Record<'_>) -> Vec<(String, serde_json::Value)> {
    struct Collect(Vec<(String, serde_json::Value)>);
    impl<'kvs> VisitSource<'kvs> for Collect {
        fn visit_pair(&mut self, k: kv::Key<'kvs>, v: kv::Value<'kvs>) -> Result<(), kv::Error> {
            let json = if let Some(n) = v.to_u64() {
                n.into()
            } else if let Some(b) = v.to_bool() {
                b.into()
            } else {
                v.to_string().into()
            };
            self.0.push((k.as_str().to_owned(), json));
            Ok(())
        }
    }
    let mut c = Collect(Vec::new());
    let _ = r.key_values().visit(&mut c);
    c.0
}

/// Quoted only when needed to keep `key=value` pairs unambiguous.
fn text_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s)
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') =>
        {
            format!("{s:?}")
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An error with its causes, `error: cause: cause`, as anyhow's `{:#}`
/// prints them: for library errors whose cause (an errno, the verifier's
/// log) is only in `source()`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_become_typed_fields() {
        let kvs: [(&str, kv::Value<'_>); 3] = [
            ("client", kv::Value::from("checkout")),
            ("port", kv::Value::from(5432u16)),
            ("rule", kv::Value::from("no allow-rule matches")),
        ];
        let rec = log::Record::builder()
            .args(format_args!("x"))
            .key_values(&kvs)
            .build();
        let f = fields(&rec);
        assert_eq!(f[0], ("client".into(), "checkout".into()));
        assert_eq!(f[1], ("port".into(), 5432.into()));
        assert_eq!(text_value(&f[2].1), r#""no allow-rule matches""#);
        assert_eq!(text_value(&f[0].1), "checkout");
    }
}
