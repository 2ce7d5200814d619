//! The Jinja engine behind [`ChatTemplate`](super::ChatTemplate) (feature `jinja`): minijinja made to
//! behave like the environment Hugging Face transformers renders chat templates with
//! (`_compile_jinja_template`: `trim_blocks`, `lstrip_blocks`, no trailing newline, the `raise_exception`
//! and `strftime_now` globals, a `tojson` that is `json.dumps(ensure_ascii=False)`, Python string and dict
//! methods through minijinja-contrib's pycompat). What it does not: tool calling, or HF's
//! `{% generation %}` tag (used only to mask training targets; templates that contain it fail to compile).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{context, AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::ChatMessage;
use crate::{Error, Result};

/// The name the template is stored under; it appears in error locations (`chat_template:LINE`).
const TEMPLATE_NAME: &str = "chat_template";

/// A compiled template.
#[derive(Clone)]
pub(super) struct Jinja {
    env: Environment<'static>,
}

impl Jinja {
    /// Compiles `source` once. A syntax error becomes [`Error::Template`] naming the line
    /// (`... (in chat_template:LINE)`).
    pub(super) fn new(source: &str) -> Result<Jinja> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        // jinja2's default `Undefined` prints as "" and is falsy; attribute access on it still fails.
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(template_error)?;
        Ok(Jinja { env })
    }

    /// Renders `head ++ tail` with the variables `apply_chat_template` passes: `messages`,
    /// `add_generation_prompt`, `bos_token`, `eos_token`, and `tools` / `documents` as none.
    pub(super) fn render(
        &self,
        head: &[ChatMessage],
        tail: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        let messages: Vec<Value> = head
            .iter()
            .chain(tail)
            .map(|m| Value::from_object(MessageValue(m.clone())))
            .collect();
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .expect("added in Jinja::new");
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
            tools => (),
            documents => (),
        };
        template.render(ctx).map_err(template_error)
    }
}

/// A message as the template sees it: a map with `role` and `content`, enumerated in that order so that
/// `tojson` writes the keys as Python's dicts would.
#[derive(Debug)]
struct MessageValue(ChatMessage);

impl Object for MessageValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(Value::from(self.0.role.as_str())),
            "content" => Some(Value::from(self.0.content.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

/// minijinja's message plus the location, e.g. `invalid operation: Conversation roles must alternate
/// (in chat_template:3)`, followed by any underlying causes.
fn template_error(err: minijinja::Error) -> Error {
    let mut what = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        what.push_str(": ");
        what.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::Template { what }
}

/// HF's `raise_exception(message)`: aborts rendering with the template's own message.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// HF's `strftime_now(format)`, in UTC (HF uses the local time zone; servers mostly run in UTC, and UTC
/// keeps this free of time-zone data). See [`strftime`] for the directives understood.
fn strftime_now(format: &str) -> std::result::Result<String, minijinja::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    strftime(format, now)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A small `strftime` over a UTC Unix time, covering what chat templates use for "today's date":
/// `%Y %y %m %d %e %B %b %A %a %H %M %S %j %%`. Other directives are a template error rather than
/// silently wrong text.
fn strftime(format: &str, unix_seconds: i64) -> std::result::Result<String, minijinja::Error> {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let text = match chars.next() {
            Some('Y') => year.to_string(),
            Some('y') => format!("{:02}", year.rem_euclid(100)),
            Some('m') => format!("{month:02}"),
            Some('d') => format!("{day:02}"),
            Some('e') => format!("{day:2}"),
            Some('B') => MONTHS[month as usize - 1].to_owned(),
            Some('b') => MONTHS[month as usize - 1][..3].to_owned(),
            Some('A') => WEEKDAYS[weekday].to_owned(),
            Some('a') => WEEKDAYS[weekday][..3].to_owned(),
            Some('H') => format!("{:02}", secs / 3600),
            Some('M') => format!("{:02}", secs / 60 % 60),
            Some('S') => format!("{:02}", secs % 60),
            Some('j') => format!("{day_of_year:03}"),
            Some('%') => "%".to_owned(),
            other => {
                let directive = other.map_or(String::from("%"), |c| format!("%{c}"));
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported directive `{directive}`"),
                ));
            }
        };
        out.push_str(&text);
    }
    Ok(out)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms", `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Inverse of [`civil_from_days`] (same source, `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// HF's `tojson` filter: `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)`, with those keyword arguments (and `indent` also positional). Unlike minijinja's
/// built-in `tojson` it neither escapes `<`, `>`, `&`, `'` for HTML nor reorders keys, so tool schemas
/// render byte for byte as in Python.
fn tojson(
    value: &Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    let indent = match indent {
        Some(indent) => Some(indent),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_str(), v.as_usize()) {
            (Some(s), _) => Some(s.to_owned()),
            (None, Some(n)) => Some(" ".repeat(n)),
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer, a string or none",
                ))
            }
        },
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let separators = kwargs.get::<Option<Vec<String>>>("separators")?;
    kwargs.assert_all_used()?;
    // Python's defaults: ", " between items on one line; "," when each item gets its own line.
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be two strings",
            ))
        }
        None if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
    };
    let mut json = Json {
        indent,
        item_sep,
        key_sep,
        sort_keys,
        ensure_ascii,
        out: String::new(),
    };
    json.value(value, 0)?;
    Ok(Value::from_safe_string(json.out))
}

/// Writer for [`tojson`]: mirrors the output of Python's `json` module.
struct Json {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
    out: String,
}

impl Json {
    fn value(&mut self, v: &Value, depth: usize) -> std::result::Result<(), minijinja::Error> {
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => self.out.push_str("null"),
            ValueKind::Bool => self
                .out
                .push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number if v.is_integer() => self.out.push_str(&v.to_string()),
            ValueKind::Number => self.out.push_str(&python_float(f64::try_from(v.clone())?)),
            ValueKind::String => self.string(v.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.container('[', ']', items.len(), depth, |json, i, depth| {
                    json.value(&items[i], depth)
                })?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in v.try_iter()? {
                    let item = v.get_item(&key)?;
                    let key = match key.as_str() {
                        Some(s) => s.to_owned(),
                        None if key.is_none() => "null".to_owned(),
                        None if key.kind() == ValueKind::Bool => {
                            (if key.is_true() { "true" } else { "false" }).into()
                        }
                        None => key.to_string(),
                    };
                    entries.push((key, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container('{', '}', entries.len(), depth, |json, i, depth| {
                    json.string(&entries[i].0);
                    let key_sep = json.key_sep.clone();
                    json.out.push_str(&key_sep);
                    json.value(&entries[i].1, depth)
                })?;
            }
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: cannot serialize a value of kind {}", v.kind()),
                ))
            }
        }
        Ok(())
    }

    /// `open item (sep item)* close`, one item per line when indenting; `[]` / `{}` when empty.
    fn container(
        &mut self,
        open: char,
        close: char,
        n: usize,
        depth: usize,
        mut item: impl FnMut(&mut Json, usize, usize) -> std::result::Result<(), minijinja::Error>,
    ) -> std::result::Result<(), minijinja::Error> {
        self.out.push(open);
        if n > 0 {
            for i in 0..n {
                if i > 0 {
                    let sep = self.item_sep.clone();
                    self.out.push_str(&sep);
                }
                self.newline(depth + 1);
                item(self, i, depth + 1)?;
            }
            self.newline(depth);
        }
        self.out.push(close);
        Ok(())
    }

    fn newline(&mut self, depth: usize) {
        if let Some(indent) = &self.indent {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str(indent);
            }
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        self.out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// Python's `repr(float)` as `json` writes it: shortest round-trip digits (as Rust's `Display`), a
/// trailing `.0` for integral values, exponent form outside [1e-4, 1e16) with a signed two-digit
/// exponent, and `NaN` / `Infinity`.
fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let abs = v.abs();
    if abs == 0.0 || (1e-4..1e16).contains(&abs) {
        let s = v.to_string();
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exponent) = s.split_once('e').expect("LowerExp writes an exponent");
        let exponent: i32 = exponent
            .parse()
            .expect("LowerExp writes an integer exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2024-07-26 13:05:09 UTC, a Friday; day 208 of a leap year.
        let t = 1_721_999_109;
        assert_eq!(strftime("%d %b %Y", t).unwrap(), "26 Jul 2024");
        assert_eq!(
            strftime("%A %B %e, %y %H:%M:%S %j %%", t).unwrap(),
            "Friday July 26, 24 13:05:09 208 %"
        );
        assert_eq!(strftime("%Y-%m-%d %a", 0).unwrap(), "1970-01-01 Thu");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400).unwrap(), "2000-02-29");
        assert_eq!(strftime("%Y-%m-%d", -86_400).unwrap(), "1969-12-31");
        assert!(strftime("%Q", t).is_err());
        assert!(strftime("100%", t).is_err());
        for days in [-800_000, -1, 0, 59, 365, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn python_float_repr() {
        for (v, want) in [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (123456789.0, "123456789.0"),
            (1e300, "1e+300"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(python_float(v), want);
        }
    }
}
