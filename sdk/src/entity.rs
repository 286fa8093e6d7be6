//! The entities a graph node can link (`data.entity_id` + `data.entity_type`), as the JSON the
//! host passes in `node-input.entity.data`.
//!
//! These types are the contract on both sides: the host fills its entity cache with them and
//! serialises them for the node; a node reads them with [`crate::Input::entity`]. Fields the
//! seed's data model has but a node has no business seeing (SIP passwords, PINs, e-mail
//! addresses) are not here. Every field a node may do without has a default, so a node
//! built against an older SDK keeps reading newer JSON.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An entity type, as written in a graph node's `data.entity_type` and in
/// `node-info.entity-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    InboundNumber,
    Extension,
    VoicemailBox,
    RingGroup,
    IvrMenu,
    TimeSwitch,
    ConferenceBridge,
}

impl EntityKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EntityKind; 7] = [
        EntityKind::InboundNumber,
        EntityKind::Extension,
        EntityKind::VoicemailBox,
        EntityKind::RingGroup,
        EntityKind::IvrMenu,
        EntityKind::TimeSwitch,
        EntityKind::ConferenceBridge,
    ];

    /// The wire name (`ring_group`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::InboundNumber => "inbound_number",
            EntityKind::Extension => "extension",
            EntityKind::VoicemailBox => "voicemail_box",
            EntityKind::RingGroup => "ring_group",
            EntityKind::IvrMenu => "ivr_menu",
            EntityKind::TimeSwitch => "time_switch",
            EntityKind::ConferenceBridge => "conference_bridge",
        }
    }

    /// Parses a wire name; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn yes() -> bool {
    true
}
fn thirty() -> u32 {
    30
}

/// A DID mapped to an entry node of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundNumber {
    pub id: i64,
    /// E.164.
    pub number: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The flow this number enters, and the entry node in it.
    #[serde(default)]
    pub flow_id: Option<i64>,
    #[serde(default)]
    pub flow_entry_node: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// One external number of an extension's follow-me list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowMeNumber {
    pub number: String,
    /// Seconds after the extension starts ringing before this number rings.
    #[serde(default)]
    pub delay: u32,
    /// Seconds this number rings.
    #[serde(default = "thirty")]
    pub timeout: u32,
}

/// When an extension's calls are recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    #[default]
    Off,
    Always,
    OnDemand,
}

/// An extension, without its SIP credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub id: i64,
    /// The extension number (`101`).
    pub extension: String,
    pub name: String,
    /// Seconds to ring before giving up.
    #[serde(default = "thirty")]
    pub ring_timeout: u32,
    #[serde(default)]
    pub dnd: bool,
    #[serde(default)]
    pub follow_me_enabled: bool,
    #[serde(default)]
    pub follow_me_numbers: Vec<FollowMeNumber>,
    #[serde(default)]
    pub recording_mode: RecordingMode,
}

/// Which greeting a voicemail box plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GreetingType {
    #[default]
    Default,
    Custom,
    NameOnly,
}

/// A voicemail box, without its PIN and e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoicemailBox {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub mailbox_number: Option<String>,
    #[serde(default)]
    pub greeting_type: GreetingType,
    /// The prompt played as the custom greeting (its name).
    #[serde(default)]
    pub greeting_file: Option<String>,
    /// Longest message, in seconds.
    #[serde(default = "max_message_duration")]
    pub max_message_duration: u32,
    #[serde(default = "max_messages")]
    pub max_messages: u32,
    #[serde(default)]
    pub notify_extension_id: Option<i64>,
    #[serde(default)]
    pub email_notify: bool,
}
fn max_message_duration() -> u32 {
    120
}
fn max_messages() -> u32 {
    50
}

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingStrategy {
    /// Every member at once.
    #[default]
    RingAll,
    /// One member at a time, starting after the member the previous call started with.
    RoundRobin,
    /// One member at a time, in random order.
    Random,
    /// One member at a time, the one idle longest first; members on a call are skipped.
    LongestIdle,
    /// One member at a time, in list order.
    Sequential,
}

/// What caller id a ring group's phones show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdMode {
    /// The caller's.
    #[default]
    Pass,
    /// `caller_id_name` / `caller_id_number` instead of the caller's.
    Fixed,
    /// `caller_id_name` in front of the caller's name ("Sales: Alice").
    Prepend,
}

/// A ring group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingGroup {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub strategy: RingStrategy,
    /// Seconds before the group gives up (the `no-answer` output), whatever the strategy.
    #[serde(default = "thirty")]
    pub ring_timeout: u32,
    /// Seconds each member rings in the one-at-a-time strategies; 15 when absent.
    #[serde(default)]
    pub member_timeout: Option<u32>,
    /// Extension ids, in order.
    pub members: Vec<i64>,
    #[serde(default)]
    pub caller_id_mode: CallerIdMode,
    #[serde(default)]
    pub caller_id_name: Option<String>,
    #[serde(default)]
    pub caller_id_number: Option<String>,
}

/// An IVR menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvrMenu {
    pub id: i64,
    pub name: String,
    /// A prompt name; takes precedence over `greeting_tts`.
    #[serde(default)]
    pub greeting_file: Option<String>,
    #[serde(default)]
    pub greeting_tts: Option<String>,
    /// Seconds to wait for the first digit after the greeting.
    #[serde(default = "ten")]
    pub timeout: u32,
    /// How many times the greeting is repeated after a timeout or an invalid choice
    /// before the `timeout` or `invalid` output is taken.
    #[serde(default = "three")]
    pub max_retries: u32,
    /// Seconds to wait between digits of a multi-digit choice.
    #[serde(default = "three")]
    pub digit_timeout: u32,
    /// The choices: digits (`1`, `*`, `#`, or several digits such as `11`) to the label
    /// of their output. Each choice is an output whose id is the digits.
    pub options: BTreeMap<String, String>,
    /// Played after an invalid choice before the greeting repeats;
    /// `system/invalid-option` when absent.
    #[serde(default)]
    pub invalid_prompt: Option<String>,
    /// Played after a timeout before the greeting repeats; nothing when absent.
    #[serde(default)]
    pub timeout_prompt: Option<String>,
}
fn ten() -> u32 {
    10
}
fn three() -> u32 {
    3
}

/// A day of the week, written `mon` … `sun` (full lowercase names are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    #[serde(alias = "monday")]
    Mon,
    #[serde(alias = "tuesday")]
    Tue,
    #[serde(alias = "wednesday")]
    Wed,
    #[serde(alias = "thursday")]
    Thu,
    #[serde(alias = "friday")]
    Fri,
    #[serde(alias = "saturday")]
    Sat,
    #[serde(alias = "sunday")]
    Sun,
}

/// A weekly rule of a time switch: matches on the listed days between `start` and `end`
/// (local times `HH:MM`; `end` before `start` spans midnight and belongs to the day it
/// started on; both absent = the whole day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRule {
    /// The output id; `rule_<n>` (n counting from 1) when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub label: String,
    pub days: Vec<Day>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

/// A date override of a time switch (a public holiday, a closure): matches on `date`
/// (through `end_date` when set; dates `YYYY-MM-DD`), between `start` and `end` when set.
/// Overrides are checked before the weekly rules, top to bottom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateOverride {
    /// The output id when the override has its own output; `override_<n>` when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub label: String,
    pub date: String,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    /// Leave by an existing output instead of an own one: a rule's id, or `default`.
    #[serde(default)]
    pub output: Option<String>,
}

/// A time switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSwitch {
    pub id: i64,
    pub name: String,
    /// An IANA zone.
    #[serde(default = "sydney")]
    pub timezone: String,
    #[serde(default)]
    pub rules: Vec<TimeRule>,
    #[serde(default)]
    pub overrides: Vec<DateOverride>,
}
fn sydney() -> String {
    "Australia/Sydney".to_string()
}

/// A conference bridge, without its PIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceBridge {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default = "ten")]
    pub max_members: u32,
    #[serde(default)]
    pub record: bool,
    #[serde(default)]
    pub mute_on_join: bool,
    #[serde(default)]
    pub announce_joins: bool,
    /// Whether joining asks for a PIN (the host asks; the node never sees the PIN).
    #[serde(default)]
    pub has_pin: bool,
}

/// Any entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    InboundNumber(InboundNumber),
    Extension(Extension),
    VoicemailBox(VoicemailBox),
    RingGroup(RingGroup),
    IvrMenu(IvrMenu),
    TimeSwitch(TimeSwitch),
    ConferenceBridge(ConferenceBridge),
}

impl Entity {
    /// Its kind.
    pub fn kind(&self) -> EntityKind {
        match self {
            Entity::InboundNumber(_) => EntityKind::InboundNumber,
            Entity::Extension(_) => EntityKind::Extension,
            Entity::VoicemailBox(_) => EntityKind::VoicemailBox,
            Entity::RingGroup(_) => EntityKind::RingGroup,
            Entity::IvrMenu(_) => EntityKind::IvrMenu,
            Entity::TimeSwitch(_) => EntityKind::TimeSwitch,
            Entity::ConferenceBridge(_) => EntityKind::ConferenceBridge,
        }
    }

    /// Its id.
    pub fn id(&self) -> i64 {
        match self {
            Entity::InboundNumber(e) => e.id,
            Entity::Extension(e) => e.id,
            Entity::VoicemailBox(e) => e.id,
            Entity::RingGroup(e) => e.id,
            Entity::IvrMenu(e) => e.id,
            Entity::TimeSwitch(e) => e.id,
            Entity::ConferenceBridge(e) => e.id,
        }
    }

    /// The JSON object a node receives.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs (strings, numbers, maps with string keys) cannot
        // fail; an empty object stands in should that ever change.
        let r = match self {
            Entity::InboundNumber(e) => serde_json::to_string(e),
            Entity::Extension(e) => serde_json::to_string(e),
            Entity::VoicemailBox(e) => serde_json::to_string(e),
            Entity::RingGroup(e) => serde_json::to_string(e),
            Entity::IvrMenu(e) => serde_json::to_string(e),
            Entity::TimeSwitch(e) => serde_json::to_string(e),
            Entity::ConferenceBridge(e) => serde_json::to_string(e),
        };
        r.unwrap_or_else(|_| "{}".to_string())
    }

    /// Parses the JSON of an entity of a known kind.
    pub fn from_json(kind: EntityKind, json: &str) -> Result<Entity, serde_json::Error> {
        Ok(match kind {
            EntityKind::InboundNumber => Entity::InboundNumber(serde_json::from_str(json)?),
            EntityKind::Extension => Entity::Extension(serde_json::from_str(json)?),
            EntityKind::VoicemailBox => Entity::VoicemailBox(serde_json::from_str(json)?),
            EntityKind::RingGroup => Entity::RingGroup(serde_json::from_str(json)?),
            EntityKind::IvrMenu => Entity::IvrMenu(serde_json::from_str(json)?),
            EntityKind::TimeSwitch => Entity::TimeSwitch(serde_json::from_str(json)?),
            EntityKind::ConferenceBridge => Entity::ConferenceBridge(serde_json::from_str(json)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for k in EntityKind::ALL {
            assert_eq!(EntityKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(EntityKind::parse("trunk"), None);
    }

    #[test]
    fn seed_shaped_json_reads_with_defaults() {
        let ts = r#"{"id":1,"name":"Hours","rules":[{"label":"Business Hours","days":["mon","tuesday"],"start":"08:30","end":"17:00","dest_node":"node_x"}]}"#;
        let e = Entity::from_json(EntityKind::TimeSwitch, ts).unwrap();
        let Entity::TimeSwitch(t) = &e else { panic!("kind") };
        assert_eq!(t.timezone, "Australia/Sydney");
        assert_eq!(t.rules[0].days, vec![Day::Mon, Day::Tue]);
        let back = Entity::from_json(EntityKind::TimeSwitch, &e.to_json()).unwrap();
        assert_eq!(back, e);

        let rg = r#"{"id":2,"name":"Sales","members":[1,2]}"#;
        let Entity::RingGroup(g) = Entity::from_json(EntityKind::RingGroup, rg).unwrap() else { panic!("kind") };
        assert_eq!((g.strategy, g.ring_timeout, g.caller_id_mode), (RingStrategy::RingAll, 30, CallerIdMode::Pass));
        assert!(Entity::from_json(EntityKind::RingGroup, r#"{"id":2}"#).is_err());
    }
}
