//! The data model: row types (what the store returns), field sets (what it writes), the
//! shapes of the JSON columns, and the enumerations stored as text.
//!
//! Row types serialise with the column names, so the API can send them as they are; they never
//! contain a secret (sealed columns and hashes are not selected into them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use crate::Timestamp;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[sqlx(type_name = "TEXT", rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }
    };
}

text_enum!(
    /// How a trunk is authenticated.
    TrunkType { Register = "register", Ip = "ip" }
);
text_enum!(
    /// SIP transport.
    Transport { Udp = "udp", Tcp = "tcp", Tls = "tls" }
);
text_enum!(RecordingMode { Off = "off", Always = "always", OnDemand = "on_demand" });
text_enum!(
    /// How follow-me rings: the devices first, then each number outside in turn
    /// (`sequential`), or the devices and the numbers together, each number after its delay
    /// (`simultaneous`).
    FollowMeMode { Sequential = "sequential", Simultaneous = "simultaneous" }
);
text_enum!(
    /// SRTP with SDES (RFC 4568) for an extension's or a trunk's media: `off` (plain RTP
    /// only), `optional` (offers RTP/AVP with `a=crypto` lines, answers crypto when offered)
    /// or `required` (offers RTP/SAVP; an offer without usable crypto is refused with 488).
    SrtpPolicy { Off = "off", Optional = "optional", Required = "required" }
);
text_enum!(GreetingType { Default = "default", Custom = "custom", NameOnly = "name_only" });
text_enum!(RingStrategy { RingAll = "ring_all", Sequential = "sequential", RoundRobin = "round_robin", Random = "random", LongestIdle = "longest_idle" });
text_enum!(CallerIdMode { Pass = "pass", Fixed = "fixed", Prepend = "prepend" });
text_enum!(
    /// Which way a call went (a CDR's `direction`).
    CallDirection { Inbound = "inbound", Outbound = "outbound", Internal = "internal" }
);
text_enum!(
    /// How a call ended (a CDR's `disposition`).
    CallDisposition { Answered = "answered", NoAnswer = "no_answer", Busy = "busy", Failed = "failed", Voicemail = "voicemail" }
);
text_enum!(PushPlatform { Fcm = "fcm", Apns = "apns" });
text_enum!(
    /// A class of outbound numbers: what an outbound route's numbers are, and what an
    /// extension may call.
    CallClass { Local = "local", National = "national", International = "international", Premium = "premium" }
);
text_enum!(
    /// Whose caller id an outbound route presents.
    RouteCallerId { Extension = "extension", Route = "route", Trunk = "trunk", Anonymous = "anonymous" }
);
text_enum!(
    /// What an API token may do: `read` (GET only), `write` (entity changes too), `admin`
    /// (settings, tokens, plugins and the audit log too). Ordered: each includes the ones before.
    TokenScope { Read = "read", Write = "write", Admin = "admin" }
);

impl TokenScope {
    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: TokenScope) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            TokenScope::Read => 0,
            TokenScope::Write => 1,
            TokenScope::Admin => 2,
        }
    }
}

/// `limit`/`offset` of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 20;
    pub const MAX_LIMIT: i64 = 100;
    pub fn new(limit: i64, offset: i64) -> Self {
        Self { limit: limit.clamp(1, i64::MAX), offset: offset.max(0) }
    }
    /// Everything (for internal callers such as the SIP stack's caches).
    pub fn all() -> Self {
        Self { limit: i64::MAX, offset: 0 }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self { limit: Self::DEFAULT_LIMIT, offset: 0 }
    }
}

/// One page of a list and the total count matching the filter.
#[derive(Debug, Clone, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}

// ---------------------------------------------------------------------------------------------
// JSON column shapes

/// One follow-me destination: ring `number` after `delay` seconds, for `timeout` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FollowMeNumber {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+?[0-9*#]{2,20}$"))]
    pub number: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 300))]
    pub delay: u32,
    #[serde(default = "default_follow_me_timeout")]
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 300))]
    pub timeout: u32,
}

fn default_follow_me_timeout() -> u32 {
    20
}

/// A weekly time-switch rule: on `days` between `start` and `end` (HH:MM, local to the
/// switch's time zone; `end` before `start` spans midnight), go to `dest_node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeRule {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100, pattern = r"\S"))]
    pub label: String,
    /// mon, tue, wed, thu, fri, sat, sun
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub days: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub start: String,
    #[cfg_attr(feature = "openapi", schema(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub dest_node: Option<String>,
}

/// A date (or date range) override of a time switch, such as a public holiday. Checked before
/// the weekly rules. Without `start`/`end` it covers whole days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DateOverride {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100, pattern = r"\S"))]
    pub label: String,
    /// YYYY-MM-DD
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"))]
    pub date: String,
    /// YYYY-MM-DD, inclusive; absent: the one day
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"))]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub dest_node: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Rows and field sets

macro_rules! row {
    ($(#[$m:meta])* $row:ident, $fields:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Serialize, FromRow)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $row {
            pub id: i64,
            #[serde(flatten)]
            #[sqlx(flatten)]
            pub fields: $fields,
            pub created_at: Timestamp,
            pub updated_at: Timestamp,
        }

        impl std::ops::Deref for $row {
            type Target = $fields;
            fn deref(&self) -> &$fields {
                &self.fields
            }
        }
    };
}

/// The writable columns of a trunk (the password is passed separately and sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrunkFields {
    pub name: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub trunk_type: TrunkType,
    pub enabled: bool,
    pub host: Option<String>,
    pub port: i64,
    pub transport: Transport,
    pub username: Option<String>,
    pub auth_username: Option<String>,
    pub register_expiry: i64,
    #[sqlx(json)]
    pub remote_hosts: Vec<String>,
    pub local_host: Option<String>,
    #[sqlx(json)]
    pub codecs: Vec<String>,
    pub max_channels: i64,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    pub prefix_strip: i64,
    pub prefix_add: String,
    pub priority: i64,
    /// Where requests to the carrier go first (`host[:port]` or a SIP URI); none: `host`.
    pub outbound_proxy: Option<String>,
    /// Seconds between OPTIONS keep-alives (0: none).
    pub options_interval: i64,
    /// The carrier's country code (`61`), national trunk prefix (`0`) and international
    /// prefix (`0011`), to make E.164 of the numbers it sends; empty: taken as written.
    pub country_code: String,
    pub national_prefix: String,
    pub international_prefix: String,
    /// Over TLS: whether the carrier's certificate must be trusted (public CAs and the
    /// system's store) and name its host. Off for a carrier with a private CA.
    pub tls_verify: bool,
    /// SRTP toward the carrier.
    pub srtp: SrtpPolicy,
    /// Calls that arrive through this trunk are recorded from answer to end.
    pub record_inbound: bool,
    /// Calls that leave through this trunk are recorded from answer to end.
    pub record_outbound: bool,
}

impl Default for TrunkFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            trunk_type: TrunkType::Register,
            enabled: true,
            host: None,
            port: 5060,
            transport: Transport::Udp,
            username: None,
            auth_username: None,
            register_expiry: 300,
            remote_hosts: Vec::new(),
            local_host: None,
            codecs: vec!["g711u".into(), "g711a".into()],
            max_channels: 0,
            caller_id_name: None,
            caller_id_num: None,
            prefix_strip: 0,
            prefix_add: String::new(),
            priority: 10,
            outbound_proxy: None,
            options_interval: 30,
            country_code: String::new(),
            national_prefix: String::new(),
            international_prefix: String::new(),
            tls_verify: true,
            srtp: SrtpPolicy::Off,
            record_inbound: false,
            record_outbound: false,
        }
    }
}

row!(
    /// A SIP trunk. `password_set` tells whether a password is stored (it is never returned).
    TrunkRow, TrunkFields
);

/// A trunk as listed, with whether a password is stored.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trunk {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub row: TrunkRow,
    pub password_set: bool,
}

impl std::ops::Deref for Trunk {
    type Target = TrunkFields;
    fn deref(&self) -> &TrunkFields {
        &self.row.fields
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboundNumberFields {
    /// E.164
    pub number: String,
    pub name: Option<String>,
    pub trunk_id: Option<i64>,
    pub flow_id: Option<i64>,
    pub flow_entry_node: Option<String>,
    pub enabled: bool,
}

row!(
    /// A DID mapped to a flow's entry node.
    InboundNumber, InboundNumberFields
);

/// The writable columns of an outbound route (its trunks are written with it, in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboundRouteFields {
    pub name: String,
    /// Lower first.
    pub position: i64,
    pub enabled: bool,
    /// Dialled-digit patterns: a prefix (`9`), an Asterisk pattern (`_NXXNXXXXXX`) or a
    /// regular expression (`^\+44[0-9]+$`).
    #[sqlx(json)]
    pub patterns: Vec<String>,
    pub call_class: CallClass,
    pub strip_digits: i64,
    pub prepend: String,
    pub caller_id_mode: RouteCallerId,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    /// The extensions (ids) that may use it; empty: every extension whose classes allow it.
    #[sqlx(json)]
    pub extension_ids: Vec<i64>,
    /// The route's trunks (ids), tried in this order.
    #[sqlx(json)]
    pub trunk_ids: Vec<i64>,
}

impl Default for OutboundRouteFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            position: 10,
            enabled: true,
            patterns: Vec::new(),
            call_class: CallClass::National,
            strip_digits: 0,
            prepend: String::new(),
            caller_id_mode: RouteCallerId::Extension,
            caller_id_name: None,
            caller_id_num: None,
            extension_ids: Vec::new(),
            trunk_ids: Vec::new(),
        }
    }
}

row!(
    /// An outbound route: dialled numbers to trunks.
    OutboundRoute, OutboundRouteFields
);

/// The writable columns of an extension (the SIP password is passed separately).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtensionFields {
    pub extension: String,
    pub name: String,
    pub email: Option<String>,
    pub sip_username: String,
    pub ring_timeout: i64,
    pub dnd: bool,
    pub follow_me_enabled: bool,
    #[sqlx(json)]
    pub follow_me_numbers: Vec<FollowMeNumber>,
    pub follow_me_mode: FollowMeMode,
    /// A number outside must press 1 to take the call (so its voicemail never does).
    pub follow_me_confirm: bool,
    /// SRTP for the extension's calls.
    pub srtp: SrtpPolicy,
    pub recording_mode: RecordingMode,
    pub max_registrations: i64,
    /// Phones that do not subscribe to message-summary get unsolicited (out-of-dialog)
    /// MWI NOTIFYs on registration and whenever the voicemail counts change.
    pub mwi_unsolicited: bool,
    /// What the extension presents when it calls out (a route may present its own).
    pub outbound_caller_id_name: Option<String>,
    pub outbound_caller_id_num: Option<String>,
    /// The number presented to emergency services (its location's callback number).
    pub emergency_caller_id_num: Option<String>,
    /// The classes of outbound numbers it may call (emergency numbers always).
    #[sqlx(json)]
    pub call_classes: Vec<CallClass>,
    /// Outbound calls at once (0: none).
    pub max_outbound_calls: i64,
    /// Outbound minutes a day (0: no cap).
    pub daily_outbound_minutes: i64,
}

impl Default for ExtensionFields {
    fn default() -> Self {
        Self {
            extension: String::new(),
            name: String::new(),
            email: None,
            sip_username: String::new(),
            ring_timeout: 30,
            dnd: false,
            follow_me_enabled: false,
            follow_me_numbers: Vec::new(),
            follow_me_mode: FollowMeMode::Sequential,
            follow_me_confirm: true,
            srtp: SrtpPolicy::Optional,
            recording_mode: RecordingMode::Off,
            mwi_unsolicited: false,
            max_registrations: 5,
            outbound_caller_id_name: None,
            outbound_caller_id_num: None,
            emergency_caller_id_num: None,
            call_classes: vec![CallClass::Local, CallClass::National],
            max_outbound_calls: 2,
            daily_outbound_minutes: 0,
        }
    }
}

row!(
    /// An extension (a user and their phones).
    Extension, ExtensionFields
);

/// What SIP digest authentication needs for one user: the HA1s over the current realm,
/// decrypted. Password-equivalent: keep in memory only as long as the check takes.
#[derive(Clone, PartialEq, Eq)]
pub struct SipCredentials {
    pub extension_id: i64,
    pub extension: String,
    pub username: String,
    pub realm: String,
    /// lowercase hex MD5(username:realm:password)
    pub ha1_md5: String,
    /// lowercase hex SHA-256(username:realm:password)
    pub ha1_sha256: String,
}

impl std::fmt::Debug for SipCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCredentials")
            .field("extension_id", &self.extension_id)
            .field("username", &self.username)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoicemailBoxFields {
    pub name: String,
    pub mailbox_number: Option<String>,
    pub greeting_file: Option<String>,
    pub greeting_type: GreetingType,
    pub email_notify: bool,
    pub email_address: Option<String>,
    pub email_attach_audio: bool,
    pub max_message_duration: i64,
    pub max_messages: i64,
    pub retention_days: i64,
    pub notify_extension_id: Option<i64>,
}

impl Default for VoicemailBoxFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            mailbox_number: None,
            greeting_file: None,
            greeting_type: GreetingType::Default,
            email_notify: false,
            email_address: None,
            email_attach_audio: true,
            max_message_duration: 120,
            max_messages: 50,
            retention_days: 90,
            notify_extension_id: None,
        }
    }
}

row!(VoicemailBoxRow, VoicemailBoxFields);

/// A voicemail box; `pin_set` tells whether a PIN is stored (it is never returned).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoicemailBox {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub row: VoicemailBoxRow,
    pub pin_set: bool,
}

impl std::ops::Deref for VoicemailBox {
    type Target = VoicemailBoxFields;
    fn deref(&self) -> &VoicemailBoxFields {
        &self.row.fields
    }
}

/// A recorded voicemail message.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoicemailMessage {
    pub id: i64,
    pub mailbox_id: i64,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    pub timestamp: Timestamp,
    pub duration: Option<i64>,
    pub file_path: String,
    pub read: bool,
    pub read_at: Option<Timestamp>,
    pub transcription: Option<String>,
    pub created_at: Timestamp,
}

/// A new voicemail message (the file is already in place under the data dir).
#[derive(Debug, Clone)]
pub struct NewVoicemailMessage {
    pub mailbox_id: i64,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    pub timestamp: Timestamp,
    pub duration: Option<i64>,
    pub file_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RingGroupFields {
    pub name: String,
    pub strategy: RingStrategy,
    pub ring_timeout: i64,
    /// extension ids, in ring order
    #[sqlx(json)]
    pub members: Vec<i64>,
    pub caller_id_mode: CallerIdMode,
    pub caller_id_value: Option<String>,
}

impl Default for RingGroupFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            strategy: RingStrategy::RingAll,
            ring_timeout: 30,
            members: Vec::new(),
            caller_id_mode: CallerIdMode::Pass,
            caller_id_value: None,
        }
    }
}

row!(
    /// A ring group.
    RingGroup, RingGroupFields
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IvrMenuFields {
    pub name: String,
    pub greeting_file: Option<String>,
    pub greeting_tts: Option<String>,
    pub timeout: i64,
    pub max_retries: i64,
    pub digit_timeout: i64,
    /// digit ("0"-"9", "*", "#") or "i" (invalid) / "t" (timeout) → output label / node id
    #[sqlx(json)]
    pub options: BTreeMap<String, String>,
}

impl Default for IvrMenuFields {
    fn default() -> Self {
        Self { name: String::new(), greeting_file: None, greeting_tts: None, timeout: 10, max_retries: 3, digit_timeout: 3, options: BTreeMap::new() }
    }
}

row!(
    /// An IVR menu.
    IvrMenu, IvrMenuFields
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeSwitchFields {
    pub name: String,
    /// IANA time zone name
    pub timezone: String,
    #[sqlx(json)]
    pub rules: Vec<TimeRule>,
    #[sqlx(json)]
    pub overrides: Vec<DateOverride>,
    pub default_dest: Option<String>,
}

impl Default for TimeSwitchFields {
    fn default() -> Self {
        Self { name: String::new(), timezone: "Australia/Sydney".into(), rules: Vec::new(), overrides: Vec::new(), default_dest: None }
    }
}

row!(
    /// A time switch.
    TimeSwitch, TimeSwitchFields
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConferenceBridgeFields {
    pub name: String,
    pub extension: Option<String>,
    pub max_members: i64,
    pub record: bool,
    pub mute_on_join: bool,
    pub announce_joins: bool,
}

impl Default for ConferenceBridgeFields {
    fn default() -> Self {
        Self { name: String::new(), extension: None, max_members: 10, record: false, mute_on_join: false, announce_joins: false }
    }
}

row!(ConferenceBridgeRow, ConferenceBridgeFields);

/// A conference bridge; `pin_set` tells whether a PIN is stored (never returned).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConferenceBridge {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub row: ConferenceBridgeRow,
    pub pin_set: bool,
}

impl std::ops::Deref for ConferenceBridge {
    type Target = ConferenceBridgeFields;
    fn deref(&self) -> &ConferenceBridgeFields {
        &self.row.fields
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallFlowFields {
    pub name: String,
    /// The draft graph (React Flow JSON: nodes and edges).
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub flow_data: serde_json::Value,
}

impl Default for CallFlowFields {
    fn default() -> Self {
        Self { name: String::new(), flow_data: serde_json::json!({"nodes": [], "edges": []}) }
    }
}

/// A call flow: its editable draft and where its published history stands.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallFlow {
    pub id: i64,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: CallFlowFields,
    /// the latest published version (0: never published)
    pub version: i64,
    pub published: bool,
    pub published_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::ops::Deref for CallFlow {
    type Target = CallFlowFields;
    fn deref(&self) -> &CallFlowFields {
        &self.fields
    }
}

/// A published, immutable version of a flow.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowVersion {
    pub id: i64,
    pub flow_id: i64,
    pub version: i64,
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub flow_data: serde_json::Value,
    /// The plugin versions it runs: `{"vendor/name": "<sha256 of the component>"}`.
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub plugins: serde_json::Value,
    pub published_by: String,
    pub published_at: Timestamp,
}

/// The configuration of an entity as a published flow version captured it
/// (`flow_version_entities`): what calls on that version run with, whatever the entity's row
/// says now. Written once, with its version, never updated.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionEntity {
    pub flow_id: i64,
    pub version: i64,
    /// The data model's kind (`ivr_menu`, `ring_group`, …).
    pub entity_type: String,
    pub entity_id: i64,
    /// The entity's columns as the API showed them then, without `id` and timestamps.
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// A version as listed (without its graph).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowVersionSummary {
    pub id: i64,
    pub flow_id: i64,
    pub version: i64,
    pub published_by: String,
    pub published_at: Timestamp,
}

/// A call detail record.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cdr {
    pub id: i64,
    pub call_id: String,
    pub start_time: Timestamp,
    pub answer_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub duration: Option<i64>,
    pub billable_dur: Option<i64>,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    pub callee: Option<String>,
    pub trunk_id: Option<i64>,
    pub direction: CallDirection,
    pub disposition: Option<CallDisposition>,
    pub recording_file: Option<String>,
    pub flow_id: Option<i64>,
    pub flow_version: Option<i64>,
    /// The flow traversal (node ids, as the flow engine records them).
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub flow_path: serde_json::Value,
    pub hangup_cause: Option<String>,
    /// Per-leg media statistics (`a`: the caller, `b`: the callee): packets and bytes each
    /// way, loss, jitter; written when the call's media session closes.
    #[sqlx(json(nullable))]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub media_stats: Option<serde_json::Value>,
    /// The extension that placed the call (internal and outbound calls).
    pub extension_id: Option<i64>,
    /// The outbound route it took.
    pub route_id: Option<i64>,
    /// The transfers it went through (`[{at_ms, kind, by, to | replaced_call, ...}]`).
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub transfers: serde_json::Value,
    /// The caller's leg was encrypted: its SRTP suite (`AES_CM_128_HMAC_SHA1_80`, ...);
    /// none for plain RTP.
    pub caller_srtp: Option<String>,
    /// The callee's leg was encrypted: its SRTP suite; none for plain RTP.
    pub callee_srtp: Option<String>,
}

/// A CDR as written when the call starts.
#[derive(Debug, Clone)]
pub struct NewCdr {
    pub call_id: String,
    pub start_time: Timestamp,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    pub callee: Option<String>,
    pub trunk_id: Option<i64>,
    pub direction: CallDirection,
    pub flow_id: Option<i64>,
    pub flow_version: Option<i64>,
    /// The extension that placed the call.
    pub extension_id: Option<i64>,
    /// The outbound route it takes.
    pub route_id: Option<i64>,
}

/// What is known when the call ends. Duration and billable duration are computed from the
/// start, answer and end times.
#[derive(Debug, Clone)]
pub struct CdrEnd {
    pub end_time: Timestamp,
    pub disposition: CallDisposition,
    pub hangup_cause: Option<String>,
    pub flow_path: serde_json::Value,
    pub recording_file: Option<String>,
    /// The trunk the call went out on (the last tried, for a failed one); None keeps it.
    pub trunk_id: Option<i64>,
    /// The transfers the call went through; None keeps what is there.
    pub transfers: Option<serde_json::Value>,
}

/// Filters of the call log. Times are inclusive lower (`from`) and exclusive upper (`to`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CdrFilter {
    pub direction: Option<CallDirection>,
    pub disposition: Option<CallDisposition>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub trunk_id: Option<i64>,
    pub call_id: Option<String>,
    /// calls from or to this number (an extension's history)
    pub party: Option<String>,
}

/// A call recording file.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recording {
    pub id: i64,
    pub cdr_id: Option<i64>,
    pub call_id: String,
    pub file_path: String,
    pub duration: Option<i64>,
    pub size_bytes: i64,
    pub created_at: Timestamp,
}

/// A recording in the recordings list, with its call's CDR (absent when the CDR is gone).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingItem {
    pub id: i64,
    pub cdr_id: Option<i64>,
    pub call_id: String,
    /// The WAV, relative to the data dir.
    pub file_path: String,
    /// Seconds of audio.
    pub duration: Option<i64>,
    pub size_bytes: i64,
    pub created_at: Timestamp,
    pub caller_id_name: Option<String>,
    pub caller_id_num: Option<String>,
    pub callee: Option<String>,
    pub direction: Option<CallDirection>,
    pub disposition: Option<CallDisposition>,
    pub start_time: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewRecording {
    pub cdr_id: Option<i64>,
    pub call_id: String,
    pub file_path: String,
    pub duration: Option<i64>,
    pub size_bytes: i64,
}

/// A contact registered for an extension.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registration {
    pub id: i64,
    pub extension_id: i64,
    pub contact_uri: String,
    pub transport: Option<String>,
    pub user_agent: Option<String>,
    pub source_ip: Option<String>,
    pub source_port: Option<i64>,
    pub expires: Timestamp,
    pub registered_at: Timestamp,
    pub call_id: Option<String>,
    pub cseq: Option<i64>,
    pub push_token: Option<String>,
    pub push_platform: Option<PushPlatform>,
    pub device_id: Option<String>,
}

/// A REGISTER binding to insert or refresh (keyed by extension and contact URI).
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub extension_id: i64,
    pub contact_uri: String,
    pub transport: Option<String>,
    pub user_agent: Option<String>,
    pub source_ip: Option<String>,
    pub source_port: Option<i64>,
    pub expires: Timestamp,
    pub call_id: Option<String>,
    pub cseq: Option<i64>,
    pub push_token: Option<String>,
    pub push_platform: Option<PushPlatform>,
    pub device_id: Option<String>,
}

/// An uploaded (or system) audio prompt.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prompt {
    pub id: i64,
    pub name: String,
    /// relative to the data dir
    pub file_path: String,
    pub original_name: Option<String>,
    pub sample_rate: i64,
    pub channels: i64,
    pub bits_per_sample: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewPrompt {
    pub name: String,
    pub file_path: String,
    pub original_name: Option<String>,
    pub sample_rate: i64,
    pub channels: i64,
    pub bits_per_sample: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
}

/// An installed node plugin (one version of it).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plugin {
    pub id: i64,
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// the component file, relative to the data dir
    pub file_path: String,
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub requested_capabilities: serde_json::Value,
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub granted_capabilities: serde_json::Value,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Plugin {
    /// The stable identity ("vendor/name") `plugin_kv` is keyed by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.vendor, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct NewPlugin {
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub file_path: String,
    pub requested_capabilities: serde_json::Value,
    pub granted_capabilities: serde_json::Value,
    pub enabled: bool,
}

/// An administrator account (the password hash is not part of it).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

/// A live admin session with its user.
#[derive(Debug, Clone, FromRow)]
pub struct Session {
    pub id: i64,
    /// SHA-256 (hex) of the cookie token
    pub token_hash: String,
    pub admin_user_id: i64,
    pub username: String,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The sliding expiry (pushed forward on activity, never past `absolute_expires_at`).
    pub expires_at: Timestamp,
    /// The end of the session however active it is.
    pub absolute_expires_at: Timestamp,
}

/// A session as its administrator sees it in the list of their sessions (no token, no CSRF).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: i64,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub absolute_expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An API token for an integration (the JWT itself is shown once, at creation).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub jti: String,
    pub scope: TokenScope,
    pub created_by: Option<i64>,
    pub created_at: Timestamp,
    /// Every token made since scopes exist expires (migration 0004 gave the older ones a date).
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// One audited change.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub ip: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    #[sqlx(json(nullable))]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    #[sqlx(json(nullable))]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
}

/// Who made a change and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// "admin:alice", "token:crm", "system"
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self { name: "system".into(), ip: None }
    }
}

/// A stored setting.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Setting {
    pub key: String,
    pub value: Option<String>,
    pub encrypted: bool,
    pub updated_at: Timestamp,
}

/// A kind of resource of the data model, as the API serves, audits and references it (by a
/// flow node's `data.entity_type`, or by another row's column). The kinds a flow node can link
/// are a subset, `flow::entity::EntityKind` (the SDK's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Extension,
    Trunk,
    InboundNumber,
    VoicemailBox,
    RingGroup,
    IvrMenu,
    TimeSwitch,
    ConferenceBridge,
    CallFlow,
    Prompt,
    OutboundRoute,
}

impl ResourceKind {
    pub const ALL: &'static [ResourceKind] = &[
        ResourceKind::Extension,
        ResourceKind::Trunk,
        ResourceKind::InboundNumber,
        ResourceKind::VoicemailBox,
        ResourceKind::RingGroup,
        ResourceKind::IvrMenu,
        ResourceKind::TimeSwitch,
        ResourceKind::ConferenceBridge,
        ResourceKind::CallFlow,
        ResourceKind::Prompt,
        ResourceKind::OutboundRoute,
    ];

    /// The name flow nodes use in `data.entity_type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceKind::Extension => "extension",
            ResourceKind::Trunk => "trunk",
            ResourceKind::InboundNumber => "inbound_number",
            ResourceKind::VoicemailBox => "voicemail_box",
            ResourceKind::RingGroup => "ring_group",
            ResourceKind::IvrMenu => "ivr_menu",
            ResourceKind::TimeSwitch => "time_switch",
            ResourceKind::ConferenceBridge => "conference_bridge",
            ResourceKind::CallFlow => "call_flow",
            ResourceKind::Prompt => "prompt",
            ResourceKind::OutboundRoute => "outbound_route",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    pub(crate) fn table(&self) -> &'static str {
        match self {
            ResourceKind::Extension => "extensions",
            ResourceKind::Trunk => "trunks",
            ResourceKind::InboundNumber => "inbound_numbers",
            ResourceKind::VoicemailBox => "voicemail_boxes",
            ResourceKind::RingGroup => "ring_groups",
            ResourceKind::IvrMenu => "ivr_menus",
            ResourceKind::TimeSwitch => "time_switches",
            ResourceKind::ConferenceBridge => "conference_bridges",
            ResourceKind::CallFlow => "call_flows",
            ResourceKind::Prompt => "prompts",
            ResourceKind::OutboundRoute => "outbound_routes",
        }
    }
}

/// Something that refers to an entity and so keeps it from being deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reference {
    /// the referring entity's kind ("call_flow", "ring_group", …)
    pub entity_type: String,
    pub entity_id: i64,
    pub name: String,
    /// where: a column ("members", "notify_extension_id") or a flow node ("node:n3",
    /// "published:v2:node:n3")
    pub via: String,
}

/// Which dialable number is taken, and by what (extensions, conference bridges and voicemail
/// boxes share one dial plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberOwner {
    pub entity_type: String,
    pub entity_id: i64,
    pub name: String,
}

text_enum!(
    /// Where a webhook delivery stands: waiting for its (next) attempt, accepted by the
    /// endpoint (2xx), or given up on.
    DeliveryStatus { Pending = "pending", Delivered = "delivered", Failed = "failed" }
);

/// A webhook endpoint (its secret is write-only: never in this row).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// The event names it receives.
    #[sqlx(json)]
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A webhook's fields as written.
#[derive(Debug, Clone)]
pub struct WebhookFields {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
}

/// One event for one endpoint, and how its delivery went.
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    /// The JSON body sent.
    #[sqlx(json)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    /// The endpoint's last HTTP status.
    pub last_status: Option<i64>,
    /// Why the last attempt failed (or was not made: the circuit was open).
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

text_enum!(
    /// Where a queued e-mail stands.
    MailStatus { Pending = "pending", Sent = "sent", Failed = "failed" }
);

/// An e-mail in the outbox (and, once sent or given up on, the log).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailItem {
    pub id: i64,
    /// `voicemail`.
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attachment_path: Option<String>,
    pub attachment_name: Option<String>,
    pub status: MailStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An e-mail to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attachment_path: Option<String>,
    pub attachment_name: Option<String>,
}

text_enum!(
    /// A push server: ntfy (POST to a topic URL, `Authorization: Bearer`) or Gotify (POST
    /// `/message`, `X-Gotify-Key`).
    PushKind { Ntfy = "ntfy", Gotify = "gotify" }
);

/// An extension's push target (the token is write-only).
#[derive(Debug, Clone, Serialize, FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTarget {
    pub extension_id: i64,
    pub kind: PushKind,
    pub url: String,
    /// A token is stored.
    pub token_set: bool,
    pub updated_at: Timestamp,
}
