//! Unpredictable identifiers (tags, branches, Call-IDs, cnonces) without reading the OS:
//! the driver seeds the generator once with random bytes.

use sha2::{Digest, Sha256};

use crate::msg::MAGIC_COOKIE;

/// Generates identifiers from a secret seed and a counter (SHA-256 of both), so they cannot
/// be guessed by a peer that has seen earlier ones. Seed it once from the OS's random source
/// (`getrandom`) in the driver; tests seed it with a constant.
#[derive(Clone)]
pub struct IdGenerator {
    /// Invariant: secret; never logged or sent.
    key: [u8; 32],
    counter: u64,
}

impl std::fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdGenerator").field("counter", &self.counter).finish_non_exhaustive()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl IdGenerator {
    /// A generator keyed by `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        IdGenerator { key: seed, counter: 0 }
    }

    /// 16 fresh unpredictable bytes.
    pub fn bytes16(&mut self) -> [u8; 16] {
        self.counter = self.counter.wrapping_add(1);
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(self.counter.to_le_bytes());
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    /// `n` hex characters (at most 32).
    pub fn hex(&mut self, n: usize) -> String {
        let b = self.bytes16();
        let mut s = String::with_capacity(32);
        for x in b {
            s.push(HEX[(x >> 4) as usize] as char);
            s.push(HEX[(x & 15) as usize] as char);
        }
        s.truncate(n.min(32));
        s
    }

    /// A From/To tag.
    pub fn tag(&mut self) -> String {
        self.hex(16)
    }

    /// A Via branch, starting with the magic cookie.
    pub fn branch(&mut self) -> String {
        let mut s = String::with_capacity(MAGIC_COOKIE.len() + 24);
        s.push_str(MAGIC_COOKIE);
        s.push_str(&self.hex(24));
        s
    }

    /// A Call-ID (without a host part).
    pub fn call_id(&mut self) -> String {
        self.hex(32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_have_shape() {
        let mut g = IdGenerator::new([7; 32]);
        let a = g.branch();
        let b = g.branch();
        assert_ne!(a, b);
        assert!(a.starts_with("z9hG4bK") && a.len() == 31);
        assert_eq!(g.tag().len(), 16);
        let mut g2 = IdGenerator::new([8; 32]);
        assert_ne!(g2.call_id(), IdGenerator::new([7; 32]).call_id());
    }
}
