//! SRTP tests: the RFC 3711 appendix B and RFC 7714 vectors, libsrtp's reference packets
//! (srtp_driver's `srtp_validate` and `srtp_validate_gcm`), round trips, and the attacks.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn key(suite: SrtpSuite, key: &str, salt: &str) -> SrtpKey {
    let mut m = hex(key);
    m.extend(hex(salt));
    SrtpKey::new(suite, &m).unwrap()
}

/// A context whose session keys are given directly (the RFC 7714 vectors start there).
fn with_session_keys(suite: SrtpSuite, enc: &[u8], salt: &[u8]) -> SrtpContext {
    let mut c = SrtpContext::new(&SrtpKey::new(suite, &vec![0u8; suite.key_len() + suite.salt_len()]).unwrap());
    let keys = || match suite {
        SrtpSuite::AeadAes128Gcm => SessionKeys::Gcm { aead: Aes128Gcm::new(enc.into()), salt: salt.try_into().unwrap() },
        _ => SessionKeys::Cm {
            aes: <Aes128 as KeyInit>::new(enc.into()),
            salt: salt.try_into().unwrap(),
            mac: <HmacSha1 as Mac>::new_from_slice(&[0u8; 20]).unwrap(),
        },
    };
    c.rtp = keys();
    c.rtcp = keys();
    c
}

/// An RTP packet with a payload of `payload_len` bytes of `fill`.
fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, 0x00];
    b.extend(seq.to_be_bytes());
    b.extend(0x1234_5678u32.to_be_bytes());
    b.extend(ssrc.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

fn protect(c: &mut SrtpContext, plain: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + MAX_OVERHEAD, 0);
    let n = c.protect_rtp(&mut buf, plain.len())?;
    buf.truncate(n);
    Ok(buf)
}

fn unprotect(c: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = packet.to_vec();
    let n = c.unprotect_rtp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn protect_rtcp(c: &mut SrtpContext, plain: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + MAX_OVERHEAD, 0);
    let n = c.protect_rtcp(&mut buf, plain.len())?;
    buf.truncate(n);
    Ok(buf)
}

fn unprotect_rtcp(c: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = packet.to_vec();
    let n = c.unprotect_rtcp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    // session key and salt given; SSRC 0, index 0: the keystream is AES of
    // salt * 2^16 + counter
    let aes = <Aes128 as KeyInit>::new(hex("2B7E151628AED2A6ABF7158809CF4F3C").as_slice().into());
    let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
    assert_eq!(cm_iv(&salt, 0, 0).to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut stream = vec![0u8; 0xff02 * 16];
    cm_apply(&aes, &salt, 0, 0, &mut stream);
    let block = |i: usize| stream[i * 16..i * 16 + 16].to_vec();
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

#[test]
fn rfc3711_b3_key_derivation() {
    let k = key(SrtpSuite::AesCm128HmacSha1_80, "E1F97A0D3E018BE0D64FA32C06DE4139", "0EC675AD498AFEEBB6960B3AABE6");
    let mut enc = [0u8; 16];
    derive(&k, 0, &mut enc);
    assert_eq!(enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0u8; 14];
    derive(&k, 2, &mut salt);
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // the appendix prints 94 octets of the authentication key's keystream (six blocks:
    // the counter runs across block boundaries); HMAC-SHA1 uses the first 20
    let mut auth = [0u8; 94];
    derive(&k, 1, &mut auth);
    assert_eq!(
        auth.to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE E049646C43D9327AD175578EF7227098
             6371C10C9A369AC2F94A8C5FBCDDDC25 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2")
    );
}

const LIBSRTP_KEY: &str = "e1f97a0d3e018be0d64fa32c06de4139";
const LIBSRTP_SALT: &str = "0ec675ad498afeebb6960b3aabe6";
const LIBSRTP_RTP: &str = "800f1234decafbadcafebabe abababababababababababababababab";
const LIBSRTP_RTCP: &str = "81c8000bcafebabe abababababababababababababababab";

#[test]
fn libsrtp_reference_packets_aes_cm_80() {
    let k = key(SrtpSuite::AesCm128HmacSha1_80, LIBSRTP_KEY, LIBSRTP_SALT);
    let mut tx = SrtpContext::new(&k);
    let srtp = protect(&mut tx, &hex(LIBSRTP_RTP)).unwrap();
    assert_eq!(srtp, hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb"));
    let srtcp = protect_rtcp(&mut tx, &hex(LIBSRTP_RTCP)).unwrap();
    // SRTCP index 1 with the E flag, then the 80-bit tag
    assert_eq!(srtcp, hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798"));

    let mut rx = SrtpContext::new(&k);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), hex(LIBSRTP_RTP));
    assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), hex(LIBSRTP_RTCP));
}

#[test]
fn libsrtp_reference_packets_aes_gcm_with_key_derivation() {
    // the 12-byte salt padded to 14 for the KDF, as libsrtp does: this checks derivation too
    let k = key(SrtpSuite::AeadAes128Gcm, "000102030405060708090a0b0c0d0e0f", "a0a1a2a3a4a5a6a7a8a9aaab");
    let mut tx = SrtpContext::new(&k);
    let srtp = protect(&mut tx, &hex(LIBSRTP_RTP)).unwrap();
    assert_eq!(srtp, hex("800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06e d2976826f796b201df3131a127e8a392"));
    let srtcp = protect_rtcp(&mut tx, &hex(LIBSRTP_RTCP)).unwrap();
    assert_eq!(srtcp, hex("81c8000bcafebabe c98b8b5df0392a55852b6c21ac8e7025 c52c6fbea2b3b446ea31123ba88ce61e 80000001"));

    let mut rx = SrtpContext::new(&k);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), hex(LIBSRTP_RTP));
    assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), hex(LIBSRTP_RTCP));
}

const RFC7714_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const RFC7714_SALT: &str = "517569642070726f2071756f";
const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120 696e2070 61727465 73207472 6573";
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";

#[test]
fn rfc7714_16_1_srtp_aead_aes_128_gcm() {
    let (k, s) = (hex(RFC7714_KEY), hex(RFC7714_SALT));
    assert_eq!(gcm_rtp_iv(&s.clone().try_into().unwrap(), 0x5501_a0b2, 0xf17b).to_vec(), hex("51753c6580c2726f20718414"));
    let mut tx = with_session_keys(SrtpSuite::AeadAes128Gcm, &k, &s);
    let srtp = protect(&mut tx, &hex(RFC7714_RTP)).unwrap();
    let expected = hex("8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833
         899d7f27 beb16a91 52cf765e e4390cce");
    assert_eq!(srtp, expected);
    let mut rx = with_session_keys(SrtpSuite::AeadAes128Gcm, &k, &s);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), hex(RFC7714_RTP));
}

#[test]
fn rfc7714_17_1_srtcp_aead_aes_128_gcm() {
    let (k, s) = (hex(RFC7714_KEY), hex(RFC7714_SALT));
    assert_eq!(gcm_rtcp_iv(&s.clone().try_into().unwrap(), 0x4d61_7273, 0x5d4).to_vec(), hex("517524055203726f207170bb"));
    let mut tx = with_session_keys(SrtpSuite::AeadAes128Gcm, &k, &s);
    // the vector's SRTCP index is 0x5d4: as if 0x5d3 had been sent
    tx.rtcp_streams.entry(0x4d61_7273, ReplayWindow::default()).update(0x5d3);
    let srtcp = protect_rtcp(&mut tx, &hex(RFC7714_RTCP)).unwrap();
    let expected = hex("81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b
         c84aa458 96cf4d2f c5abf872 45d9eade 800005d4");
    assert_eq!(srtcp, expected);
    let mut rx = with_session_keys(SrtpSuite::AeadAes128Gcm, &k, &s);
    assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), hex(RFC7714_RTCP));
}

#[test]
fn rfc7714_17_3_srtcp_authenticated_only() {
    // E flag clear: the packet travels in clear, the tag covers it and the index
    let (k, s) = (hex(RFC7714_KEY), hex(RFC7714_SALT));
    let mut packet = hex(RFC7714_RTCP);
    packet.extend(hex("841dd968 3dd78ec9 2ae58790 125f62b3 000005d4"));
    let mut rx = with_session_keys(SrtpSuite::AeadAes128Gcm, &k, &s);
    assert_eq!(unprotect_rtcp(&mut rx, &packet).unwrap(), hex(RFC7714_RTCP));
    // the same packet with the E flag set is not authentic
    let mut flagged = packet.clone();
    let n = flagged.len();
    flagged[n - 4] |= 0x80;
    let mut rx = with_session_keys(SrtpSuite::AeadAes128Gcm, &k, &s);
    assert_eq!(unprotect_rtcp(&mut rx, &flagged), Err(SrtpError::AuthenticationFailed));
}

#[test]
fn suites_round_trip_with_their_tag_lengths() {
    for suite in SrtpSuite::ALL {
        let k = SrtpKey::generate(suite).unwrap();
        assert_eq!(SrtpSuite::from_name(suite.name()), Some(suite));
        let (mut tx, mut rx) = (SrtpContext::new(&k), SrtpContext::new(&k));
        for seq in 0..50u16 {
            let plain = rtp(seq, 0x1111, &[seq as u8; 160]);
            let srtp = protect(&mut tx, &plain).unwrap();
            assert_eq!(srtp.len(), plain.len() + suite.rtp_tag_len(), "{suite}");
            assert_ne!(srtp[12..172], plain[12..], "{suite}: the payload is encrypted");
            assert_eq!(srtp[..12], plain[..12], "{suite}: the header is not");
            assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain, "{suite}");
        }
        let rtcp = hex(LIBSRTP_RTCP);
        let srtcp = protect_rtcp(&mut tx, &rtcp).unwrap();
        // AES_CM_128_HMAC_SHA1_32 keeps the 80-bit tag on SRTCP (RFC 4568 §6.2.2)
        assert_eq!(srtcp.len(), rtcp.len() + suite.rtcp_overhead(), "{suite}");
        assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), rtcp, "{suite}");
        // a different key is refused
        let mut stranger = SrtpContext::new(&SrtpKey::generate(suite).unwrap());
        let srtp = protect(&mut tx, &rtp(50, 0x1111, &[1; 160])).unwrap();
        assert_eq!(unprotect(&mut stranger, &srtp), Err(SrtpError::AuthenticationFailed), "{suite}");
    }
    assert_eq!(SrtpSuite::AesCm128HmacSha1_32.rtp_tag_len(), 4);
    assert_eq!(SrtpSuite::AesCm128HmacSha1_32.rtcp_overhead(), 14);
    assert_eq!(SrtpSuite::from_name("F8_128_HMAC_SHA1_80"), None);
}

#[test]
fn csrcs_extension_and_padding_are_handled() {
    // CC=1, X=1 (one word), P=1: header and extension in clear, payload and padding encrypted
    let mut plain = vec![0xb1, 0x00, 0, 7, 0, 0, 0, 160, 0, 0, 0, 9, 0xaa, 0xbb, 0xcc, 0xdd, 0xbe, 0xde, 0, 1, 1, 2, 3, 4];
    plain.extend([9, 9, 9, 0, 0, 3]);
    for suite in SrtpSuite::ALL {
        let k = SrtpKey::generate(suite).unwrap();
        let (mut tx, mut rx) = (SrtpContext::new(&k), SrtpContext::new(&k));
        let srtp = protect(&mut tx, &plain).unwrap();
        assert_eq!(srtp[..24], plain[..24]);
        assert_ne!(srtp[24..30], plain[24..]);
        assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain);
    }
}

#[test]
fn tampering_anywhere_fails_authentication_and_changes_nothing() {
    for suite in SrtpSuite::ALL {
        let k = SrtpKey::generate(suite).unwrap();
        let (mut tx, mut rx) = (SrtpContext::new(&k), SrtpContext::new(&k));
        let srtp = protect(&mut tx, &rtp(100, 0x2222, &[0x55; 160])).unwrap();
        for at in [1, 3, 11, 12, 100, srtp.len() - 1] {
            let mut bad = srtp.clone();
            bad[at] ^= 0x01;
            assert_eq!(unprotect(&mut rx, &bad), Err(SrtpError::AuthenticationFailed), "{suite}: byte {at}");
        }
        // a forged packet did not enter the replay list: the genuine one still passes
        assert!(rx.roc(0x2222).is_none(), "{suite}: no stream state from forgeries");
        assert!(unprotect(&mut rx, &srtp).is_ok());
        // truncated or plain packets
        assert!(matches!(unprotect(&mut rx, &srtp[..8]), Err(SrtpError::Malformed(_))));
        assert!(unprotect(&mut rx, &rtp(101, 0x2222, &[0x55; 160])).is_err(), "{suite}: plain RTP is refused");

        let srtcp = protect_rtcp(&mut tx, &hex(LIBSRTP_RTCP)).unwrap();
        for at in [1, 7, 8, srtcp.len() - 12, srtcp.len() - 1] {
            let mut bad = srtcp.clone();
            bad[at] ^= 0x80;
            assert_eq!(unprotect_rtcp(&mut rx, &bad), Err(SrtpError::AuthenticationFailed), "{suite}: SRTCP byte {at}");
        }
        assert!(unprotect_rtcp(&mut rx, &srtcp).is_ok());
        assert!(matches!(unprotect_rtcp(&mut rx, &srtcp[..20]), Err(SrtpError::Malformed(_))));
    }
}

#[test]
fn replays_are_refused_and_reordering_within_the_window_is_not() {
    for suite in SrtpSuite::ALL {
        let k = SrtpKey::generate(suite).unwrap();
        let (mut tx, mut rx) = (SrtpContext::new(&k), SrtpContext::new(&k));
        let packets: Vec<Vec<u8>> = (0..300u16).map(|s| protect(&mut tx, &rtp(1000 + s, 7, &[s as u8; 20])).unwrap()).collect();
        // 0..200 in order, except 150 held back
        for (i, p) in packets.iter().enumerate().take(200) {
            if i != 150 {
                unprotect(&mut rx, p).unwrap();
            }
        }
        assert_eq!(unprotect(&mut rx, &packets[199]), Err(SrtpError::Replay), "{suite}: the newest again");
        assert_eq!(unprotect(&mut rx, &packets[120]), Err(SrtpError::Replay), "{suite}: an older one again");
        // late but inside the 128-packet window: accepted once
        assert_eq!(unprotect(&mut rx, &packets[150]).unwrap()[12], 150);
        assert_eq!(unprotect(&mut rx, &packets[150]), Err(SrtpError::Replay));
        // skip ahead: 200..=298 missing; 299 arrives, then 171 (128 behind) is too old and
        // 172 (127 behind) is within the window but was seen
        unprotect(&mut rx, &packets[299]).unwrap();
        assert_eq!(unprotect(&mut rx, &packets[171]), Err(SrtpError::Replay));
        assert_eq!(unprotect(&mut rx, &packets[172]), Err(SrtpError::Replay));
        // a missing one inside the window
        assert!(unprotect(&mut rx, &packets[250]).is_ok());
        // the sender refuses to reuse an index too
        let again = rtp(1000 + 299, 7, &[0; 20]);
        assert_eq!(protect(&mut tx, &again), Err(SrtpError::Replay), "{suite}: keystream reuse refused");

        // SRTCP: its index has its own window
        let c: Vec<Vec<u8>> = (0..3).map(|_| protect_rtcp(&mut tx, &hex(LIBSRTP_RTCP)).unwrap()).collect();
        unprotect_rtcp(&mut rx, &c[0]).unwrap();
        unprotect_rtcp(&mut rx, &c[2]).unwrap();
        assert_eq!(unprotect_rtcp(&mut rx, &c[2]), Err(SrtpError::Replay));
        unprotect_rtcp(&mut rx, &c[1]).unwrap();
        assert_eq!(unprotect_rtcp(&mut rx, &c[0]), Err(SrtpError::Replay));
    }
}

#[test]
fn rollover_across_sequence_65535() {
    for suite in SrtpSuite::ALL {
        let k = SrtpKey::generate(suite).unwrap();
        let (mut tx, mut rx) = (SrtpContext::new(&k), SrtpContext::new(&k));
        let mut sent = Vec::new();
        for i in 0..40u32 {
            let seq = (65520 + i) as u16;
            sent.push((seq, protect(&mut tx, &rtp(seq, 9, &[i as u8; 32])).unwrap()));
        }
        assert_eq!(tx.roc(9), Some(1));
        // deliver out of order around the wrap: the packets after 0 first, then late ones
        // from before it (ROC - 1)
        let order: Vec<usize> = (0..10).chain(20..40).chain(10..20).collect();
        for i in order {
            let (seq, p) = &sent[i];
            let plain = unprotect(&mut rx, p).unwrap_or_else(|e| panic!("{suite}: seq {seq}: {e}"));
            assert_eq!(plain[12], i as u8);
        }
        assert_eq!(rx.roc(9), Some(1));
        // the keystream differs across the wrap: the same sequence number in ROC 0 and ROC 1
        // gives different ciphertext for the same payload
        let mut a = SrtpContext::new(&k);
        let first = protect(&mut a, &rtp(5, 77, &[0; 32])).unwrap();
        for s in (6..=65535u32).step_by(1000).map(|s| s as u16).chain([65535, 0, 1, 2, 3, 4]) {
            let _ = protect(&mut a, &rtp(s, 77, &[0; 32]));
        }
        let second = protect(&mut a, &rtp(5, 77, &[0; 32])).unwrap();
        assert_eq!(a.roc(77), Some(1));
        assert_ne!(first[12..44], second[12..44], "{suite}");
    }
}

#[test]
fn index_estimation_follows_rfc3711_appendix_a() {
    let top = |roc: u64, s_l: u16| (roc << 16) | u64::from(s_l);
    assert_eq!(estimate_index(top(0, 100), 101), Some(101));
    assert_eq!(estimate_index(top(0, 65500), 10), Some(top(1, 10)));
    assert_eq!(estimate_index(top(1, 10), 65500), Some(top(0, 65500)));
    assert_eq!(estimate_index(top(0, 10), 65500), None, "before index 0");
    assert_eq!(estimate_index(top(3, 40000), 39000), Some(top(3, 39000)));
    assert_eq!(estimate_index(top(u64::from(u32::MAX), 65500), 3), None, "the ROC would overflow");
}

#[test]
fn streams_are_kept_per_ssrc_and_bounded() {
    let k = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
    let (mut tx, mut rx) = (SrtpContext::new(&k), SrtpContext::new(&k));
    // two SSRCs interleaved, each with its own numbering
    for i in 0..20u16 {
        for (ssrc, base) in [(1u32, 60000u16), (2, 5)] {
            let p = protect(&mut tx, &rtp(base.wrapping_add(i * 400), ssrc, &[0; 10])).unwrap();
            unprotect(&mut rx, &p).unwrap();
        }
    }
    assert_eq!(rx.roc(1), Some(1));
    assert_eq!(rx.roc(2), Some(0));
    // more SSRCs than slots: the least recently used is forgotten, the storage never grows
    for ssrc in 10..10 + 2 * MAX_STREAMS as u32 {
        let p = protect(&mut tx, &rtp(1, ssrc, &[0; 10])).unwrap();
        unprotect(&mut rx, &p).unwrap();
    }
    assert_eq!(rx.rtp_streams.slots.len(), MAX_STREAMS);
    assert_eq!(rx.rtp_streams.slots.capacity(), MAX_STREAMS);
    assert!(rx.roc(1).is_none() && rx.roc(10 + 2 * MAX_STREAMS as u32 - 1).is_some());
}

#[test]
fn buffers_lengths_and_lifetimes() {
    let k = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
    let mut tx = SrtpContext::new(&k);
    let plain = rtp(1, 1, &[0; 10]);
    let mut tight = plain.clone();
    assert_eq!(tx.protect_rtp(&mut tight, plain.len()), Err(SrtpError::NoRoom(10)));
    assert_eq!(tight, plain, "untouched when refused");
    assert!(matches!(tx.protect_rtp(&mut tight, 40), Err(SrtpError::Malformed(_))));
    let mut short_rtcp = vec![0x80, 200, 0, 0, 0, 0, 0, 0];
    short_rtcp.resize(16, 0);
    assert_eq!(tx.protect_rtcp(&mut short_rtcp, 8), Err(SrtpError::NoRoom(14)));

    assert!(matches!(SrtpKey::new(SrtpSuite::AeadAes128Gcm, &[0; 30]), Err(SrtpError::KeyLength { want: 28, got: 30, .. })));
    let g = SrtpKey::new(SrtpSuite::AeadAes128Gcm, &(0..28).collect::<Vec<u8>>()).unwrap();
    assert_eq!(g.master_key(), &(0..16).collect::<Vec<u8>>()[..]);
    assert_eq!(g.master_salt(), &(16..28).collect::<Vec<u8>>()[..]);
    assert!(!format!("{g:?}").contains('['), "Debug prints no key bytes: {g:?}");

    // a lifetime of 3 packets: the fourth is refused, in each direction
    let short = k.clone().with_lifetime(Some(3));
    let (mut tx, mut rx) = (SrtpContext::new(&short), SrtpContext::new(&short));
    let mut packets = Vec::new();
    for s in 0..3 {
        packets.push(protect(&mut tx, &rtp(s, 1, &[0; 10])).unwrap());
    }
    assert_eq!(protect(&mut tx, &rtp(3, 1, &[0; 10])), Err(SrtpError::KeyExpired));
    for p in &packets {
        unprotect(&mut rx, p).unwrap();
    }
    let mut more = SrtpContext::new(&k);
    let p = (0..4).map(|s| protect(&mut more, &rtp(s, 1, &[0; 10])).unwrap()).last().unwrap();
    assert_eq!(unprotect(&mut rx, &p), Err(SrtpError::KeyExpired));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for suite in SrtpSuite::ALL {
        let mut c = SrtpContext::new(&SrtpKey::generate(suite).unwrap());
        for _ in 0..2000 {
            let len = (next() % 80) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 0 && next() % 2 == 0 {
                b[0] = 0x80 | (b[0] & 0x3f);
            }
            assert!(c.unprotect_rtp(&mut b.clone()).is_err());
            assert!(c.unprotect_rtcp(&mut b.clone()).is_err());
            let n = b.len();
            b.resize(n + MAX_OVERHEAD, 0);
            let _ = c.protect_rtp(&mut b.clone(), n);
            let _ = c.protect_rtcp(&mut b, n);
        }
    }
}
