//! The time switch: routes by the local time in the switch's IANA zone. Date overrides
//! (holidays, closures) are checked first, then the weekly rules, top to bottom; the first
//! match wins; no match leaves by `default`.
//!
//! The host's `clock.now(zone)` does the zone conversion (with its tz database), so the node
//! carries no tz data: it compares the local date and time it is given.

use sdk::clock::{LocalTime, Weekday};
use sdk::entity::{Day, TimeSwitch as Switch};
use sdk::{Host, Input, Node, NodeError, NodeInfo, Output};
use serde::Deserialize;

/// The node type.
pub struct TimeSwitch;

/// No configuration of its own: everything is in the linked `time_switch` entity.
#[derive(Deserialize)]
pub struct Config {}

/// A time of day in minutes since midnight (0..=1440).
type Minute = u16;

fn parse_hhmm(s: &str) -> Result<Minute, String> {
    let (h, m) = s.split_once(':').ok_or_else(|| format!("time {s:?} is not HH:MM"))?;
    let h: u16 = h.parse().map_err(|_| format!("time {s:?} is not HH:MM"))?;
    let m: u16 = m.parse().map_err(|_| format!("time {s:?} is not HH:MM"))?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("time {s:?} is out of range"));
    }
    Ok(h * 60 + m)
}

/// A date as a comparable number: yyyymmdd.
fn parse_date(s: &str) -> Result<u32, String> {
    let bad = || format!("date {s:?} is not YYYY-MM-DD");
    let mut it = s.split('-');
    let (y, m, d) = (it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (u32, u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(y * 10000 + m * 100 + d)
}

/// A time window within a day: `[start, end)`, or, when `end <= start`, from `start` to
/// midnight plus from midnight to `end` of the next day.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    start: Minute,
    end: Minute,
}

impl Window {
    fn parse(start: &Option<String>, end: &Option<String>) -> Result<Window, String> {
        let start = start.as_deref().map(parse_hhmm).transpose()?.unwrap_or(0);
        let end = end.as_deref().map(parse_hhmm).transpose()?.unwrap_or(1440);
        Ok(Window { start, end })
    }
    fn overnight(&self) -> bool {
        self.end <= self.start
    }
}

fn day_of(w: Weekday) -> Day {
    match w {
        Weekday::Monday => Day::Mon,
        Weekday::Tuesday => Day::Tue,
        Weekday::Wednesday => Day::Wed,
        Weekday::Thursday => Day::Thu,
        Weekday::Friday => Day::Fri,
        Weekday::Saturday => Day::Sat,
        Weekday::Sunday => Day::Sun,
    }
}

fn previous(d: Day) -> Day {
    match d {
        Day::Mon => Day::Sun,
        Day::Tue => Day::Mon,
        Day::Wed => Day::Tue,
        Day::Thu => Day::Wed,
        Day::Fri => Day::Thu,
        Day::Sat => Day::Fri,
        Day::Sun => Day::Sat,
    }
}

/// The switch, parsed and checked: what both `outputs` and `run` work from.
struct Plan {
    /// (output id, label, dates from..=to, window) per override, in order.
    overrides: Vec<(String, String, u32, u32, Window)>,
    /// (output id, label, days, window) per rule, in order.
    rules: Vec<(String, String, Vec<Day>, Window)>,
    /// Whether an override has an output of its own (else it borrows a rule's or default).
    own_output: Vec<bool>,
}

const RESERVED: [&str; 2] = ["default", "error"];

impl Plan {
    fn new(s: &Switch) -> Result<Plan, String> {
        let mut ids: Vec<String> = Vec::new();
        let mut claim = |id: String, what: &str| -> Result<String, String> {
            if id.is_empty() || RESERVED.contains(&id.as_str()) || ids.contains(&id) {
                return Err(format!("{what} has the id {id:?}, which is empty, reserved or used twice"));
            }
            ids.push(id.clone());
            Ok(id)
        };
        let mut rules = Vec::new();
        for (i, r) in s.rules.iter().enumerate() {
            let what = format!("rule {} ({})", i + 1, r.label);
            let id = claim(r.id.clone().unwrap_or_else(|| format!("rule_{}", i + 1)), &what)?;
            if r.days.is_empty() {
                return Err(format!("{what} has no days"));
            }
            let w = Window::parse(&r.start, &r.end).map_err(|e| format!("{what}: {e}"))?;
            rules.push((id, r.label.clone(), r.days.clone(), w));
        }
        let mut overrides = Vec::new();
        let mut own_output = Vec::new();
        for (i, o) in s.overrides.iter().enumerate() {
            let what = format!("override {} ({})", i + 1, o.label);
            let from = parse_date(&o.date).map_err(|e| format!("{what}: {e}"))?;
            let to = match &o.end_date {
                Some(d) => parse_date(d).map_err(|e| format!("{what}: {e}"))?,
                None => from,
            };
            if to < from {
                return Err(format!("{what} ends before it starts"));
            }
            let w = Window::parse(&o.start, &o.end).map_err(|e| format!("{what}: {e}"))?;
            let id = match &o.output {
                Some(target) => {
                    if target != "default" && !rules.iter().any(|r| &r.0 == target) {
                        return Err(format!("{what} leaves by {target:?}, which is neither a rule id nor \"default\""));
                    }
                    own_output.push(false);
                    target.clone()
                }
                None => {
                    own_output.push(true);
                    claim(o.id.clone().unwrap_or_else(|| format!("override_{}", i + 1)), &what)?
                }
            };
            overrides.push((id, o.label.clone(), from, to, w));
        }
        Ok(Plan { overrides, rules, own_output })
    }

    fn outputs(&self) -> Vec<Output> {
        let mut out = Vec::new();
        for (o, own) in self.overrides.iter().zip(&self.own_output) {
            if *own {
                out.push(sdk::output(&o.0, &o.1));
            }
        }
        out.extend(self.rules.iter().map(|r| sdk::output(&r.0, &r.1)));
        out.push(sdk::output("default", "No match"));
        out
    }

    /// The output for a local time.
    fn route(&self, t: &LocalTime) -> &str {
        let minute = t.hour as Minute * 60 + t.minute as Minute;
        let date = t.year.max(0) as u32 * 10000 + t.month as u32 * 100 + t.day as u32;
        for (id, _, from, to, w) in &self.overrides {
            let in_dates = (*from..=*to).contains(&date);
            let hit = if w.overnight() { in_dates && (minute >= w.start || minute < w.end) } else { in_dates && minute >= w.start && minute < w.end };
            if hit {
                return id;
            }
        }
        let today = day_of(t.weekday);
        for (id, _, days, w) in &self.rules {
            let hit = if w.overnight() {
                (days.contains(&today) && minute >= w.start) || (days.contains(&previous(today)) && minute < w.end)
            } else {
                days.contains(&today) && minute >= w.start && minute < w.end
            };
            if hit {
                return id;
            }
        }
        "default"
    }
}

impl Node for TimeSwitch {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "routing".into(),
            icon: "🕐".into(),
            description:
                "Routes by day and time in the switch's time zone: date overrides first, then weekly rules, top to bottom; no match leaves by default.".into(),
            config_schema: sdk::schema(serde_json::json!({"type": "object", "additionalProperties": false})),
            outputs: vec![sdk::output("default", "No match")],
            entity_kind: Some("time_switch".into()),
            entity_required: true,
            wall_clock_ms: 2_000,
            ..sdk::node_info("time_switch", "Time Switch", env!("CARGO_PKG_VERSION"))
        }
    }

    fn outputs(input: &Input<Config>, host: &mut dyn Host) -> Result<Vec<Output>, String> {
        let s: Switch = input.entity()?;
        let plan = Plan::new(&s)?;
        host.now(&s.timezone).map_err(|e| format!("time zone {:?}: {e}", s.timezone))?;
        Ok(plan.outputs())
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let s: Switch = input.entity()?;
        let plan = Plan::new(&s).map_err(NodeError::InvalidConfig)?;
        let now = host.now(&s.timezone).map_err(|e| NodeError::InvalidConfig(format!("time zone {:?}: {e}", s.timezone)))?;
        let out = plan.route(&now).to_string();
        sdk::debug!(host, "{:04}-{:02}-{:02} {:02}:{:02} {:?} in {} -> {out}", now.year, now.month, now.day, now.hour, now.minute, now.weekday, s.timezone);
        Ok(out)
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(TimeSwitch);
