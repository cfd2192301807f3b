//! Templates in alert labels and annotations, as Prometheus writes them: Go's `text/template`
//! with `$labels`, `$value`, `$externalLabels` and `$externalURL` defined, and Prometheus'
//! helper functions (`humanize`, `humanizeDuration`, `toUpper`, `reReplaceAll`, ...).
//!
//! The engine is the `gotmpl` crate, a maintained, complete port of Go's `text/template`
//! (pipelines, `if`/`range`/`with`, `printf` with Go's verbs, whitespace trimming) that forbids
//! `unsafe` and panics. `gtmpl`, the older port, was considered: its last release is from 2021
//! and it lacks `printf`'s Go formatting, which `humanize` and most real annotations rely on.
//! Jinja-style engines (`minijinja`, `tera`) cannot read `{{ $labels.x }}` at all.
//!
//! As in Prometheus, a template that fails while expanding does not fail the rule: its text
//! becomes `<error expanding template: ...>` and the failure is logged. Templates are parsed
//! when rule files are loaded, so a syntax error is a rule-file error with its line.
//! Prometheus' `query` function (a PromQL query from inside a template) is not offered.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, TemplateError, Value, ValueFunc};

use crate::promql::Labels;

/// What Prometheus defines before every template, so `$labels.x` and `$value` work.
const DEFINITIONS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
                           {{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The data a template sees.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    /// The alert's series labels (`$labels`).
    pub labels: &'a Labels,
    /// The sample value (`$value`).
    pub value: f64,
    /// The base URL of this service (`$externalURL`).
    pub external_url: &'a str,
}

/// Parses `text` as a template (without expanding it): the check of a rule file.
pub fn check(text: &str) -> Result<(), TemplateError> {
    parse("check", text).map(drop)
}

/// Expands `text` for one alert; a failure becomes `<error expanding template: ...>`, as in
/// Prometheus, and is logged with `what` (`"annotation summary of rule X"`).
pub fn expand(what: &str, text: &str, data: &TemplateData<'_>) -> String {
    if !text.contains("{{") {
        return text.to_owned();
    }
    match parse(what, text).and_then(|t| t.execute_to_string(&data_value(data))) {
        Ok(expanded) => expanded,
        Err(error) => {
            tracing::warn!(template = what, %error, "expanding a template failed");
            format!("<error expanding template: {error}>")
        }
    }
}

fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
    let mut source = String::with_capacity(DEFINITIONS.len() + text.len());
    source.push_str(DEFINITIONS);
    source.push_str(text);
    Template::new(name).funcs(functions()).parse(&source)
}

fn data_value(data: &TemplateData<'_>) -> Value {
    let labels: BTreeMap<Arc<str>, Value> = data
        .labels
        .iter()
        .map(|(name, value)| (Arc::from(name), Value::String(Arc::from(value))))
        .collect();
    let mut map: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    map.insert("Labels".into(), Value::Map(Arc::new(labels)));
    map.insert("ExternalLabels".into(), Value::Map(Arc::default()));
    map.insert(
        "ExternalURL".into(),
        Value::String(data.external_url.into()),
    );
    map.insert("Value".into(), Value::Float(data.value));
    Value::Map(Arc::new(map))
}

/// Go's `fmt.Sprintf(format, v)`, through the engine's own `printf`.
fn sprintf(format: &str, v: f64) -> Result<String, TemplateError> {
    let printf = gotmpl::Template::new("printf")
        .parse("{{printf .F .V}}")?
        .execute_to_string(&Value::Map(Arc::new(BTreeMap::from([
            (Arc::from("F"), Value::String(format.into())),
            (Arc::from("V"), Value::Float(v)),
        ]))))?;
    Ok(printf)
}

/// A function argument as a number: floats, integers and numeric strings, as Prometheus'
/// `convertToFloat` takes them.
fn number(name: &str, args: &[Value]) -> Result<f64, TemplateError> {
    let [arg] = args else {
        return Err(TemplateError::ArgCount {
            name: name.to_owned(),
            expected: 1,
            got: args.len(),
        });
    };
    match arg {
        Value::Float(v) => Ok(*v),
        Value::Int(v) => Ok(*v as f64),
        Value::Uint(v) => Ok(*v as f64),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| TemplateError::Exec(format!("{name}: {s:?} is not a number"))),
        other => Err(TemplateError::Exec(format!(
            "{name}: cannot convert {} to a number",
            other.type_name()
        ))),
    }
}

fn text<'a>(name: &str, args: &'a [Value], index: usize) -> Result<&'a str, TemplateError> {
    args.get(index)
        .and_then(Value::as_str)
        .ok_or_else(|| TemplateError::Exec(format!("{name}: argument {index} must be a string")))
}

fn string(s: String) -> Value {
    Value::String(s.into())
}

/// `%.4g` with SI prefixes: 1234567 → `1.235M`, 0.00123 → `1.23m`.
pub fn humanize(v: f64) -> Result<String, TemplateError> {
    if v == 0.0 || !v.is_finite() {
        return sprintf("%.4g", v);
    }
    let (mut v, mut prefix) = (v, "");
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    Ok(sprintf("%.4g", v)? + prefix)
}

fn humanize_1024(v: f64) -> Result<String, TemplateError> {
    if v.abs() <= 1.0 || !v.is_finite() {
        return sprintf("%.4g", v);
    }
    let (mut v, mut prefix) = (v, "");
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    Ok(sprintf("%.4g", v)? + prefix)
}

/// Seconds as `1d 2h 3m 4s`, `3m 4s`, `4.5s` or `12ms`, as Prometheus writes them.
pub fn humanize_duration(v: f64) -> Result<String, TemplateError> {
    if !v.is_finite() {
        return sprintf("%.4g", v);
    }
    if v == 0.0 {
        return Ok(sprintf("%.4g", v)? + "s");
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let whole = v.abs() as i64;
        let (days, hours, minutes, seconds) = (
            whole / 86_400,
            whole / 3_600 % 24,
            whole / 60 % 60,
            whole % 60,
        );
        return Ok(if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", sprintf("%.4g", v.abs())?)
        });
    }
    let (mut v, mut prefix) = (v, "");
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    Ok(format!("{}{prefix}s", sprintf("%.4g", v)?))
}

fn regex(name: &str, pattern: &str) -> Result<regex::Regex, TemplateError> {
    regex::Regex::new(pattern).map_err(|e| TemplateError::Exec(format!("{name}: {e}")))
}

/// Prometheus' template functions, less `query` and the HTML / link helpers.
fn functions() -> BTreeMap<String, ValueFunc> {
    let mut f: BTreeMap<String, ValueFunc> = BTreeMap::new();
    let mut add = |name: &'static str, func: ValueFunc| {
        f.insert(name.to_owned(), func);
    };
    add(
        "humanize",
        Arc::new(|a| humanize(number("humanize", a)?).map(string)),
    );
    add(
        "humanize1024",
        Arc::new(|a| humanize_1024(number("humanize1024", a)?).map(string)),
    );
    add(
        "humanizePercentage",
        Arc::new(|a| {
            Ok(string(
                sprintf("%.4g", number("humanizePercentage", a)? * 100.0)? + "%",
            ))
        }),
    );
    add(
        "humanizeDuration",
        Arc::new(|a| humanize_duration(number("humanizeDuration", a)?).map(string)),
    );
    add(
        "toUpper",
        Arc::new(|a| Ok(string(text("toUpper", a, 0)?.to_uppercase()))),
    );
    add(
        "toLower",
        Arc::new(|a| Ok(string(text("toLower", a, 0)?.to_lowercase()))),
    );
    add(
        "title",
        Arc::new(|a| {
            let mut out = String::new();
            let mut start = true;
            for c in text("title", a, 0)?.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            Ok(string(out))
        }),
    );
    add(
        "match",
        Arc::new(|a| {
            let pattern = regex("match", text("match", a, 0)?)?;
            Ok(Value::Bool(pattern.is_match(text("match", a, 1)?)))
        }),
    );
    add(
        "reReplaceAll",
        Arc::new(|a| {
            let pattern = regex("reReplaceAll", text("reReplaceAll", a, 0)?)?;
            let replacement = text("reReplaceAll", a, 1)?;
            let input = text("reReplaceAll", a, 2)?;
            Ok(string(pattern.replace_all(input, replacement).into_owned()))
        }),
    );
    add(
        "stripPort",
        Arc::new(|a| {
            let address = text("stripPort", a, 0)?;
            let host = match address.rsplit_once(':') {
                Some((host, port))
                    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    host.trim_start_matches('[').trim_end_matches(']')
                }
                _ => address,
            };
            Ok(string(host.to_owned()))
        }),
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, value: f64) -> String {
        let labels = Labels::new([("service", "checkout"), ("instance", "10.0.0.7:8080")]);
        expand(
            "test",
            text,
            &TemplateData {
                labels: &labels,
                value,
                external_url: "http://tb:8080",
            },
        )
    }

    #[test]
    fn labels_value_and_printf_expand_as_in_prometheus() {
        assert_eq!(
            run("{{ $labels.service }} at {{ $value }}", 0.0625),
            "checkout at 0.0625"
        );
        assert_eq!(
            run(
                "{{ printf \"%.1f\" $value }}% on {{ .Labels.instance }}",
                12.345
            ),
            "12.3% on 10.0.0.7:8080"
        );
        assert_eq!(run("{{ $externalURL }}", 1.0), "http://tb:8080");
        assert_eq!(run("plain text", 1.0), "plain text");
        assert_eq!(run("{{ $labels.nothing }}", 1.0), "<no value>");
    }

    #[test]
    fn helper_functions_format_like_prometheus() {
        let cases = [
            ("{{ humanize $value }}", 1_234_567.0, "1.235M"),
            ("{{ humanize $value }}", 0.001_234, "1.234m"),
            ("{{ humanize $value }}", 0.0, "0"),
            ("{{ humanize1024 $value }}", 2048.0, "2ki"),
            ("{{ humanizePercentage $value }}", 0.0567, "5.67%"),
            ("{{ humanizeDuration $value }}", 93_784.0, "1d 2h 3m 4s"),
            ("{{ humanizeDuration $value }}", 61.0, "1m 1s"),
            ("{{ humanizeDuration $value }}", 4.5, "4.5s"),
            ("{{ humanizeDuration $value }}", 0.012, "12ms"),
            ("{{ $labels.service | toUpper }}", 0.0, "CHECKOUT"),
            ("{{ title \"hello big world\" }}", 0.0, "Hello Big World"),
            ("{{ $labels.instance | stripPort }}", 0.0, "10.0.0.7"),
            (
                "{{ reReplaceAll \"^(.*):.*$\" \"host $1\" $labels.instance }}",
                0.0,
                "host 10.0.0.7",
            ),
            (
                "{{ if match \"^check\" $labels.service }}yes{{ end }}",
                0.0,
                "yes",
            ),
        ];
        for (template, value, want) in cases {
            assert_eq!(run(template, value), want, "{template}");
        }
    }

    #[test]
    fn a_failing_template_says_so_instead_of_failing_the_rule() {
        let out = run("{{ humanize \"abc\" }}", 1.0);
        assert!(out.starts_with("<error expanding template: "), "{out}");
        assert!(check("{{ $labels.service").is_err());
        assert!(check("{{ $labels.service }} {{ humanize $value }}").is_ok());
    }
}
