//! SDES negotiation under each policy, with the inputs an attacker or a broken phone sends.

use super::*;
use crate::sdp_media::read;

/// A valid 30-byte key (AES_CM_128 suites) in base64.
const KEY30: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn sdp(proto: &str, crypto: &[&str]) -> LegSdp {
    let mut s =
        format!("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
    for c in crypto {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    read(s.as_bytes()).expect("readable")
}

fn line80(tag: u32) -> String {
    format!("{tag} AES_CM_128_HMAC_SHA1_80 inline:{KEY30}")
}

#[test]
fn reads_savp_and_crypto_lines() {
    let s = sdp("RTP/SAVP", &[&line80(1), "2 AES_CM_128_HMAC_SHA1_32 inline:abc"]);
    assert!(s.secure);
    assert_eq!(s.crypto.len(), 2);
    assert!(sdp("RTP/SAVPF", &[]).secure);
    assert!(!sdp("RTP/AVP", &[&line80(1)]).secure);
}

#[test]
fn off_answers_plain_and_refuses_mandatory_srtp() {
    assert_eq!(answer(SrtpPolicy::Off, &sdp("RTP/AVP", &[]), None).unwrap(), None);
    // best-effort crypto in an AVP offer is ignored
    assert_eq!(answer(SrtpPolicy::Off, &sdp("RTP/AVP", &[&line80(1)]), None).unwrap(), None);
    assert_eq!(answer(SrtpPolicy::Off, &sdp("RTP/SAVP", &[&line80(1)]), None), Err(SdpFault::Crypto));
}

#[test]
fn optional_answers_crypto_when_offered() {
    assert_eq!(answer(SrtpPolicy::Optional, &sdp("RTP/AVP", &[]), None).unwrap(), None);
    let a = answer(SrtpPolicy::Optional, &sdp("RTP/AVP", &[&line80(7)]), None).unwrap().expect("crypto answered");
    assert_eq!((a.attribute.tag, a.attribute.suite()), (7, SrtpSuite::AesCm128HmacSha1_80));
    assert_ne!(a.keys.outbound.key_and_salt(), a.keys.inbound.key_and_salt(), "our own key, never the offerer's");
    // an SAVP offer must be answered with crypto: none usable → refused
    assert_eq!(answer(SrtpPolicy::Optional, &sdp("RTP/SAVP", &[]), None), Err(SdpFault::Crypto));
    // AVP with only unusable crypto: plain
    assert_eq!(answer(SrtpPolicy::Optional, &sdp("RTP/AVP", &["1 F8_128_HMAC_SHA1_80 inline:abcd"]), None).unwrap(), None);
}

#[test]
fn required_refuses_offers_without_usable_crypto() {
    assert_eq!(answer(SrtpPolicy::Required, &sdp("RTP/AVP", &[]), None), Err(SdpFault::Crypto));
    assert_eq!(answer(SrtpPolicy::Required, &sdp("RTP/SAVP", &[]), None), Err(SdpFault::Crypto));
    assert!(answer(SrtpPolicy::Required, &sdp("RTP/AVP", &[&line80(1)]), None).unwrap().is_some(), "crypto in an AVP offer satisfies required");
    assert!(answer(SrtpPolicy::Required, &sdp("RTP/SAVP", &[&line80(1)]), None).unwrap().is_some());
}

#[test]
fn answers_the_best_suite_offered() {
    let gcm = CryptoAttribute::generate(3, SrtpSuite::AeadAes128Gcm).unwrap().to_string();
    let s32 = CryptoAttribute::generate(2, SrtpSuite::AesCm128HmacSha1_32).unwrap().to_string();
    let offer = sdp("RTP/SAVP", &[&s32, &line80(1), &gcm]);
    let a = answer(SrtpPolicy::Required, &offer, None).unwrap().unwrap();
    assert_eq!((a.attribute.tag, a.attribute.suite()), (3, SrtpSuite::AeadAes128Gcm));
    // without GCM: the 80-bit tag before the 32-bit one
    let a = answer(SrtpPolicy::Required, &sdp("RTP/SAVP", &[&s32, &line80(1)]), None).unwrap().unwrap();
    assert_eq!(a.attribute.suite(), SrtpSuite::AesCm128HmacSha1_80);
}

#[test]
fn hostile_crypto_lines_are_unusable_never_a_panic() {
    let huge = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", "A".repeat(4000));
    let long_key = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", "QUFB".repeat(20));
    let cases: Vec<String> = vec![
        String::new(),
        "1".into(),
        "1 AES_CM_128_HMAC_SHA1_80".into(),
        "x AES_CM_128_HMAC_SHA1_80 inline:abc".into(),
        "1234567890 AES_CM_128_HMAC_SHA1_80 inline:abc".into(),
        "1 AES_CM_128_HMAC_SHA1_80 uri:http://x".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!".into(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".into(),
        long_key,
        huge,
        // unknown suites
        format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY30}"),
        format!("1 F8_128_HMAC_SHA1_80 inline:{KEY30}"),
        // MKI, several keys, a short lifetime, lifetimes out of range
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^31|1:4"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30};inline:{KEY30}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^20"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^64"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|99999999999999999999999"),
        // session parameters that would weaken it
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} UNENCRYPTED_SRTP"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} UNAUTHENTICATED_SRTP"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} KDR=24"),
        "1 AES_CM_128_HMAC_SHA1_80 inline:\u{00e9}\u{00e9}\u{00e9}".into(),
    ];
    for c in &cases {
        let offer = sdp("RTP/SAVP", &[c]);
        assert_eq!(answer(SrtpPolicy::Required, &offer, None), Err(SdpFault::Crypto), "{:.60}", c);
        assert_eq!(answer(SrtpPolicy::Optional, &offer, None), Err(SdpFault::Crypto), "SAVP needs crypto: {:.60}", c);
        assert_eq!(answer(SrtpPolicy::Optional, &sdp("RTP/AVP", &[c]), None).unwrap(), None, "optional falls back to plain: {:.60}", c);
    }
    // one usable line among bad ones is taken
    let good = line80(9);
    let mixed: Vec<&str> = cases.iter().take(10).map(String::as_str).chain([good.as_str()]).collect();
    let a = answer(SrtpPolicy::Required, &sdp("RTP/SAVP", &mixed), None);
    assert_eq!(a.unwrap().unwrap().attribute.tag, 9);
    // a flood of lines: only the first MAX_CRYPTO_LINES are read
    let flood: Vec<String> = (0..1000).map(|i| format!("{i} F8_128_HMAC_SHA1_80 inline:{KEY30}")).collect();
    let flood_refs: Vec<&str> = flood.iter().map(String::as_str).collect();
    let s = sdp("RTP/SAVP", &flood_refs);
    assert_eq!(s.crypto.len(), crate::sdp_media::MAX_CRYPTO_LINES);
    assert_eq!(answer(SrtpPolicy::Required, &s, None), Err(SdpFault::Crypto));
}

#[test]
fn reasons_never_carry_the_key() {
    // the reason names a kind, never the attribute's text (which carries the key)
    let e = media::sdes::CryptoAttribute::parse(&format!("1 inline:{KEY30}")).unwrap_err();
    assert!(e.to_string().contains(KEY30), "the error's text carries the key: {e}");
    assert_eq!(reason(&e), "malformed");
    assert!(!reason(&e).contains(KEY30));
}

#[test]
fn offers_per_policy() {
    assert!(offer(SrtpPolicy::Off, None).is_none());
    let o = offer(SrtpPolicy::Optional, None).unwrap();
    assert_eq!(
        o.iter().map(|a| (a.tag, a.suite())).collect::<Vec<_>>(),
        vec![(1, SrtpSuite::AesCm128HmacSha1_80), (2, SrtpSuite::AeadAes128Gcm), (3, SrtpSuite::AesCm128HmacSha1_32)]
    );
    let again = offer(SrtpPolicy::Optional, None).unwrap();
    assert_ne!(o[0].key, again[0].key, "fresh keys per offer");
    assert_eq!(offer_lines(SrtpPolicy::Off, Some(&o)), (false, vec![]));
    let (secure, lines) = offer_lines(SrtpPolicy::Optional, Some(&o));
    assert!(!secure, "optional offers RTP/AVP");
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"), "{}", lines[0]);
    let (secure, _) = offer_lines(SrtpPolicy::Required, Some(&o));
    assert!(secure, "required offers RTP/SAVP");
    // a re-offer keeps our key for its suite, fresh ones for the others
    let kept = offer(SrtpPolicy::Required, Some(&o[1].key)).unwrap();
    assert_eq!(kept[1].key, o[1].key);
    assert_ne!(kept[0].key, o[0].key);
}

#[test]
fn accepts_answers_to_our_offer() {
    let o = offer(SrtpPolicy::Required, None).unwrap();
    let lines: Vec<String> = o.iter().map(|a| a.to_string()).collect();
    // the callee answers tag 2 (GCM) with a key of its own
    let callee = media::sdes::answer(lines.iter().map(String::as_str), &[SrtpSuite::AeadAes128Gcm]).unwrap();
    let answer_line = callee.attribute.to_string();
    let keys = accept(SrtpPolicy::Required, Some(&o), &sdp("RTP/SAVP", &[&answer_line])).unwrap().unwrap();
    assert_eq!(keys.outbound, o[1].key);
    assert_eq!(keys.inbound, callee.keys.outbound);
    // optional: a plain answer is plain; required: refused
    assert_eq!(accept(SrtpPolicy::Optional, Some(&o), &sdp("RTP/AVP", &[])).unwrap(), None);
    assert_eq!(accept(SrtpPolicy::Required, Some(&o), &sdp("RTP/AVP", &[])), Err(SdpFault::Crypto));
    assert_eq!(accept(SrtpPolicy::Optional, Some(&o), &sdp("RTP/SAVP", &[])), Err(SdpFault::Crypto));
    // an answer naming a tag we never offered, another suite under our tag, two lines
    let stray = format!("9 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}");
    assert_eq!(accept(SrtpPolicy::Optional, Some(&o), &sdp("RTP/AVP", &[&stray])), Err(SdpFault::Crypto));
    let swapped = format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}");
    assert_eq!(accept(SrtpPolicy::Required, Some(&o), &sdp("RTP/SAVP", &[&swapped])), Err(SdpFault::Crypto));
    assert_eq!(accept(SrtpPolicy::Required, Some(&o), &sdp("RTP/SAVP", &[&answer_line, &answer_line])), Err(SdpFault::Crypto));
    let mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^31|1:4");
    assert_eq!(accept(SrtpPolicy::Required, Some(&o), &sdp("RTP/SAVP", &[&mki])), Err(SdpFault::Crypto));
    // offered plain (off): crypto in an AVP answer is ignored, an SAVP answer refused
    assert_eq!(accept(SrtpPolicy::Off, None, &sdp("RTP/AVP", &[&stray])).unwrap(), None);
    assert_eq!(accept(SrtpPolicy::Off, None, &sdp("RTP/SAVP", &[&stray])), Err(SdpFault::Crypto));
}
