//! SQL functions for security work, registered in every query session:
//!
//! | function | returns | what |
//! |---|---|---|
//! | `json_get(json, '/pointer')` | text | the value at an RFC 6901 JSON pointer: strings unquoted, other values as JSON text |
//! | `json_get_int` / `json_get_float` / `json_get_bool` | bigint / double / boolean | the same value typed (numbers, or strings holding one) |
//! | `cidr_contains(ip, '10.0.0.0/8')` | boolean | whether an IPv4 or IPv6 address lies in a network |
//! | `match(text, 'words')` | boolean | full-text search: every word, case-insensitive, on word boundaries |
//! | `time_bucket('5 minutes', time)` | timestamp | the start of the fixed-size bucket (from the Unix epoch) `time` falls in |
//!
//! Bad values in a row (text that is not JSON, an address that does not parse) give NULL for that
//! row, never an error: one bad row must not hide the others. Bad *arguments* written in the query
//! (a pointer without its leading `/`, a CIDR like `10.0.0/8`, an empty search) are errors that
//! say what is wrong. None of these functions reads or writes anything outside its arguments.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringArray, StringBuilder,
    TimestampNanosecondArray,
};
use datafusion::arrow::compute::kernels::cast_utils::parse_interval_month_day_nano;
use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use ipnet::IpNet;
use serde_json::Value;

/// Registers every function of this module in `ctx`.
pub fn register(ctx: &SessionContext) {
    for kind in [
        JsonKind::Text,
        JsonKind::Int,
        JsonKind::Float,
        JsonKind::Bool,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(JsonGet::new(kind)));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(CidrContains::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(TextMatch::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(TimeBucket::new()));
}

/// The names of the functions this module adds, for documentation and `SHOW FUNCTIONS`-like
/// listings.
pub const NAMES: &[&str] = &[
    "json_get",
    "json_get_int",
    "json_get_float",
    "json_get_bool",
    "cidr_contains",
    "match",
    "time_bucket",
];

/// Coerces every argument to `Utf8` (NULL literals included), refusing other types with the
/// function's name in the message.
fn coerce_all_text(name: &str, arg_types: &[DataType], count: usize) -> Result<Vec<DataType>> {
    if arg_types.len() != count {
        return plan_err!("{name} takes {count} arguments, not {}", arg_types.len());
    }
    for (i, t) in arg_types.iter().enumerate() {
        if !is_text_or_null(t) {
            return plan_err!("{name}: argument {} must be text, not {t}", i + 1);
        }
    }
    Ok(vec![DataType::Utf8; count])
}

fn is_text_or_null(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// An argument after coercion to `Utf8`: a literal (the same for every row) or a column.
enum TextArg<'a> {
    Scalar(Option<&'a str>),
    Column(&'a StringArray),
}

impl<'a> TextArg<'a> {
    fn new(name: &str, value: &'a ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(ScalarValue::Utf8(s)) => Ok(TextArg::Scalar(s.as_deref())),
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(TextArg::Scalar(None)),
            ColumnarValue::Array(a) => match a.as_any().downcast_ref::<StringArray>() {
                Some(s) => Ok(TextArg::Column(s)),
                None => exec_err!("{name}: expected text, got {}", a.data_type()),
            },
            ColumnarValue::Scalar(other) => {
                exec_err!("{name}: expected text, got {}", other.data_type())
            }
        }
    }

    fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            TextArg::Scalar(s) => *s,
            TextArg::Column(a) => (!a.is_null(row)).then(|| a.value(row)),
        }
    }
}

/// The number of rows a call produces: that of its first column argument, or 1 when every
/// argument is a literal.
fn rows_of(args: &ScalarFunctionArgs) -> usize {
    args.args
        .iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(args.number_rows)
}

/// The result as a scalar when every argument was one (so constant folding keeps working).
fn finish(args: &ScalarFunctionArgs, out: ArrayRef) -> Result<ColumnarValue> {
    if args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)))
    {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

// ---------------------------------------------------------------------------------------------
// json_get

/// What a `json_get*` function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum JsonKind {
    Text,
    Int,
    Float,
    Bool,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonGet {
    kind: JsonKind,
    signature: Signature,
}

impl JsonGet {
    fn new(kind: JsonKind) -> Self {
        JsonGet {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Checks a JSON pointer written in a query: empty (the whole document) or starting with `/`.
fn check_pointer(name: &str, pointer: &str) -> Result<()> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        exec_err!(
            "{name}: {pointer:?} is not a JSON pointer; write it like '/metadata/name' (RFC 6901: \
             '/' before each key, '~1' for a '/' inside a key, '/0' for the first array item)"
        )
    }
}

/// The value at `pointer` in the JSON `text`; `None` when the text is not JSON, the pointer
/// leads nowhere, or the value there is JSON `null`.
pub fn json_lookup(text: &str, pointer: &str) -> Option<Value> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let mut doc = doc;
    let found = doc.pointer_mut(pointer)?.take();
    (!found.is_null()).then_some(found)
}

/// A JSON value as text: strings without their quotes, everything else as compact JSON.
pub fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON value as an integer: integral numbers, and strings holding one (Kubernetes writes
/// many numbers as strings).
pub fn json_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f >= i64::MIN as f64 && f <= i64::MAX as f64).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON value as a float: numbers, and strings holding one.
pub fn json_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A JSON value as a boolean: `true`/`false`, and the strings `"true"`/`"false"`.
pub fn json_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

impl ScalarUDFImpl for JsonGet {
    fn name(&self) -> &str {
        match self.kind {
            JsonKind::Text => "json_get",
            JsonKind::Int => "json_get_int",
            JsonKind::Float => "json_get_float",
            JsonKind::Bool => "json_get_bool",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all_text(self.name(), arg_types, 2)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            JsonKind::Text => DataType::Utf8,
            JsonKind::Int => DataType::Int64,
            JsonKind::Float => DataType::Float64,
            JsonKind::Bool => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let doc = TextArg::new(name, &args.args[0])?;
        let pointer = TextArg::new(name, &args.args[1])?;
        if let TextArg::Scalar(Some(p)) = pointer {
            check_pointer(name, p)?;
        }
        let rows = rows_of(&args);
        let mut values = Vec::with_capacity(rows);
        for row in 0..rows {
            let value = match (doc.get(row), pointer.get(row)) {
                (Some(d), Some(p)) if p.is_empty() || p.starts_with('/') => json_lookup(d, p),
                _ => None,
            };
            values.push(value);
        }
        let out: ArrayRef = match self.kind {
            JsonKind::Text => {
                let mut b = StringBuilder::with_capacity(rows, rows * 16);
                for v in &values {
                    b.append_option(v.as_ref().map(json_text));
                }
                Arc::new(b.finish())
            }
            JsonKind::Int => {
                let mut b = Int64Builder::with_capacity(rows);
                for v in &values {
                    b.append_option(v.as_ref().and_then(json_int));
                }
                Arc::new(b.finish())
            }
            JsonKind::Float => {
                let mut b = Float64Builder::with_capacity(rows);
                for v in &values {
                    b.append_option(v.as_ref().and_then(json_float));
                }
                Arc::new(b.finish())
            }
            JsonKind::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows);
                for v in &values {
                    b.append_option(v.as_ref().and_then(json_bool));
                }
                Arc::new(b.finish())
            }
        };
        finish(&args, out)
    }
}

// ---------------------------------------------------------------------------------------------
// cidr_contains

#[derive(Debug, PartialEq, Eq, Hash)]
struct CidrContains {
    signature: Signature,
}

impl CidrContains {
    fn new() -> Self {
        CidrContains {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Parses a network written in a query: `10.0.0.0/8`, `fd00::/8`, or a single address (a /32
/// or /128).
pub fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    IpNet::from_str(text)
        .ok()
        .or_else(|| IpAddr::from_str(text).ok().map(IpNet::from))
}

/// Whether `ip` lies in `net`. An IPv4 address written IPv4-mapped (`::ffff:10.1.2.3`) is
/// matched against IPv4 networks too, as dual-stack sockets report addresses that way.
pub fn net_contains(net: &IpNet, ip: &str) -> Option<bool> {
    let ip = IpAddr::from_str(ip.trim()).ok()?;
    let ip = match (net, ip) {
        (IpNet::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    Some(net.contains(&ip))
}

impl ScalarUDFImpl for CidrContains {
    fn name(&self) -> &str {
        "cidr_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all_text(self.name(), arg_types, 2)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ip = TextArg::new(self.name(), &args.args[0])?;
        let cidr = TextArg::new(self.name(), &args.args[1])?;
        // A network written in the query is parsed once, and a bad one is an error; networks
        // read from a column are parsed per row, and a bad one gives NULL.
        let literal = match cidr {
            TextArg::Scalar(Some(text)) => match parse_network(text) {
                Some(net) => Some(net),
                None => {
                    return exec_err!(
                        "cidr_contains: {text:?} is not a network; write it like '10.0.0.0/8', \
                         '192.168.1.7' or 'fd00::/8'"
                    )
                }
            },
            _ => None,
        };
        let rows = rows_of(&args);
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..rows {
            let result = match (ip.get(row), &literal) {
                (Some(ip), Some(net)) => net_contains(net, ip),
                (Some(ip), None) => cidr
                    .get(row)
                    .and_then(parse_network)
                    .and_then(|net| net_contains(&net, ip)),
                (None, _) => None,
            };
            out.append_option(result);
        }
        finish(&args, Arc::new(out.finish()))
    }
}

// ---------------------------------------------------------------------------------------------
// match

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextMatch {
    signature: Signature,
}

impl TextMatch {
    fn new() -> Self {
        TextMatch {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// A compiled full-text search: every word must occur in the text, case-insensitively, with a
/// word boundary on each side.
///
/// A "word" of the search is anything between spaces, so `10.0.0.1`, `kube-system` and
/// `ghp_Ab12` are searched as they are written; a boundary is where a letter, digit or `_` meets
/// anything else (or the text's start or end). `match(msg, '10.0.0.1')` therefore finds
/// `from 10.0.0.1:443` but not `10.0.0.12`. Hand-written over Aho–Corasick because no crate
/// offers "all of these words, on boundaries" over one pass of the text.
#[derive(Debug)]
pub struct WordSearch {
    words: Vec<String>,
    automaton: AhoCorasick,
    /// Whether the text must be lowercased first (some word is not ASCII); otherwise the
    /// automaton matches ASCII case-insensitively on the text as it is.
    unicode: bool,
}

impl WordSearch {
    /// Compiles a search; `None` when it holds no word.
    pub fn new(query: &str) -> Option<WordSearch> {
        let unicode = !query.is_ascii();
        let mut words: Vec<String> = query
            .split_whitespace()
            .map(|w| {
                if unicode {
                    w.to_lowercase()
                } else {
                    w.to_owned()
                }
            })
            .collect();
        words.sort();
        words.dedup();
        if words.is_empty() {
            return None;
        }
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(!unicode)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .ok()?;
        Some(WordSearch {
            words,
            automaton,
            unicode,
        })
    }

    /// Whether every word occurs in `text` on word boundaries.
    pub fn matches(&self, text: &str) -> bool {
        let lowered;
        let haystack = if self.unicode {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let mut found = vec![false; self.words.len()];
        let mut missing = self.words.len();
        for m in self.automaton.find_overlapping_iter(haystack) {
            let i = m.pattern().as_usize();
            if found[i] {
                continue;
            }
            let word = &self.words[i];
            if bounded_before(haystack, m.start(), word) && bounded_after(haystack, m.end(), word) {
                found[i] = true;
                missing -= 1;
                if missing == 0 {
                    return true;
                }
            }
        }
        false
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A word that starts with a word character must not continue one in the text.
fn bounded_before(text: &str, start: usize, word: &str) -> bool {
    if !word.chars().next().is_some_and(is_word_char) {
        return true;
    }
    !text[..start].chars().next_back().is_some_and(is_word_char)
}

/// A word that ends with a word character must not be followed by one in the text.
fn bounded_after(text: &str, end: usize, word: &str) -> bool {
    if !word.chars().next_back().is_some_and(is_word_char) {
        return true;
    }
    !text[end..].chars().next().is_some_and(is_word_char)
}

impl ScalarUDFImpl for TextMatch {
    fn name(&self) -> &str {
        "match"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all_text(self.name(), arg_types, 2)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let text = TextArg::new(self.name(), &args.args[0])?;
        let query = TextArg::new(self.name(), &args.args[1])?;
        let compiled = match query {
            TextArg::Scalar(Some(q)) => match WordSearch::new(q) {
                Some(s) => Some(s),
                None => return exec_err!("match: the search {q:?} holds no word"),
            },
            _ => None,
        };
        let rows = rows_of(&args);
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..rows {
            let result = match (text.get(row), &compiled) {
                (Some(t), Some(search)) => Some(search.matches(t)),
                (Some(t), None) => query
                    .get(row)
                    .and_then(WordSearch::new)
                    .map(|s| s.matches(t)),
                (None, _) => None,
            };
            out.append_option(result);
        }
        finish(&args, Arc::new(out.finish()))
    }
}

// ---------------------------------------------------------------------------------------------
// time_bucket

#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeBucket {
    signature: Signature,
}

impl TimeBucket {
    fn new() -> Self {
        TimeBucket {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// Parses a bucket width: SQL interval text (`'5 minutes'`, `'1 hour 30 minutes'`) or a short
/// duration (`'5m'`, `'30s'`, `'1h'`). Months and years are refused: their length varies.
pub fn parse_bucket(text: &str) -> std::result::Result<i64, String> {
    let nanos = match parse_interval_month_day_nano(text) {
        Ok(i) if i.months != 0 => {
            return Err(format!(
                "{text:?}: months and years vary in length; use days or less, like '30 days'"
            ))
        }
        Ok(i) => i64::from(i.days)
            .checked_mul(NANOS_PER_DAY)
            .and_then(|d| d.checked_add(i.nanoseconds)),
        Err(_) => humantime::parse_duration(text.trim())
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok()),
    };
    match nanos {
        Some(n) if n > 0 => Ok(n),
        Some(_) => Err(format!("{text:?}: the width must be positive")),
        None => Err(format!(
            "{text:?} is not an interval; write it like '5 minutes', '1 hour' or '30s'"
        )),
    }
}

/// The start of the `width`-nanosecond bucket (counted from the Unix epoch) `t` falls in.
pub fn bucket_start(t: i64, width: i64) -> i64 {
    t - t.rem_euclid(width)
}

fn interval_nanos(v: &ScalarValue) -> std::result::Result<Option<i64>, String> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
            s.as_deref().map(parse_bucket).transpose()
        }
        ScalarValue::IntervalMonthDayNano(i) => match i {
            None => Ok(None),
            Some(i) if i.months != 0 => {
                Err("months and years vary in length; use days or less".into())
            }
            Some(i) => Ok(Some(i64::from(i.days) * NANOS_PER_DAY + i.nanoseconds)),
        },
        ScalarValue::IntervalDayTime(i) => Ok(
            i.map(|i| i64::from(i.days) * NANOS_PER_DAY + i64::from(i.milliseconds) * 1_000_000)
        ),
        ScalarValue::Null => Ok(None),
        other => Err(format!("expected an interval, got {}", other.data_type())),
    }
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [width, time] = arg_types else {
            return plan_err!(
                "time_bucket takes 2 arguments (width, time), not {}",
                arg_types.len()
            );
        };
        let width = match width {
            t if is_text_or_null(t) => DataType::Utf8,
            DataType::Interval(IntervalUnit::MonthDayNano | IntervalUnit::DayTime) => width.clone(),
            DataType::Interval(IntervalUnit::YearMonth) => {
                return plan_err!("time_bucket: months and years vary in length; use days or less")
            }
            other => {
                return plan_err!(
                    "time_bucket: the width must be an interval like '5 minutes', not {other}"
                )
            }
        };
        let time = match time {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
            t if is_text_or_null(t) => {
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
            }
            other => return plan_err!("time_bucket: the time must be a timestamp, not {other}"),
        };
        Ok(vec![width, time])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match arg_types.get(1) {
            Some(DataType::Timestamp(_, tz)) => {
                DataType::Timestamp(TimeUnit::Nanosecond, tz.clone())
            }
            _ => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(width) = &args.args[0] else {
            return exec_err!(
                "time_bucket: the width must be written in the query, like time_bucket('5 minutes', time)"
            );
        };
        let width = match interval_nanos(width) {
            Ok(w) => w,
            Err(e) => return exec_err!("time_bucket: {e}"),
        };
        let tz = match args.return_field.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let times = args.args[1].to_array(args.number_rows)?;
        let Some(times) = times.as_any().downcast_ref::<TimestampNanosecondArray>() else {
            return exec_err!(
                "time_bucket: expected a timestamp, got {}",
                times.data_type()
            );
        };
        let out: TimestampNanosecondArray = match width {
            Some(w) => times.unary_opt(|t| Some(bucket_start(t, w))),
            None => TimestampNanosecondArray::new_null(times.len()),
        };
        finish(&args, Arc::new(out.with_timezone_opt(tz)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_lookup_follows_pointers_and_gives_none_for_bad_input() {
        let doc = r#"{"metadata":{"name":"web","labels":{"app/tier":"front"}},"spec":{"replicas":3,"ratio":0.5,"paused":false,"items":[{"n":"a"},{"n":"b"}]},"gone":null}"#;
        assert_eq!(json_lookup(doc, "/metadata/name"), Some(json!("web")));
        assert_eq!(
            json_lookup(doc, "/metadata/labels/app~1tier"),
            Some(json!("front"))
        );
        assert_eq!(json_lookup(doc, "/spec/items/1/n"), Some(json!("b")));
        assert_eq!(json_lookup(doc, "/gone"), None);
        assert_eq!(json_lookup(doc, "/nope"), None);
        assert_eq!(json_lookup("{not json", "/a"), None);
        assert_eq!(json_lookup("", "/a"), None);
        assert_eq!(json_text(&json!("x")), "x");
        assert_eq!(json_text(&json!({"a": [1]})), r#"{"a":[1]}"#);
        assert_eq!(json_int(&json!(3)), Some(3));
        assert_eq!(json_int(&json!("42")), Some(42));
        assert_eq!(json_int(&json!(2.0)), Some(2));
        assert_eq!(json_int(&json!(2.5)), None);
        assert_eq!(json_int(&json!("x")), None);
        assert_eq!(json_float(&json!(0.5)), Some(0.5));
        assert_eq!(json_float(&json!("1e3")), Some(1000.0));
        assert_eq!(json_float(&json!(true)), None);
        assert_eq!(json_bool(&json!(false)), Some(false));
        assert_eq!(json_bool(&json!("TRUE")), Some(true));
        assert_eq!(json_bool(&json!(1)), None);
        assert!(check_pointer("json_get", "metadata.name").is_err());
        assert!(check_pointer("json_get", "").is_ok());
    }

    #[test]
    fn networks_match_v4_v6_and_mapped_addresses() {
        let net = parse_network("10.0.0.0/8").unwrap();
        assert_eq!(net_contains(&net, "10.20.30.40"), Some(true));
        assert_eq!(net_contains(&net, "11.0.0.1"), Some(false));
        assert_eq!(net_contains(&net, "::ffff:10.1.2.3"), Some(true));
        assert_eq!(net_contains(&net, "not an ip"), None);
        assert_eq!(net_contains(&net, ""), None);
        let v6 = parse_network("fd00::/8").unwrap();
        assert_eq!(net_contains(&v6, "fd12:3456::1"), Some(true));
        assert_eq!(net_contains(&v6, "10.0.0.1"), Some(false));
        let host = parse_network("192.168.1.7").unwrap();
        assert_eq!(net_contains(&host, "192.168.1.7"), Some(true));
        assert_eq!(net_contains(&host, "192.168.1.8"), Some(false));
        assert!(parse_network("10.0.0/8").is_none());
        assert!(parse_network("10.0.0.0/33").is_none());
    }

    #[test]
    fn word_search_needs_every_word_on_boundaries_in_any_case() {
        let s = WordSearch::new("connection REFUSED").unwrap();
        assert!(s.matches("dial tcp: Connection refused by peer"));
        assert!(!s.matches("connection reset"));
        assert!(!s.matches("connections refused"));
        let ip = WordSearch::new("10.0.0.1").unwrap();
        assert!(ip.matches("from 10.0.0.1:443"));
        assert!(!ip.matches("from 10.0.0.12"));
        assert!(!ip.matches("from 110.0.0.1"));
        let token = WordSearch::new("ghp_Ab12").unwrap();
        assert!(token.matches("token=ghp_ab12 used"));
        assert!(!token.matches("token=ghp_ab123"));
        let overlapping = WordSearch::new("aa aaa").unwrap();
        assert!(overlapping.matches("x aaa y aa"));
        assert!(!overlapping.matches("aaaa"));
        let unicode = WordSearch::new("Größe").unwrap();
        assert!(unicode.matches("die GRÖSSE ist, die größe"));
        assert!(!unicode.matches("größer"));
        assert!(WordSearch::new("   ").is_none());
    }

    #[test]
    fn buckets_are_fixed_widths_from_the_epoch() {
        assert_eq!(parse_bucket("5 minutes"), Ok(300_000_000_000));
        assert_eq!(parse_bucket("1 hour 30 minutes"), Ok(5_400_000_000_000));
        assert_eq!(parse_bucket("30s"), Ok(30_000_000_000));
        assert_eq!(parse_bucket("2 days"), Ok(2 * NANOS_PER_DAY));
        assert!(parse_bucket("1 month").unwrap_err().contains("months"));
        assert!(parse_bucket("soon")
            .unwrap_err()
            .contains("not an interval"));
        assert!(parse_bucket("0 seconds").is_err());
        let w = 300_000_000_000;
        assert_eq!(bucket_start(w + 7, w), w);
        assert_eq!(bucket_start(-1, w), -w);
        assert_eq!(bucket_start(0, w), 0);
    }
}
