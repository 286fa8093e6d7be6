//! Outbound routing, pure: which route and trunks a dialled number takes, the digits each
//! trunk is sent, the caller id presented, and why a call is refused (permission class,
//! emergency numbers first). Also the inverse for inbound calls: a carrier's number made
//! E.164 by its trunk's numbering rules.
//!
//! Patterns: a literal prefix (`9`, `1800`, `+44`), an Asterisk dial-plan pattern (`_` then
//! `X` 0–9, `Z` 1–9, `N` 2–9, `[1-5]` a set, `.` one or more of anything, `!` zero or more,
//! digits and `+*#` themselves: the whole number must match), or a regular expression
//! (starting with `^`, matched against the whole number).

use store::{CallClass, RouteCallerId};

/// One compiled dialled-number pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// The number starts with it.
    Prefix(String),
    /// An Asterisk pattern (without its `_`).
    Dialplan(Vec<Elem>),
    /// A regular expression.
    Regex(regex::Regex),
}

/// One element of an Asterisk pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    /// This character.
    Char(char),
    /// One of these characters.
    Set(Vec<char>),
    /// One or more characters (`.`).
    OneOrMore,
    /// Zero or more characters (`!`).
    ZeroOrMore,
}

/// Why a pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing written.
    #[error("empty pattern")]
    Empty,
    /// A prefix with other characters than digits and `+*#`.
    #[error("a prefix may only hold 0-9 + * #")]
    BadPrefix,
    /// A character an Asterisk pattern does not know.
    #[error("unknown character {0:?} in a dial-plan pattern")]
    BadChar(char),
    /// A `[set]` that is empty, unclosed or has a backward range.
    #[error("an unclosed or empty [set]")]
    BadSet,
    /// A regular expression that does not compile (or is too large).
    #[error("a regular expression: {0}")]
    Regex(String),
}

const REGEX_SIZE_LIMIT: usize = 64 * 1024;

impl Pattern {
    /// Compiles a pattern as written by an administrator.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some(rest) = s.strip_prefix('_') {
            return parse_dialplan(rest).map(Pattern::Dialplan);
        }
        if s.starts_with('^') {
            return regex::RegexBuilder::new(s).size_limit(REGEX_SIZE_LIMIT).build().map(Pattern::Regex).map_err(|e| PatternError::Regex(e.to_string()));
        }
        if s.chars().all(is_dial_char) {
            return Ok(Pattern::Prefix(s.to_owned()));
        }
        Err(PatternError::BadPrefix)
    }

    /// Whether `number` matches.
    pub fn matches(&self, number: &str) -> bool {
        match self {
            Pattern::Prefix(p) => number.starts_with(p.as_str()),
            Pattern::Dialplan(elems) => {
                let chars: Vec<char> = number.chars().collect();
                dialplan_match(elems, &chars)
            }
            Pattern::Regex(r) => r.find(number).is_some_and(|m| m.start() == 0 && m.end() == number.len()),
        }
    }
}

fn is_dial_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '*' | '#')
}

fn parse_dialplan(s: &str) -> Result<Vec<Elem>, PatternError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let e = match c.to_ascii_uppercase() {
            'X' => Elem::Set(('0'..='9').collect()),
            'Z' => Elem::Set(('1'..='9').collect()),
            'N' => Elem::Set(('2'..='9').collect()),
            '.' => Elem::OneOrMore,
            '!' => Elem::ZeroOrMore,
            '[' => {
                let mut set = Vec::new();
                let mut prev: Option<char> = None;
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        ']' => {
                            closed = true;
                            break;
                        }
                        '-' => {
                            let (Some(from), Some(&to)) = (prev, chars.peek()) else { return Err(PatternError::BadSet) };
                            if !to.is_ascii_digit() || to < from {
                                return Err(PatternError::BadSet);
                            }
                            chars.next();
                            set.extend((from..=to).skip(1));
                            prev = None;
                        }
                        c if is_dial_char(c) => {
                            set.push(c);
                            prev = Some(c);
                        }
                        c => return Err(PatternError::BadChar(c)),
                    }
                }
                if !closed || set.is_empty() {
                    return Err(PatternError::BadSet);
                }
                Elem::Set(set)
            }
            c if is_dial_char(c) => Elem::Char(c),
            _ => return Err(PatternError::BadChar(c)),
        };
        out.push(e);
    }
    if out.is_empty() {
        return Err(PatternError::Empty);
    }
    Ok(out)
}

fn dialplan_match(elems: &[Elem], s: &[char]) -> bool {
    match elems.split_first() {
        None => s.is_empty(),
        Some((Elem::OneOrMore, rest)) => (1..=s.len()).any(|k| dialplan_match(rest, &s[k..])),
        Some((Elem::ZeroOrMore, rest)) => (0..=s.len()).any(|k| dialplan_match(rest, &s[k..])),
        Some((e, rest)) => match s.split_first() {
            Some((c, tail)) => {
                let ok = match e {
                    Elem::Char(x) => x == c,
                    Elem::Set(set) => set.contains(c),
                    _ => false,
                };
                ok && dialplan_match(rest, tail)
            }
            None => false,
        },
    }
}

/// A carrier's numbering: how it writes national and international numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbering {
    /// `61`
    pub country_code: String,
    /// `0`
    pub national_prefix: String,
    /// `0011`
    pub international_prefix: String,
}

impl Numbering {
    /// The number as E.164 when the rules say how (`+` kept; the international prefix
    /// becomes `+`; the national prefix becomes `+` and the country code); else unchanged.
    pub fn to_e164(&self, number: &str) -> String {
        if number.starts_with('+') {
            return number.to_owned();
        }
        if !self.international_prefix.is_empty()
            && let Some(rest) = number.strip_prefix(self.international_prefix.as_str())
            && !rest.is_empty()
        {
            return format!("+{rest}");
        }
        if !self.country_code.is_empty()
            && !self.national_prefix.is_empty()
            && let Some(rest) = number.strip_prefix(self.national_prefix.as_str())
            && !rest.is_empty()
        {
            return format!("+{}{rest}", self.country_code);
        }
        number.to_owned()
    }
}

/// An outbound route as the SIP stack holds it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The numbers it takes.
    pub patterns: Vec<Pattern>,
    /// The class of those numbers.
    pub class: CallClass,
    /// Digits taken off the front.
    pub strip_digits: usize,
    /// Then put in front.
    pub prepend: String,
    /// Whose caller id it presents.
    pub caller_id_mode: RouteCallerId,
    /// Its own caller id (mode `route`, or the fallback of `extension`).
    pub caller_id: Option<CallerId>,
    /// Empty: every extension whose classes allow it.
    pub extension_ids: Vec<i64>,
    /// Its trunks, in order.
    pub trunk_ids: Vec<i64>,
}

impl Route {
    fn matches(&self, number: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(number))
    }
}

/// A caller id: a display name and a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    /// The display name.
    pub name: Option<String>,
    /// The number.
    pub number: String,
}

/// Who places an outbound call: an extension (its permissions and caller ids apply) or a flow
/// (the administrator's; routes' extension lists and classes do not restrict it).
#[derive(Debug, Clone)]
pub enum Placer {
    /// An extension dials out.
    Extension {
        /// Its id.
        id: i64,
        /// The classes it may call.
        classes: Vec<CallClass>,
        /// Its outbound caller id.
        outbound: Option<CallerId>,
        /// What emergency services see.
        emergency: Option<CallerId>,
        /// Its own name and number.
        own: CallerId,
    },
    /// A flow rings out for a caller.
    Flow {
        /// The caller id the flow presents.
        caller: CallerId,
    },
    /// An extension's follow-me rings one of its numbers for a caller: the extension's
    /// classes and the routes' extension lists apply, the caller is presented.
    FollowMe {
        /// The extension.
        id: i64,
        /// The classes it may call.
        classes: Vec<CallClass>,
        /// Who calls it.
        caller: CallerId,
    },
}

/// Why an outbound call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No route matches the number.
    NoRoute,
    /// A route matches, but the extension may not call its class (or is not on its list).
    NotPermitted {
        /// The first route that matched.
        route: i64,
        /// Its class.
        class: CallClass,
    },
}

impl Refusal {
    /// What the caller hears: 404 for an unroutable number, 403 for one not permitted.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoRoute => 404,
            Refusal::NotPermitted { .. } => 403,
        }
    }
}

/// What a routed call does: its route and class, the caller id, and the trunks to try in
/// order with the digits each is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The route taken (none: an emergency number no route names).
    pub route_id: Option<i64>,
    /// An emergency call.
    pub emergency: bool,
    /// The route's class.
    pub class: Option<CallClass>,
    /// The route's number before each trunk's own prefix rules.
    pub number: String,
    /// Whose caller id is presented.
    pub caller_id_mode: RouteCallerId,
    /// The caller id chosen by the route's rule; `None` with `Trunk` (each trunk's) or
    /// `Anonymous`.
    pub caller_id: Option<CallerId>,
    /// The trunks to try, in order.
    pub trunk_ids: Vec<i64>,
}

/// Applies a route's strip/prepend.
pub fn manipulate(number: &str, strip: usize, prepend: &str) -> String {
    let rest: String = number.chars().skip(strip).collect();
    format!("{prepend}{rest}")
}

/// Chooses the route for `dialled`. Emergency numbers match first, ignore classes and lists,
/// present the extension's emergency caller id, and take the first route that matches them
/// (else `all_trunks`, every enabled trunk in priority order).
pub fn plan(dialled: &str, placer: &Placer, routes: &[Route], emergency_numbers: &[String], all_trunks: &[i64]) -> Result<Plan, Refusal> {
    if emergency_numbers.iter().any(|e| e == dialled) {
        let route = routes.iter().find(|r| r.matches(dialled));
        let caller_id = match placer {
            Placer::Extension { emergency, outbound, own, .. } => emergency.clone().or_else(|| outbound.clone()).or_else(|| Some(own.clone())),
            Placer::Flow { caller } | Placer::FollowMe { caller, .. } => Some(caller.clone()),
        };
        return Ok(Plan {
            route_id: route.map(|r| r.id),
            emergency: true,
            class: None,
            number: dialled.to_owned(),
            caller_id_mode: RouteCallerId::Extension,
            caller_id,
            trunk_ids: route.map(|r| r.trunk_ids.clone()).filter(|t| !t.is_empty()).unwrap_or_else(|| all_trunks.to_vec()),
        });
    }
    let mut refused = None;
    for r in routes.iter().filter(|r| r.matches(dialled)) {
        if let Placer::Extension { id, classes, .. } | Placer::FollowMe { id, classes, .. } = placer {
            let listed = r.extension_ids.is_empty() || r.extension_ids.contains(id);
            if !listed || !classes.contains(&r.class) {
                refused.get_or_insert(Refusal::NotPermitted { route: r.id, class: r.class });
                continue;
            }
        }
        let caller_id = match (r.caller_id_mode, placer) {
            (RouteCallerId::Anonymous | RouteCallerId::Trunk, _) => None,
            (RouteCallerId::Route, _) => r.caller_id.clone(),
            (RouteCallerId::Extension, Placer::Extension { outbound, own, .. }) => {
                outbound.clone().or_else(|| r.caller_id.clone()).or_else(|| Some(own.clone()))
            }
            (RouteCallerId::Extension, Placer::Flow { caller } | Placer::FollowMe { caller, .. }) => Some(caller.clone()),
        };
        return Ok(Plan {
            route_id: Some(r.id),
            emergency: false,
            class: Some(r.class),
            number: manipulate(dialled, r.strip_digits, &r.prepend),
            caller_id_mode: r.caller_id_mode,
            caller_id,
            trunk_ids: r.trunk_ids.clone(),
        });
    }
    Err(refused.unwrap_or(Refusal::NoRoute))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_as_asterisk_and_regex_do() {
        assert!(p("9").matches("90290000000"));
        assert!(!p("9").matches("80290000000"));
        let nanp = p("_NXXNXXXXXX");
        assert!(nanp.matches("2125551234"));
        assert!(!nanp.matches("1125551234"), "N is 2-9");
        assert!(!nanp.matches("21255512345"), "whole number");
        assert!(p("_00.").matches("0044207946"));
        assert!(!p("_00.").matches("00"), ". is one or more");
        assert!(p("_00!").matches("00"));
        assert!(p("_1[2-5]XX").matches("1399"));
        assert!(!p("_1[2-5]XX").matches("1699"));
        assert!(p("_+61Z.").matches("+61290000000"));
        assert!(p("^\\+44[0-9]{10}$").matches("+442079460000"));
        assert!(!p("^\\+44").matches("+442079460000"), "a regex matches the whole number");
        assert!(p("^\\+44.*").matches("+442079460000"));
        for bad in ["", "9a", "_1[2-", "_1[]", "_1[5-2]", "_AB", "^(", "_1[x]"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn carriers_numbers_become_e164() {
        let au = Numbering { country_code: "61".into(), national_prefix: "0".into(), international_prefix: "0011".into() };
        assert_eq!(au.to_e164("0290000000"), "+61290000000");
        assert_eq!(au.to_e164("0011442079460000"), "+442079460000");
        assert_eq!(au.to_e164("+61290000000"), "+61290000000");
        assert_eq!(au.to_e164("61290000000"), "61290000000", "no rule: as written");
        assert_eq!(Numbering::default().to_e164("0290000000"), "0290000000");
    }

    fn routes() -> Vec<Route> {
        let r = |id: i64, pats: &[&str], class: CallClass, trunks: &[i64]| Route {
            id,
            name: format!("r{id}"),
            patterns: pats.iter().map(|s| p(s)).collect(),
            class,
            strip_digits: 0,
            prepend: String::new(),
            caller_id_mode: RouteCallerId::Extension,
            caller_id: None,
            extension_ids: vec![],
            trunk_ids: trunks.to_vec(),
        };
        let mut national = r(1, &["_0[2-9]XXXXXXXX"], CallClass::National, &[10, 11]);
        national.strip_digits = 1;
        national.prepend = "+61".into();
        let intl = r(2, &["_0011."], CallClass::International, &[11]);
        let mut premium = r(3, &["1900"], CallClass::Premium, &[10]);
        premium.caller_id_mode = RouteCallerId::Route;
        premium.caller_id = Some(CallerId { name: Some("Main".into()), number: "+61290000000".into() });
        vec![premium, national, intl]
    }

    fn ext(classes: &[CallClass]) -> Placer {
        Placer::Extension {
            id: 5,
            classes: classes.to_vec(),
            outbound: Some(CallerId { name: Some("Sales".into()), number: "+61290000005".into() }),
            emergency: Some(CallerId { name: None, number: "+61290000999".into() }),
            own: CallerId { name: Some("Alice".into()), number: "105".into() },
        }
    }

    #[test]
    fn routes_choose_trunks_digits_and_caller_id() {
        let rs = routes();
        let plan = plan("0290001234", &ext(&[CallClass::National]), &rs, &[], &[10, 11]).unwrap();
        assert_eq!((plan.route_id, plan.number.as_str(), plan.trunk_ids.clone()), (Some(1), "+61290001234", vec![10, 11]));
        assert_eq!(plan.caller_id.unwrap().number, "+61290000005", "the extension's outbound caller id");
        assert_eq!(
            super::plan("0011442079460000", &ext(&[CallClass::National]), &rs, &[], &[]),
            Err(Refusal::NotPermitted { route: 2, class: CallClass::International })
        );
        assert!(super::plan("0011442079460000", &ext(&[CallClass::International]), &rs, &[], &[]).is_ok());
        assert_eq!(super::plan("12345", &ext(&[CallClass::National]), &rs, &[], &[]), Err(Refusal::NoRoute));
        let prem = super::plan("19001234", &ext(&[CallClass::Premium]), &rs, &[], &[]).unwrap();
        assert_eq!(prem.caller_id.unwrap().number, "+61290000000", "the route's caller id");
        // a flow is the administrator's: classes do not restrict it
        let flow = Placer::Flow { caller: CallerId { name: None, number: "+61400000001".into() } };
        assert_eq!(super::plan("0011442079460000", &flow, &rs, &[], &[]).unwrap().caller_id.unwrap().number, "+61400000001");
        // an extension not on the route's list is refused
        let mut listed = rs.clone();
        listed[1].extension_ids = vec![7];
        assert!(matches!(super::plan("0290001234", &ext(&[CallClass::National]), &listed, &[], &[]), Err(Refusal::NotPermitted { route: 1, .. })));
    }

    #[test]
    fn emergency_numbers_go_first_whatever_the_classes() {
        let rs = routes();
        let em = vec!["000".to_string(), "112".to_string()];
        let plan = plan("000", &ext(&[]), &rs, &em, &[11, 10]).unwrap();
        assert!(plan.emergency);
        assert_eq!(plan.trunk_ids, vec![11, 10], "no route matches 000: every trunk");
        assert_eq!(plan.caller_id.unwrap().number, "+61290000999");
        assert_eq!(plan.number, "000", "sent as dialled");
    }
}
