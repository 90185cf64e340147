//! Alertmanager's time intervals (`time_intervals:`), used by routes' `mute_time_intervals`
//! and `active_time_intervals`: recurring times of day, weekdays, days of the month, months
//! and years, in a time zone. A named interval holds when any of its parts holds; a part holds
//! when each field it gives holds (a field left out holds always).

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// A named set of time intervals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// The name routes refer to.
    pub name: String,
    /// The intervals; the named interval holds when any of them holds.
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One interval, as Alertmanager writes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    /// Times of day, `start_time` included, `end_time` excluded: `{start_time: "09:00",
    /// end_time: "17:30"}`; `24:00` ends at midnight.
    #[serde(default)]
    pub times: Vec<TimeRangeConfig>,
    /// Days of the week or ranges of them: `['monday:friday', 'sunday']`.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// Days of the month or ranges, negative from the month's end: `['1:5', '-1']`.
    #[serde(default)]
    pub days_of_month: Vec<String>,
    /// Months by name or number, or ranges: `['january:march', '12']`.
    #[serde(default)]
    pub months: Vec<String>,
    /// Years or ranges: `['2026:2027']`.
    #[serde(default)]
    pub years: Vec<String>,
    /// The IANA time zone the other fields are read in, like `Europe/Berlin`; UTC by default.
    #[serde(default)]
    pub location: Option<String>,
}

/// A range of times of day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    /// `HH:MM`, included.
    pub start_time: String,
    /// `HH:MM`, excluded; `24:00` for the end of the day.
    pub end_time: String,
}

/// One interval, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeInterval {
    /// Minutes since midnight, `[start, end)`.
    times: Vec<(u32, u32)>,
    /// Days from Sunday (0), inclusive ranges.
    weekdays: Vec<(u32, u32)>,
    /// Days of the month, inclusive, negative from the end.
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(u32, u32)>,
    years: Vec<(i32, i32)>,
    location: Tz,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Splits `a:b` (or `a`) and reads both ends with `read`.
fn range<T: Copy>(text: &str, read: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    let (a, b) = text.split_once(':').unwrap_or((text, text));
    Some((read(a.trim())?, read(b.trim())?))
}

fn time_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn named(names: &'static [&'static str], first: u32) -> impl Fn(&str) -> Option<u32> {
    move |s: &str| {
        let lower = s.to_ascii_lowercase();
        names
            .iter()
            .position(|n| *n == lower)
            .map(|i| i as u32 + first)
            .or_else(|| {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| (first..first + names.len() as u32).contains(n))
            })
    }
}

impl TimeIntervalSpec {
    /// Checks the interval; `at` names it in problems.
    pub fn compile(&self, at: &str, problems: &mut Vec<String>) -> Option<TimeInterval> {
        let before = problems.len();
        let mut times = Vec::new();
        for t in &self.times {
            match (time_of_day(&t.start_time), time_of_day(&t.end_time)) {
                (Some(s), Some(e)) if s < e => times.push((s, e)),
                (Some(_), Some(_)) => problems.push(format!(
                    "{at}: times: start_time {:?} must come before end_time {:?}",
                    t.start_time, t.end_time
                )),
                _ => problems.push(format!(
                    "{at}: times: {:?} to {:?} must be HH:MM (00:00 to 24:00)",
                    t.start_time, t.end_time
                )),
            }
        }
        let mut ordered = |field: &str, items: &[String], read: &dyn Fn(&str) -> Option<u32>| {
            let mut out = Vec::new();
            for item in items {
                match range(item, read) {
                    Some((a, b)) if a <= b => out.push((a, b)),
                    Some(_) => problems.push(format!(
                        "{at}: {field}: {item:?} is a range that ends before it starts"
                    )),
                    None => problems.push(format!("{at}: {field}: {item:?} is not valid")),
                }
            }
            out
        };
        let weekdays = ordered("weekdays", &self.weekdays, &named(&WEEKDAYS, 0));
        let months = ordered("months", &self.months, &named(&MONTHS, 1));
        let mut days_of_month = Vec::new();
        for item in &self.days_of_month {
            let day = |s: &str| {
                s.parse::<i32>()
                    .ok()
                    .filter(|d| (1..=31).contains(&d.abs()))
            };
            match range(item, day) {
                // Both from the same end must be in order; mixed ends are checked per month.
                Some((a, b)) if (a > 0) != (b > 0) || a <= b => days_of_month.push((a, b)),
                Some(_) => problems.push(format!(
                    "{at}: days_of_month: {item:?} is a range that ends before it starts"
                )),
                None => problems.push(format!(
                    "{at}: days_of_month: {item:?} must be days 1 to 31 or -31 to -1"
                )),
            }
        }
        let mut years = Vec::new();
        for item in &self.years {
            match range(item, |s| s.parse::<i32>().ok().filter(|y| *y > 0)) {
                Some((a, b)) if a <= b => years.push((a, b)),
                _ => problems.push(format!("{at}: years: {item:?} is not a year or range")),
            }
        }
        let location = match self.location.as_deref() {
            None | Some("UTC") => Tz::UTC,
            Some(name) => match name.parse::<Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    problems.push(format!(
                        "{at}: location {name:?} is not an IANA time zone (like Europe/Berlin)"
                    ));
                    Tz::UTC
                }
            },
        };
        (problems.len() == before).then_some(TimeInterval {
            times,
            weekdays,
            days_of_month,
            months,
            years,
            location,
        })
    }
}

fn days_in_month(year: i32, month: u32) -> i32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day() as i32)
}

impl TimeInterval {
    /// Whether `t` falls in the interval, read in its location.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.location);
        let minute = local.hour() * 60 + local.minute();
        let within = |ranges: &[(u32, u32)], v: u32| {
            ranges.is_empty() || ranges.iter().any(|(a, b)| (*a..=*b).contains(&v))
        };
        if !self.times.is_empty() && !self.times.iter().any(|(s, e)| (*s..*e).contains(&minute)) {
            return false;
        }
        if !within(&self.weekdays, local.weekday().num_days_from_sunday()) {
            return false;
        }
        if !within(&self.months, local.month()) {
            return false;
        }
        if !self.years.is_empty()
            && !self
                .years
                .iter()
                .any(|(a, b)| (*a..=*b).contains(&local.year()))
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let len = days_in_month(local.year(), local.month());
            let day = local.day() as i32;
            let abs = |d: i32| if d < 0 { len + 1 + d } else { d };
            if !self
                .days_of_month
                .iter()
                .any(|(a, b)| (abs(*a)..=abs(*b)).contains(&day))
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn compile(yaml: &str) -> Result<TimeInterval, Vec<String>> {
        let spec: TimeIntervalSpec = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        spec.compile("t", &mut problems).ok_or(problems)
    }

    #[test]
    fn office_hours_in_a_time_zone() {
        let office = compile(
            "{times: [{start_time: '09:00', end_time: '17:30'}], weekdays: ['monday:friday'], location: Europe/Berlin}",
        )
        .unwrap();
        // 2026-11-20 is a Friday; Berlin is UTC+1 in November.
        assert!(!office.contains(at("2026-11-20T07:59:00Z")));
        assert!(office.contains(at("2026-11-20T08:00:00Z")));
        assert!(office.contains(at("2026-11-20T16:29:00Z")));
        assert!(!office.contains(at("2026-11-20T16:30:00Z")), "end excluded");
        assert!(!office.contains(at("2026-11-21T10:00:00Z")), "saturday");
        // In July Berlin is UTC+2.
        assert!(office.contains(at("2026-07-10T07:00:00Z")));
        assert!(!office.contains(at("2026-07-10T06:59:00Z")));
    }

    #[test]
    fn days_of_month_from_the_end_months_and_years() {
        let end = compile(
            "{days_of_month: ['-2:-1'], months: ['february', '11:12'], years: ['2026:2028']}",
        )
        .unwrap();
        assert!(end.contains(at("2027-02-27T12:00:00Z")));
        assert!(!end.contains(at("2027-02-26T12:00:00Z")));
        assert!(
            !end.contains(at("2028-02-27T12:00:00Z")),
            "leap year: the 28th and 29th"
        );
        assert!(end.contains(at("2028-02-29T12:00:00Z")));
        assert!(end.contains(at("2026-11-30T00:00:00Z")));
        assert!(!end.contains(at("2026-10-31T00:00:00Z")), "month");
        assert!(!end.contains(at("2029-11-30T00:00:00Z")), "year");
        let night = compile("{times: [{start_time: '22:00', end_time: '24:00'}]}").unwrap();
        assert!(night.contains(at("2026-11-20T23:59:00Z")));
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = compile(
            "{times: [{start_time: '17:00', end_time: '09:00'}, {start_time: '9', end_time: '25:00'}], weekdays: ['funday', 'friday:monday'], days_of_month: ['0', '5:1'], months: ['13'], years: ['x'], location: Mars/Olympus}",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 9, "{problems:#?}");
    }
}
