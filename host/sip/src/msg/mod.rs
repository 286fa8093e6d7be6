//! SIP messages: parsing from bytes, typed access, mutation, building and serialising.
//!
//! A [`Message`] keeps its header text in one `String` and its headers as offsets into it, so
//! parsing copies the header section once and allocates three times at most; typed views
//! ([`Via`], [`NameAddr`], [`CSeq`], ...) borrow from it and are parsed on demand. Changing a
//! header appends the new value to the text and moves the offset.

pub mod build;
mod framer;
mod hdr;
mod parse;
mod uri;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use build::{check_value, escape_user, name_addr, quote_display, HeaderInjection, SipUriBuilder};
pub use framer::{Frame, StreamFramer};
pub use hdr::{is_token, parse_u32, split_list, CSeq, Contact, NameAddr, Refresher, SessionExpires, Via, MAGIC_COOKIE};
pub use uri::{quote, unescape, unquote, Host, Params, Scheme, SipUri, TelUri, Uri};

/// The largest message accepted, in bytes (header section and body together).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other token.
    Other(Box<str>),
}

impl Method {
    /// Reads a method token (case-sensitive).
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.into()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! header_names {
    ($($variant:ident => $name:literal $(, $compact:literal)?;)*) => {
        /// The headers this crate knows by name. Others are reached by their text
        /// ([`Message::header_named`]). Compact forms (`v`, `i`, `f`, ...) map to these.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $(#[doc = $name] $variant,)*
        }

        impl HeaderName {
            /// The canonical name, as this crate writes it.
            pub fn as_str(self) -> &'static str {
                match self { $(HeaderName::$variant => $name,)* }
            }

            /// Looks a name up case-insensitively, compact forms included.
            pub fn from_name(s: &str) -> Option<HeaderName> {
                if s.len() == 1 {
                    let c = s.as_bytes()[0].to_ascii_lowercase();
                    $($(if c == $compact.as_bytes()[0] { return Some(HeaderName::$variant); })?)*
                    return None;
                }
                $(if s.len() == $name.len() && s.eq_ignore_ascii_case($name) {
                    return Some(HeaderName::$variant);
                })*
                None
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    Contact => "Contact", "m";
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    ContentDisposition => "Content-Disposition";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    AuthenticationInfo => "Authentication-Info";
    UserAgent => "User-Agent";
    Server => "Server";
    Supported => "Supported", "k";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
    Event => "Event", "o";
    AllowEvents => "Allow-Events", "u";
    SubscriptionState => "Subscription-State";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    Subject => "Subject", "s";
    Date => "Date";
    Timestamp => "Timestamp";
    Warning => "Warning";
    Reason => "Reason";
    Path => "Path";
    RetryAfter => "Retry-After";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    RemotePartyId => "Remote-Party-ID";
    Privacy => "Privacy";
    Organization => "Organization";
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Byte offsets `[start, end)` into [`Message::head`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(start: usize, end: usize) -> Span {
        // Messages are at most MAX_MESSAGE_SIZE plus edits; u32 offsets cannot overflow for
        // anything that fits in memory reasonably, and we saturate rather than wrap.
        Span { start: u32::try_from(start).unwrap_or(u32::MAX), end: u32::try_from(end).unwrap_or(u32::MAX) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Known(HeaderName),
    Other(Span),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    name: Name,
    value: Span,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StartLine {
    Request { method: Method, uri: Span },
    Response { code: u16, reason: Span },
}

/// A SIP request or response.
///
/// Read it with the typed getters ([`Message::top_via`], [`Message::call_id`],
/// [`Message::cseq`], ...), which parse on demand and return `None` for an absent or malformed
/// header. A message returned by [`Message::parse`] has passed validation: its Request-URI,
/// Via, From, To, Call-ID, CSeq, Max-Forwards, Contact and Expires are known to parse.
///
/// Content-Length is not stored: it is always the length of [`Message::body`], and serialising
/// writes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Invariant: every `Span` in `start` and `headers` lies within `head` on char boundaries.
    head: String,
    start: StartLine,
    headers: Vec<Header>,
    body: Bytes,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl Message {
    /// Parses one message from a datagram (or a frame cut by [`StreamFramer`]).
    ///
    /// Tolerates leading CRLFs, LF-only line ends, folded header lines, compact header names
    /// and whitespace before the colon. Extra bytes after Content-Length are discarded; a body
    /// shorter than Content-Length is an error. See [`crate::ParseError::disposition`] for what
    /// to do with the error.
    pub fn parse(data: &[u8]) -> Result<Message, crate::ParseError> {
        parse::parse(data, MAX_MESSAGE_SIZE)
    }

    /// A new request with no headers, to be completed with [`Message::with_header`]. The
    /// Request-URI may hold no whitespace, CR, LF or NUL.
    pub fn request(method: Method, uri: &str) -> Result<Message, HeaderInjection> {
        if uri.is_empty() || uri.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
            return Err(HeaderInjection);
        }
        let mut head = String::with_capacity(512);
        head.push_str(uri);
        Ok(Message { start: StartLine::Request { method, uri: Span::of(0, uri.len()) }, head, headers: Vec::with_capacity(12), body: Bytes::new() })
    }

    /// [`Message::request`] for a Request-URI this crate parsed from a message.
    pub(crate) fn request_copied(method: Method, uri: &str) -> Message {
        debug_assert!(check_value(uri).is_ok());
        let mut head = String::with_capacity(512);
        head.push_str(uri);
        Message { start: StartLine::Request { method, uri: Span::of(0, uri.len()) }, head, headers: Vec::with_capacity(12), body: Bytes::new() }
    }

    /// A new response with no headers. Usually [`Message::response_to`] is what you want.
    /// Control characters in `reason` (a phrase relayed from elsewhere) become spaces.
    pub fn response(code: u16, reason: &str) -> Message {
        let mut head = String::with_capacity(512);
        if reason.chars().any(|c| c.is_control() && c != '\t') {
            head.extend(reason.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }));
        } else {
            head.push_str(reason);
        }
        let reason_len = head.len();
        Message { start: StartLine::Response { code, reason: Span::of(0, reason_len) }, head, headers: Vec::with_capacity(10), body: Bytes::new() }
    }

    /// A response to `req` per RFC 3261 §8.2.6: copies every Via (in order), From, To,
    /// Call-ID and CSeq, and adds `to_tag` to To when To has no tag and the code is not 100.
    /// A dialog-creating answer (101–299) also copies every Record-Route (§12.1.1), so the
    /// proxies that asked to stay in the path see the dialog's later requests.
    /// A `reason` of `None` uses the standard phrase for the code.
    ///
    /// Works on a partly parsed request too (for the 400 of a [`crate::ParseError`]): headers
    /// that are absent are simply not copied.
    pub fn response_to(req: &Message, code: u16, reason: Option<&str>, to_tag: Option<&str>) -> Message {
        let mut resp = Message::response(code, reason.unwrap_or_else(|| reason_phrase(code)));
        for h in &req.headers {
            if let Name::Known(n) = h.name {
                if matches!(n, HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq)
                    || (n == HeaderName::RecordRoute && (101..300).contains(&code))
                {
                    resp.push_copied(n, req.span(h.value));
                } else if n == HeaderName::To {
                    let v = req.span(h.value);
                    let has_tag = NameAddr::parse(v).is_some_and(|a| a.tag().is_some());
                    match to_tag {
                        Some(tag) if code != 100 && !has_tag => {
                            let start = resp.head.len();
                            resp.head.push_str(v);
                            resp.head.push_str(";tag=");
                            resp.head.push_str(tag);
                            let span = Span::of(start, resp.head.len());
                            resp.headers.push(Header { name: Name::Known(n), value: span });
                        }
                        _ => resp.push_copied(n, v),
                    }
                }
            }
        }
        resp
    }

    // ----- start line -----

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request (`None` for a response; see [`Message::cseq`] for its method).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI text of a request.
    pub fn uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.span(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI of a request.
    pub fn uri(&self) -> Option<Uri<'_>> {
        self.uri_str().and_then(Uri::parse)
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.span(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Replaces the Request-URI (a proxy retargeting, a B2BUA leg).
    pub fn set_uri(&mut self, uri: &str) {
        let span = self.append(uri);
        if let StartLine::Request { uri, .. } = &mut self.start {
            *uri = span;
        }
    }

    /// Replaces the status code and reason phrase of a response.
    pub fn set_status(&mut self, code: u16, reason: &str) {
        let span = self.append(reason);
        if let StartLine::Response { code: c, reason: r } = &mut self.start {
            *c = code;
            *r = span;
        }
    }

    // ----- generic header access -----

    fn span(&self, s: Span) -> &str {
        self.head.get(s.start as usize..s.end as usize).unwrap_or("")
    }

    fn append(&mut self, text: &str) -> Span {
        let start = self.head.len();
        self.head.push_str(text);
        Span::of(start, self.head.len())
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.iter().find(|h| h.name == Name::Known(name)).map(|h| self.span(h.value))
    }

    /// The values of every header called `name`, in order. Each value may itself be a
    /// comma-separated list; see [`split_list`] or the typed list getters.
    pub fn headers(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers.iter().filter(move |h| h.name == Name::Known(name)).map(|h| self.span(h.value))
    }

    /// The value of the first header with this name (any spelling, known or not).
    pub fn header_named<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// The values of every header with this name (any spelling, known or not).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let known = HeaderName::from_name(name);
        self.headers
            .iter()
            .filter(move |h| match (h.name, known) {
                (Name::Known(a), Some(b)) => a == b,
                (Name::Other(s), None) => self.span(s).eq_ignore_ascii_case(name),
                _ => false,
            })
            .map(|h| self.span(h.value))
    }

    /// Every header as `(name, value)`, in order, names in canonical form for known headers.
    pub fn iter_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|h| {
            let n = match h.name {
                Name::Known(k) => k.as_str(),
                Name::Other(s) => self.span(s),
            };
            (n, self.span(h.value))
        })
    }

    /// Appends a header after the others. A value holding CR, LF or NUL is refused.
    pub fn push_header(&mut self, name: HeaderName, value: &str) -> Result<(), HeaderInjection> {
        check_value(value)?;
        self.push_copied(name, value);
        Ok(())
    }

    /// Appends a value copied from a message this crate parsed (which cannot hold CR, LF or
    /// NUL: the parser refuses them).
    pub(crate) fn push_copied(&mut self, name: HeaderName, value: &str) {
        debug_assert!(check_value(value).is_ok());
        let value = self.append(value);
        self.headers.push(Header { name: Name::Known(name), value });
    }

    /// Appends a header by its text name (a known name maps to its [`HeaderName`]). A name
    /// that is not a token, or a value holding CR, LF or NUL, is refused.
    pub fn push_header_named(&mut self, name: &str, value: &str) -> Result<(), HeaderInjection> {
        if !is_token(name) {
            return Err(HeaderInjection);
        }
        check_value(value)?;
        let name = match HeaderName::from_name(name) {
            Some(k) => Name::Known(k),
            None => Name::Other(self.append(name)),
        };
        let value = self.append(value);
        self.headers.push(Header { name, value });
        Ok(())
    }

    /// Builder form of [`Message::push_header`].
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Result<Message, HeaderInjection> {
        self.push_header(name, value)?;
        Ok(self)
    }

    /// Inserts a header before the first one of the same name (or first of all when there is
    /// none): how a Via or a Record-Route is added on top. A value holding CR, LF or NUL is
    /// refused.
    pub fn prepend_header(&mut self, name: HeaderName, value: &str) -> Result<(), HeaderInjection> {
        check_value(value)?;
        let value = self.append(value);
        let pos = self.headers.iter().position(|h| h.name == Name::Known(name)).unwrap_or(0);
        self.headers.insert(pos, Header { name: Name::Known(name), value });
        Ok(())
    }

    /// Sets a header: replaces the first of that name and removes the others, or appends. A
    /// value holding CR, LF or NUL is refused.
    pub fn set_header(&mut self, name: HeaderName, value: &str) -> Result<(), HeaderInjection> {
        check_value(value)?;
        self.set_copied(name, value);
        Ok(())
    }

    /// [`Message::set_header`] for a value this crate parsed or built from checked parts.
    pub(crate) fn set_copied(&mut self, name: HeaderName, value: &str) {
        debug_assert!(check_value(value).is_ok());
        let span = self.append(value);
        let wanted = Name::Known(name);
        let mut found = false;
        self.headers.retain_mut(|h| {
            if h.name != wanted {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            h.value = span;
            true
        });
        if !found {
            self.headers.push(Header { name: wanted, value: span });
        }
    }

    /// Removes every header called `name`; returns how many there were.
    pub fn remove_headers(&mut self, name: HeaderName) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| h.name != Name::Known(name));
        before - self.headers.len()
    }

    /// Removes every header with this text name; returns how many there were.
    pub fn remove_headers_named(&mut self, name: &str) -> usize {
        let before = self.headers.len();
        let wanted = match HeaderName::from_name(name) {
            Some(k) => Name::Known(k),
            None => {
                let mut n = 0;
                let mut i = 0;
                while i < self.headers.len() {
                    let h = self.headers[i];
                    if matches!(h.name, Name::Other(s) if self.span(s).eq_ignore_ascii_case(name)) {
                        self.headers.remove(i);
                        n += 1;
                    } else {
                        i += 1;
                    }
                }
                return n;
            }
        };
        self.headers.retain(|h| h.name != wanted);
        before - self.headers.len()
    }

    /// Removes the first value of a list header (the top Via, the first Route): the first
    /// element of the first header line, or the whole line when it holds one element.
    pub fn remove_first_value(&mut self, name: HeaderName) -> bool {
        let Some(idx) = self.headers.iter().position(|h| h.name == Name::Known(name)) else {
            return false;
        };
        // The offset of the second element, which becomes the start of the line's value.
        let second = {
            let value = self.span(self.headers[idx].value);
            let mut parts = hdr::split_list(value);
            let _first = parts.next();
            parts.next().map(|s| s.as_ptr() as usize - value.as_ptr() as usize)
        };
        match second {
            None => {
                self.headers.remove(idx);
            }
            Some(off) => {
                let h = &mut self.headers[idx];
                h.value.start = h.value.start.saturating_add(u32::try_from(off).unwrap_or(0));
            }
        }
        true
    }

    fn name_value_iter(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers(name).flat_map(split_list)
    }

    // ----- typed getters -----

    /// The first (top) Via.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.name_value_iter(HeaderName::Via).next().and_then(Via::parse)
    }

    /// Every Via value in order, across header lines and commas (malformed ones skipped).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> {
        self.name_value_iter(HeaderName::Via).filter_map(Via::parse)
    }

    /// The From header.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.header(HeaderName::From).and_then(NameAddr::parse)
    }

    /// The To header.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.header(HeaderName::To).and_then(NameAddr::parse)
    }

    /// The From tag.
    pub fn from_tag(&self) -> Option<&str> {
        self.from().and_then(|f| f.tag())
    }

    /// The To tag.
    pub fn to_tag(&self) -> Option<&str> {
        self.to().and_then(|t| t.tag())
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId).map(str::trim).filter(|c| !c.is_empty())
    }

    /// The CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        self.header(HeaderName::CSeq).and_then(CSeq::parse)
    }

    /// Every Contact value in order (malformed ones skipped).
    pub fn contacts(&self) -> impl Iterator<Item = Contact<'_>> {
        self.name_value_iter(HeaderName::Contact).filter_map(Contact::parse)
    }

    /// The first Contact address (not `*`).
    pub fn contact(&self) -> Option<NameAddr<'_>> {
        self.contacts().find_map(|c| c.addr().copied())
    }

    /// Every Route value in order.
    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'_>> {
        self.name_value_iter(HeaderName::Route).filter_map(NameAddr::parse)
    }

    /// Every Record-Route value in order.
    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'_>> {
        self.name_value_iter(HeaderName::RecordRoute).filter_map(NameAddr::parse)
    }

    /// Max-Forwards, when present and in 0..=255.
    pub fn max_forwards(&self) -> Option<u8> {
        self.header(HeaderName::MaxForwards).and_then(parse_u32).and_then(|v| u8::try_from(v).ok())
    }

    /// Expires, in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires).and_then(parse_u32)
    }

    /// Min-Expires, in seconds.
    pub fn min_expires(&self) -> Option<u32> {
        self.header(HeaderName::MinExpires).and_then(parse_u32)
    }

    /// Content-Type, as written (`application/sdp`).
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType).map(str::trim)
    }

    /// User-Agent, as written.
    pub fn user_agent(&self) -> Option<&str> {
        self.header(HeaderName::UserAgent).map(str::trim)
    }

    /// The option tags of every Supported header.
    pub fn supported(&self) -> impl Iterator<Item = &str> {
        self.name_value_iter(HeaderName::Supported)
    }

    /// The option tags of every Require header.
    pub fn require(&self) -> impl Iterator<Item = &str> {
        self.name_value_iter(HeaderName::Require)
    }

    /// Whether Supported or Require lists `tag` (case-insensitive).
    pub fn supports(&self, tag: &str) -> bool {
        self.supported().chain(self.require()).any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// The methods of every Allow header.
    pub fn allow(&self) -> impl Iterator<Item = &str> {
        self.name_value_iter(HeaderName::Allow)
    }

    /// Session-Expires (RFC 4028).
    pub fn session_expires(&self) -> Option<SessionExpires> {
        self.header(HeaderName::SessionExpires).and_then(SessionExpires::parse)
    }

    /// Min-SE (RFC 4028), in seconds (the parameters are ignored).
    pub fn min_se(&self) -> Option<u32> {
        self.header(HeaderName::MinSe).and_then(|v| parse_u32(v.split(';').next().unwrap_or("")))
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Replaces the body and its Content-Type (`None` removes Content-Type).
    pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) -> Result<(), HeaderInjection> {
        match content_type {
            Some(ct) => self.set_header(HeaderName::ContentType, ct)?,
            None => {
                self.remove_headers(HeaderName::ContentType);
            }
        }
        self.body = body;
        Ok(())
    }

    /// Fills in `received` and `rport` on the top Via of a request that arrived from
    /// `source` (RFC 3261 §18.2.1, RFC 3581 §4). Whatever `received`/`rport` values the client
    /// wrote are removed: they are claims, and a response routed by them would make us a
    /// reflector. `received` is added when the sent-by host is not the source address or
    /// when `rport` was asked for; `rport` (a bare one, or one a client filled in itself)
    /// gets the real source port.
    pub fn stamp_received(&mut self, source: std::net::SocketAddr) {
        let Some(idx) = self.headers.iter().position(|h| h.name == Name::Known(HeaderName::Via)) else {
            return;
        };
        let value = self.span(self.headers[idx].value);
        let first = hdr::split_list(value).next().unwrap_or("");
        let Some(via) = Via::parse(first) else { return };
        let wants_rport = via.rport().is_some();
        let host_matches = via.host.ip() == Some(source.ip());
        let has_received = via.params.get("received").is_some();
        if host_matches && !wants_rport && !has_received {
            return;
        }
        let first_off = first.as_ptr() as usize - value.as_ptr() as usize;
        let first_end = first_off + first.len();
        let mut rebuilt = String::with_capacity(value.len() + 40);
        rebuilt.push_str(&value[..first_off]);
        // Keep every parameter but received/rport, then add ours.
        let params_start = first.find(';').unwrap_or(first.len());
        rebuilt.push_str(&first[..params_start]);
        for (n, v) in via.params.iter() {
            if n.eq_ignore_ascii_case("received") || n.eq_ignore_ascii_case("rport") {
                continue;
            }
            rebuilt.push(';');
            rebuilt.push_str(n);
            if let Some(v) = v {
                rebuilt.push('=');
                rebuilt.push_str(v);
            }
        }
        use fmt::Write;
        if !host_matches || wants_rport {
            let _ = write!(rebuilt, ";received={}", source.ip());
        }
        if wants_rport {
            let _ = write!(rebuilt, ";rport={}", source.port());
        }
        rebuilt.push_str(&value[first_end..]);
        let span = self.append(&rebuilt);
        self.headers[idx].value = span;
    }

    /// Whether a (partial) request has what a response needs to find its way back: a
    /// parseable top Via.
    pub(crate) fn is_addressable(&self) -> bool {
        self.top_via().is_some()
    }

    // ----- serialising -----

    /// Serialises into `out`: canonical names for known headers, one header per line,
    /// Content-Length computed from the body.
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(self.head.len() + self.headers.len() * 8 + self.body.len() + 64);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.put_slice(method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(self.span(*uri).as_bytes());
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.put_slice(b"SIP/2.0 ");
                let mut num = [b'0'; 3];
                let c = (*code).min(999);
                num[0] += (c / 100) as u8;
                num[1] += (c / 10 % 10) as u8;
                num[2] += (c % 10) as u8;
                out.put_slice(&num);
                out.put_u8(b' ');
                out.put_slice(self.span(*reason).as_bytes());
                out.put_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            let name = match h.name {
                Name::Known(HeaderName::ContentLength) => continue,
                Name::Known(k) => k.as_str(),
                Name::Other(s) => self.span(s),
            };
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(self.span(h.value).as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Length: ");
        let mut buf = itoa_buf(self.body.len());
        out.put_slice(buf.as_bytes());
        buf.clear();
        out.put_slice(b"\r\n\r\n");
        out.put_slice(&self.body);
    }

    /// Serialises into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_to(&mut out);
        out.freeze()
    }
}

fn itoa_buf(n: usize) -> String {
    n.to_string()
}

/// The standard reason phrase of a status code (RFC 3261 §21 and later RFCs).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        c if c < 200 => "Session Progress",
        c if c < 300 => "OK",
        c if c < 400 => "Redirection",
        c if c < 500 => "Client Error",
        c if c < 600 => "Server Error",
        _ => "Global Failure",
    }
}
