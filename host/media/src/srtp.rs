//! SRTP and SRTCP (RFC 3711) with the crypto suites AES_CM_128_HMAC_SHA1_80,
//! AES_CM_128_HMAC_SHA1_32 (RFC 4568 §6.2) and AEAD_AES_128_GCM (RFC 7714), sans-IO and in
//! place: no allocation per packet.
//!
//! The primitives (AES, counter mode, HMAC-SHA1, AES-GCM) are RustCrypto's; this module is
//! the framing around them: the key derivation function (key derivation rate 0), the packet
//! index (per-SSRC rollover counter and sequence estimation, RFC 3711 §3.3.1 and appendix A),
//! the replay list (a 128-packet sliding window, §3.3.2), the SRTCP index and E flag (§3.4),
//! and the order RFC 3711 §3.3 prescribes on receipt: replay check, then the authentication
//! tag, then decryption, and only then the state update, so a forged or replayed packet
//! changes nothing.
//!
//! One [`SrtpContext`] protects or unprotects one direction of one leg: FlowPBX holds an
//! inbound context made from the endpoint's key (it unprotects what the endpoint sends) and
//! an outbound context made from its own key (it protects what FlowPBX sends). Both keep
//! their state per SSRC, for up to [`MAX_STREAMS`] SSRCs (the least recently used is
//! forgotten beyond that).
//!
//! Buffers: [`SrtpContext::protect_rtp`] and [`SrtpContext::protect_rtcp`] take the whole
//! buffer and the length of the packet in it, and append the trailer in the room after it
//! (at most [`MAX_OVERHEAD`] bytes); the unprotect calls take exactly the datagram and return
//! the length of the plain packet at its start.

use aes::Aes128;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroize;

type AesCtr = ctr::Ctr128BE<Aes128>;
type HmacSha1 = Hmac<Sha1>;

/// The most bytes protecting a packet adds (an AEAD_AES_128_GCM SRTCP packet: a 16-byte
/// tag and the 4-byte E flag and index). Buffers handed to the protect calls need this much
/// room after the packet.
pub const MAX_OVERHEAD: usize = 20;

/// Packets the replay list remembers behind the highest index (RFC 3711 §3.3.2 asks for at
/// least 64).
pub const REPLAY_WINDOW: u64 = 128;

/// SSRCs a context keeps state for. A leg has one or two at a time (a phone restarting its
/// stream after hold takes a new one); beyond this the least recently used is forgotten.
pub const MAX_STREAMS: usize = 8;

/// Largest SRTCP index (31 bits).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;

/// An SRTP crypto suite (the SDES name and the DTLS-SRTP profile agree on the parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// As the 80, with a 32-bit tag on SRTP (SRTCP keeps the 80-bit tag, RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-128 in Galois/counter mode, a 128-bit tag (RFC 7714).
    AeadAes128Gcm,
}

impl SrtpSuite {
    /// Every suite, in FlowPBX's order of preference: GCM (authenticated encryption in one
    /// pass, the strongest tag), then the 80-bit and 32-bit HMAC suites.
    pub const ALL: [SrtpSuite; 3] = [SrtpSuite::AeadAes128Gcm, SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32];

    /// The name SDES (`a=crypto`) uses.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite an SDES name designates (names are case-sensitive tokens).
    pub fn from_name(name: &str) -> Option<Self> {
        SrtpSuite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes of the master key.
    pub fn key_len(self) -> usize {
        16
    }

    /// Bytes of the master salt: 14 for the counter-mode suites, 12 for GCM.
    pub fn salt_len(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Bytes of an SRTP packet's authentication tag.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
            SrtpSuite::AeadAes128Gcm => 16,
        }
    }

    /// Bytes an SRTCP packet gains: the tag and the E flag with the index.
    pub fn rtcp_overhead(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm => 16 + 4,
            _ => 10 + 4,
        }
    }

    fn is_gcm(self) -> bool {
        self == SrtpSuite::AeadAes128Gcm
    }
}

impl std::fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a packet was not protected or unprotected, or a key not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// Master key and salt of the wrong length for the suite.
    #[error("{suite} takes a {want}-byte master key and salt, not {got} bytes")]
    KeyLength {
        /// The suite.
        suite: SrtpSuite,
        /// Bytes given.
        got: usize,
        /// Bytes the suite takes.
        want: usize,
    },
    /// Too short, not version 2, or a header longer than the packet.
    #[error("malformed SRTP/SRTCP packet: {0}")]
    Malformed(&'static str),
    /// The authentication tag does not match: forged, corrupted, or another key.
    #[error("SRTP authentication failed")]
    AuthenticationFailed,
    /// The packet's index was seen already, or is older than the replay window.
    #[error("SRTP replay (index seen already or older than the window)")]
    Replay,
    /// The buffer has no room for the trailer protecting adds.
    #[error("no room for the {0}-byte SRTP trailer")]
    NoRoom(usize),
    /// The master key protected as many packets as its lifetime allows (or the index space
    /// is used up): the call must be re-keyed.
    #[error("the SRTP master key's lifetime is exhausted")]
    KeyExpired,
    /// The operating system's random number generator failed.
    #[error("cannot read the OS random number generator: {0}")]
    Random(String),
}

/// A master key and salt for one suite, with its lifetime in packets when SDES named one.
/// `Debug` never prints the key; the bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    suite: SrtpSuite,
    material: [u8; 30],
    lifetime: Option<u64>,
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKey").field("suite", &self.suite).field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl Drop for SrtpKey {
    fn drop(&mut self) {
        self.material.zeroize();
    }
}

impl SrtpKey {
    /// A key from the concatenated master key and salt (SDES `inline:` carries them so).
    pub fn new(suite: SrtpSuite, key_and_salt: &[u8]) -> Result<Self, SrtpError> {
        let want = suite.key_len() + suite.salt_len();
        if key_and_salt.len() != want {
            return Err(SrtpError::KeyLength { suite, got: key_and_salt.len(), want });
        }
        let mut material = [0u8; 30];
        material[..want].copy_from_slice(key_and_salt);
        Ok(SrtpKey { suite, material, lifetime: None })
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate(suite: SrtpSuite) -> Result<Self, SrtpError> {
        let mut material = [0u8; 30];
        let n = suite.key_len() + suite.salt_len();
        getrandom::fill(&mut material[..n]).map_err(|e| SrtpError::Random(e.to_string()))?;
        Ok(SrtpKey { suite, material, lifetime: None })
    }

    /// The same key limited to `lifetime` packets (SRTP and SRTCP each): protecting or
    /// unprotecting more fails with [`SrtpError::KeyExpired`].
    pub fn with_lifetime(mut self, lifetime: Option<u64>) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The master key.
    pub fn master_key(&self) -> &[u8] {
        &self.material[..self.suite.key_len()]
    }

    /// The master salt.
    pub fn master_salt(&self) -> &[u8] {
        &self.material[self.suite.key_len()..self.suite.key_len() + self.suite.salt_len()]
    }

    /// Master key then salt, as SDES encodes them.
    pub fn key_and_salt(&self) -> &[u8] {
        &self.material[..self.suite.key_len() + self.suite.salt_len()]
    }

    /// The lifetime in packets, when one was given.
    pub fn lifetime(&self) -> Option<u64> {
        self.lifetime
    }
}

/// A leg's two keys: the endpoint's (it encrypts what it sends with it; FlowPBX decrypts)
/// and FlowPBX's own (FlowPBX encrypts what it sends the endpoint). With SDES the first is
/// in the endpoint's `a=crypto`, the second in FlowPBX's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The endpoint's key: unprotects what the leg receives from it.
    pub inbound: SrtpKey,
    /// FlowPBX's key: protects what FlowPBX sends the endpoint.
    pub outbound: SrtpKey,
}

/// The RFC 3711 §4.3.1 key derivation with a key derivation rate of 0: AES-CM keystream of
/// the master key from `IV = (master_salt XOR label << 48) * 2^16`. A 12-byte (GCM) salt is
/// padded with zeros to 14 bytes, as libsrtp does.
fn derive(key: &SrtpKey, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..key.suite.salt_len()].copy_from_slice(key.master_salt());
    iv[7] ^= label;
    out.fill(0);
    let mut ks = AesCtr::new(key.master_key().into(), &iv.into());
    ks.apply_keystream(out);
    iv.zeroize();
}

/// Labels of RFC 3711 §4.3.1 (SRTP) and §4.3.2 (SRTCP): encryption key, authentication
/// key, salt.
const RTP_LABELS: [u8; 3] = [0, 1, 2];
const RTCP_LABELS: [u8; 3] = [3, 4, 5];

/// The session keys of one of SRTP or SRTCP.
enum SessionKeys {
    /// AES-CM with HMAC-SHA1: the cipher and the keyed HMAC are kept initialised and cloned
    /// per packet (the clone is a copy; HMAC's key padding is not recomputed).
    Cm { aes: Aes128, salt: [u8; 14], mac: HmacSha1 },
    /// AES-GCM.
    Gcm { aead: Aes128Gcm, salt: [u8; 12] },
}

impl SessionKeys {
    fn derive(key: &SrtpKey, labels: [u8; 3]) -> Self {
        let mut enc = [0u8; 16];
        derive(key, labels[0], &mut enc);
        let keys = if key.suite.is_gcm() {
            let mut salt = [0u8; 12];
            derive(key, labels[2], &mut salt);
            SessionKeys::Gcm { aead: Aes128Gcm::new((&enc).into()), salt }
        } else {
            let mut salt = [0u8; 14];
            derive(key, labels[2], &mut salt);
            let mut auth = [0u8; 20];
            derive(key, labels[1], &mut auth);
            // HMAC takes a key of any length: this cannot fail
            let mac = <HmacSha1 as Mac>::new_from_slice(&auth).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            auth.zeroize();
            SessionKeys::Cm { aes: <Aes128 as KeyInit>::new((&enc).into()), salt, mac }
        };
        enc.zeroize();
        keys
    }
}

/// AES-CM's IV (RFC 3711 §4.1.1): `(salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16)`.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

fn cm_apply(aes: &Aes128, salt: &[u8; 14], ssrc: u32, index: u64, data: &mut [u8]) {
    use ctr::cipher::InnerIvInit;
    let iv = cm_iv(salt, ssrc, index);
    let mut ks = AesCtr::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &iv.into()));
    ks.apply_keystream(data);
}

/// GCM's SRTP IV (RFC 7714 §8.1): `(0x0000 || SSRC || ROC || SEQ) XOR salt`.
fn gcm_rtp_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// GCM's SRTCP IV (RFC 7714 §9.1): `(0x0000 || SSRC || 0x0000 || 0 || index) XOR salt`.
fn gcm_rtcp_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// The replay list: the highest index seen and which of the [`REPLAY_WINDOW`] before it were.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    top: u64,
    /// Bit `i`: index `top - i` was received. Zero until the first packet.
    seen: u128,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if self.seen == 0 || index > self.top {
            return Ok(());
        }
        let behind = self.top - index;
        if behind >= REPLAY_WINDOW || (self.seen >> behind) & 1 == 1 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn update(&mut self, index: u64) {
        if self.seen == 0 {
            self.top = index;
            self.seen = 1;
        } else if index > self.top {
            let ahead = index - self.top;
            self.seen = if ahead >= REPLAY_WINDOW { 0 } else { self.seen << ahead };
            self.seen |= 1;
            self.top = index;
        } else {
            self.seen |= 1 << (self.top - index);
        }
    }
}

/// The packet index of a sequence number (RFC 3711 appendix A), against the highest index
/// seen (`ROC * 2^16 + s_l`). `None` when it would precede index 0 or overflow the 32-bit
/// rollover counter.
fn estimate_index(top: u64, seq: u16) -> Option<u64> {
    let roc = (top >> 16) as i64;
    let s_l = i64::from(top as u16);
    let seq = i64::from(seq);
    let v = if s_l < 32768 {
        if seq - s_l > 32768 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 32768 > seq {
        roc + 1
    } else {
        roc
    };
    if !(0..=i64::from(u32::MAX)).contains(&v) {
        return None;
    }
    Some(((v as u64) << 16) | seq as u64)
}

/// Per-SSRC state, a few entries searched linearly, the least recently used replaced.
struct Streams<S> {
    slots: Vec<(u32, u64, S)>,
    clock: u64,
}

impl<S> Streams<S> {
    fn new() -> Self {
        Streams { slots: Vec::with_capacity(MAX_STREAMS), clock: 0 }
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.slots.iter().position(|(s, _, _)| *s == ssrc)
    }

    /// The slot of `ssrc`, made with `init` when new: allocation-free (the storage is
    /// reserved up front).
    fn entry(&mut self, ssrc: u32, init: S) -> &mut S {
        self.clock += 1;
        let i = match self.find(ssrc) {
            Some(i) => i,
            None if self.slots.len() < MAX_STREAMS => {
                self.slots.push((ssrc, 0, init));
                self.slots.len() - 1
            }
            None => {
                let oldest = self.slots.iter().enumerate().min_by_key(|(_, (_, used, _))| *used).map_or(0, |(i, _)| i);
                self.slots[oldest] = (ssrc, 0, init);
                oldest
            }
        };
        self.slots[i].1 = self.clock;
        &mut self.slots[i].2
    }

    fn get(&self, ssrc: u32) -> Option<&S> {
        self.find(ssrc).map(|i| &self.slots[i].2)
    }
}

/// Bytes of an RTP header (fixed part, CSRCs, extension) as SRTP sees it: the padding
/// octet is encrypted, so it is not read.
pub fn rtp_header_len(buf: &[u8]) -> Result<usize, SrtpError> {
    if buf.len() < 12 {
        return Err(SrtpError::Malformed("shorter than an RTP header"));
    }
    if buf[0] >> 6 != 2 {
        return Err(SrtpError::Malformed("RTP version is not 2"));
    }
    let mut len = 12 + 4 * usize::from(buf[0] & 0x0f);
    if buf[0] & 0x10 != 0 {
        let ext = buf.get(len..len + 4).ok_or(SrtpError::Malformed("RTP extension header truncated"))?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > buf.len() {
        return Err(SrtpError::Malformed("RTP header longer than the packet"));
    }
    Ok(len)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One direction's SRTP and SRTCP state for one leg. See the module documentation.
pub struct SrtpContext {
    suite: SrtpSuite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// RTP: the replay list per SSRC (its top is the highest index, which holds the ROC).
    rtp_streams: Streams<ReplayWindow>,
    /// SRTCP received: the replay list per SSRC; sent: the last index used.
    rtcp_streams: Streams<ReplayWindow>,
    rtp_limit: u64,
    rtcp_limit: u64,
    rtp_used: u64,
    rtcp_used: u64,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("rtp_packets", &self.rtp_used)
            .field("rtcp_packets", &self.rtcp_used)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context with the session keys derived from `key`, and no stream state yet.
    pub fn new(key: &SrtpKey) -> Self {
        let lifetime = key.lifetime.unwrap_or(u64::MAX);
        SrtpContext {
            suite: key.suite,
            rtp: SessionKeys::derive(key, RTP_LABELS),
            rtcp: SessionKeys::derive(key, RTCP_LABELS),
            rtp_streams: Streams::new(),
            rtcp_streams: Streams::new(),
            rtp_limit: lifetime.min(1 << 48),
            rtcp_limit: lifetime.min(1 << 31),
            rtp_used: 0,
            rtcp_used: 0,
        }
    }

    /// The suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The rollover counter of an SSRC's stream (the highest index seen, divided by 2^16).
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        self.rtp_streams.get(ssrc).map(|w| (w.top >> 16) as u32)
    }

    /// The index of an RTP packet of `ssrc` with sequence number `seq`, and whether the
    /// stream is new.
    fn rtp_index(&self, ssrc: u32, seq: u16) -> Result<u64, SrtpError> {
        match self.rtp_streams.get(ssrc) {
            // a new stream starts with ROC 0 (SDES signals none), its first sequence number as s_l
            None => Ok(u64::from(seq)),
            Some(w) => {
                let index = estimate_index(w.top, seq).ok_or(SrtpError::Replay)?;
                w.check(index)?;
                Ok(index)
            }
        }
    }

    /// Encrypts and authenticates the RTP packet `buf[..len]` in place, appending the tag;
    /// returns the SRTP packet's length. Refuses an index already protected (reusing the
    /// keystream would leak both plaintexts), as libsrtp does.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        let packet = buf.get(..len).ok_or(SrtpError::Malformed("length beyond the buffer"))?;
        let header = rtp_header_len(packet)?;
        if buf.len() < len + tag_len {
            return Err(SrtpError::NoRoom(tag_len));
        }
        if self.rtp_used >= self.rtp_limit {
            return Err(SrtpError::KeyExpired);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(&buf[8..12]);
        let index = self.rtp_index(ssrc, seq)?;
        match &self.rtp {
            SessionKeys::Cm { aes, salt, mac } => {
                cm_apply(aes, salt, ssrc, index, &mut buf[header..len]);
                let mut m = mac.clone();
                m.update(&buf[..len]);
                m.update(&((index >> 16) as u32).to_be_bytes());
                let full = m.finalize().into_bytes();
                buf[len..len + tag_len].copy_from_slice(&full[..tag_len]);
            }
            SessionKeys::Gcm { aead, salt } => {
                let iv = gcm_rtp_iv(salt, ssrc, index);
                let (head, rest) = buf.split_at_mut(header);
                let tag = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&iv), head, &mut rest[..len - header])
                    .map_err(|_| SrtpError::Malformed("too long for AES-GCM"))?;
                buf[len..len + 16].copy_from_slice(&tag);
            }
        }
        self.rtp_streams.entry(ssrc, ReplayWindow::default()).update(index);
        self.rtp_used += 1;
        Ok(len + tag_len)
    }

    /// Checks and decrypts the SRTP datagram `buf` in place: the replay list first, then
    /// the tag, then decryption; the state changes only for an authentic new packet.
    /// Returns the length of the RTP packet now at the start of `buf`.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        let Some(len) = buf.len().checked_sub(tag_len) else {
            return Err(SrtpError::Malformed("shorter than the authentication tag"));
        };
        let header = rtp_header_len(&buf[..len])?;
        if self.rtp_used >= self.rtp_limit {
            return Err(SrtpError::KeyExpired);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(&buf[8..12]);
        let index = self.rtp_index(ssrc, seq)?;
        match &self.rtp {
            SessionKeys::Cm { aes, salt, mac } => {
                let mut m = mac.clone();
                m.update(&buf[..len]);
                m.update(&((index >> 16) as u32).to_be_bytes());
                m.verify_truncated_left(&buf[len..]).map_err(|_| SrtpError::AuthenticationFailed)?;
                cm_apply(aes, salt, ssrc, index, &mut buf[header..len]);
            }
            SessionKeys::Gcm { aead, salt } => {
                let iv = gcm_rtp_iv(salt, ssrc, index);
                let (head, rest) = buf.split_at_mut(header);
                let (body, tag) = rest.split_at_mut(len - header);
                // aes-gcm compares the tag before it decrypts
                aead.decrypt_in_place_detached(Nonce::from_slice(&iv), head, body, Tag::from_slice(tag)).map_err(|_| SrtpError::AuthenticationFailed)?;
            }
        }
        self.rtp_streams.entry(ssrc, ReplayWindow::default()).update(index);
        self.rtp_used += 1;
        Ok(len)
    }

    /// Encrypts and authenticates the RTCP compound `buf[..len]` in place with the next
    /// SRTCP index of its sender SSRC (the first is 1), appending E flag, index and tag;
    /// returns the SRTCP packet's length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.suite.rtcp_overhead();
        let packet = buf.get(..len).ok_or(SrtpError::Malformed("length beyond the buffer"))?;
        if packet.len() < 8 || packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed("not an RTCP packet"));
        }
        if buf.len() < len + overhead {
            return Err(SrtpError::NoRoom(overhead));
        }
        if self.rtcp_used >= self.rtcp_limit {
            return Err(SrtpError::KeyExpired);
        }
        let ssrc = be32(&buf[4..8]);
        let index = self.rtcp_streams.get(ssrc).map_or(1, |w| w.top + 1);
        if index > u64::from(MAX_SRTCP_INDEX) {
            return Err(SrtpError::KeyExpired);
        }
        let index = index as u32;
        let e_index = (index | 0x8000_0000).to_be_bytes();
        match &self.rtcp {
            SessionKeys::Cm { aes, salt, mac } => {
                cm_apply(aes, salt, ssrc, u64::from(index), &mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&e_index);
                let mut m = mac.clone();
                m.update(&buf[..len + 4]);
                let full = m.finalize().into_bytes();
                buf[len + 4..len + 14].copy_from_slice(&full[..10]);
            }
            SessionKeys::Gcm { aead, salt } => {
                let iv = gcm_rtcp_iv(salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                let tag =
                    aead.encrypt_in_place_detached(Nonce::from_slice(&iv), &aad, &mut buf[8..len]).map_err(|_| SrtpError::Malformed("too long for AES-GCM"))?;
                buf[len..len + 16].copy_from_slice(&tag);
                buf[len + 16..len + 20].copy_from_slice(&e_index);
            }
        }
        self.rtcp_streams.entry(ssrc, ReplayWindow::default()).update(u64::from(index));
        self.rtcp_used += 1;
        Ok(len + overhead)
    }

    /// Checks and decrypts the SRTCP datagram `buf` in place (replay list, tag, then
    /// decryption unless the E flag says the sender did not encrypt); returns the length of
    /// the RTCP compound now at the start of `buf`.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.suite.rtcp_overhead();
        if buf.len() < 8 + overhead {
            return Err(SrtpError::Malformed("shorter than an SRTCP packet"));
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed("RTCP version is not 2"));
        }
        if self.rtcp_used >= self.rtcp_limit {
            return Err(SrtpError::KeyExpired);
        }
        let len = buf.len() - overhead;
        let ssrc = be32(&buf[4..8]);
        let e_at = if self.suite.is_gcm() { buf.len() - 4 } else { len };
        let e_index = be32(&buf[e_at..e_at + 4]);
        let (encrypted, index) = (e_index & 0x8000_0000 != 0, e_index & MAX_SRTCP_INDEX);
        if let Some(w) = self.rtcp_streams.get(ssrc) {
            w.check(u64::from(index))?;
        }
        match &self.rtcp {
            SessionKeys::Cm { aes, salt, mac } => {
                let mut m = mac.clone();
                m.update(&buf[..len + 4]);
                m.verify_truncated_left(&buf[len + 4..]).map_err(|_| SrtpError::AuthenticationFailed)?;
                if encrypted {
                    cm_apply(aes, salt, ssrc, u64::from(index), &mut buf[8..len]);
                }
            }
            SessionKeys::Gcm { aead, salt } => {
                let iv = gcm_rtcp_iv(salt, ssrc, index);
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&buf[len..len + 16]);
                if encrypted {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&buf[..8]);
                    aad[8..].copy_from_slice(&e_index.to_be_bytes());
                    aead.decrypt_in_place_detached(Nonce::from_slice(&iv), &aad, &mut buf[8..len], Tag::from_slice(&tag))
                        .map_err(|_| SrtpError::AuthenticationFailed)?;
                } else {
                    // authenticated only (RFC 7714 §9.2): the whole packet and E || index
                    // are the associated data; move the index next to the packet
                    buf.copy_within(len + 16..len + 20, len);
                    aead.decrypt_in_place_detached(Nonce::from_slice(&iv), &buf[..len + 4], &mut [], Tag::from_slice(&tag))
                        .map_err(|_| SrtpError::AuthenticationFailed)?;
                }
            }
        }
        self.rtcp_streams.entry(ssrc, ReplayWindow::default()).update(u64::from(index));
        self.rtcp_used += 1;
        Ok(len)
    }
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
