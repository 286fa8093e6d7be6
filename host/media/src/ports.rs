//! The RTP port allocator: even/odd pairs (RTP on the even port, RTCP on the next) from a
//! configured range, picked at random among the free pairs so a call's ports cannot be
//! guessed from the previous call's (an injector must search the range), and a pair just
//! freed is held back (quarantined) while a quarter of the range has been freed after it, so
//! late packets of an ended call do not reach the next one.

use std::collections::VecDeque;

use crate::error::{MediaError, Result};

/// Hands out and reclaims RTP/RTCP port pairs.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    min: u16,
    max: u16,
    /// Invariant: pair `i` is ports `first + 2i` and `first + 2i + 1`.
    first: u16,
    /// Whether each pair is handed out.
    used: Vec<bool>,
    /// Pairs that may be handed out.
    free: Vec<u16>,
    /// Pairs freed recently, oldest first; they return to `free` once more than
    /// `hold_back` pairs were freed after them (or when nothing else is left).
    quarantine: VecDeque<u16>,
    hold_back: usize,
    in_use: usize,
    rng: u64,
}

impl PortAllocator {
    /// A pool over `min..=max` (the default range is 10000–20000), seeded from the OS's
    /// random source.
    pub fn new(min: u16, max: u16) -> Result<Self> {
        let seed = getrandom::u64().map_err(|e| MediaError::Config(format!("no OS randomness for the RTP port allocator: {e}")))?;
        Self::with_seed(min, max, seed)
    }

    /// The same pool with a fixed seed (tests).
    pub fn with_seed(min: u16, max: u16, seed: u64) -> Result<Self> {
        let first = min.checked_add(min % 2).ok_or_else(|| MediaError::Config("RTP port range empty".into()))?;
        if max <= first {
            return Err(MediaError::Config(format!("RTP port range {min}-{max} holds no even/odd pair")));
        }
        let pairs = (max - first).div_ceil(2);
        if pairs == 0 {
            return Err(MediaError::Config(format!("RTP port range {min}-{max} holds no even/odd pair")));
        }
        let n = usize::from(pairs);
        Ok(PortAllocator {
            min,
            max,
            first,
            used: vec![false; n],
            free: (0..pairs).collect(),
            quarantine: VecDeque::new(),
            hold_back: n / 4,
            in_use: 0,
            rng: seed,
        })
    }

    /// splitmix64: a fast generator over the OS-seeded state.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random free pair's RTP (even) port; the longest-quarantined pair when every other
    /// is in use.
    pub fn allocate(&mut self) -> Result<u16> {
        let pair = if self.free.is_empty() {
            self.quarantine.pop_front()
        } else {
            // multiply-shift: an index below len without modulo bias worth counting
            let k = ((u128::from(self.next_random()) * self.free.len() as u128) >> 64) as usize;
            Some(self.free.swap_remove(k))
        };
        let pair = pair.ok_or(MediaError::PortsExhausted { min: self.min, max: self.max })?;
        self.used[usize::from(pair)] = true;
        self.in_use += 1;
        Ok(self.first + 2 * pair)
    }

    /// Returns a pair to the pool (by its RTP port), behind the quarantine; unknown ports and
    /// pairs not in use are ignored.
    pub fn release(&mut self, rtp_port: u16) {
        if rtp_port < self.first || !(rtp_port - self.first).is_multiple_of(2) {
            return;
        }
        let pair = (rtp_port - self.first) / 2;
        let Some(u) = self.used.get_mut(usize::from(pair)) else { return };
        if !*u {
            return;
        }
        *u = false;
        self.in_use -= 1;
        self.quarantine.push_back(pair);
        while self.quarantine.len() > self.hold_back {
            if let Some(p) = self.quarantine.pop_front() {
                self.free.push(p);
            }
        }
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Pairs in the range.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn pairs_are_even_in_range_and_reclaimed() {
        let mut p = PortAllocator::with_seed(10001, 10010, 7).unwrap();
        assert_eq!(p.capacity(), 4);
        let got: BTreeSet<u16> = (0..4).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(got, BTreeSet::from([10002, 10004, 10006, 10008]));
        assert!(matches!(p.allocate(), Err(MediaError::PortsExhausted { .. })));
        p.release(10004);
        p.release(10004);
        p.release(10005);
        p.release(9);
        p.release(60000);
        assert_eq!(p.in_use(), 3);
        // the only pair left, even though it was just freed
        assert_eq!(p.allocate().unwrap(), 10004);
        assert_eq!(p.in_use(), 4);
    }

    #[test]
    fn allocation_is_not_sequential_and_differs_by_seed() {
        let run = |seed| {
            let mut p = PortAllocator::with_seed(10000, 20000, seed).unwrap();
            (0..50).map(|_| p.allocate().unwrap()).collect::<Vec<u16>>()
        };
        let (a, b) = (run(1), run(2));
        assert_ne!(a, b, "another seed, another order");
        for ports in [&a, &b] {
            assert!(ports.iter().all(|&x| x % 2 == 0 && (10000..20000).contains(&x)));
            assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 50, "no pair twice");
            // consecutive allocations are not neighbours (the old allocator's +2 each time)
            let neighbours = ports.windows(2).filter(|w| w[1].abs_diff(w[0]) == 2).count();
            assert!(neighbours <= 2, "{neighbours} sequential steps in {ports:?}");
        }
        // spread over the range, not bunched at its start
        assert!(a.iter().any(|&x| x > 15000) && a.iter().any(|&x| x < 15000), "{a:?}");
        // the OS seed: two allocators started now differ
        let (mut x, mut y) = (PortAllocator::new(10000, 20000).unwrap(), PortAllocator::new(10000, 20000).unwrap());
        let xs: Vec<u16> = (0..8).map(|_| x.allocate().unwrap()).collect();
        let ys: Vec<u16> = (0..8).map(|_| y.allocate().unwrap()).collect();
        assert_ne!(xs, ys);
    }

    #[test]
    fn a_freed_pair_is_held_back_while_others_are_free() {
        // 40 pairs: a freed pair waits until 10 more have been freed after it
        let mut p = PortAllocator::with_seed(30000, 30079, 99).unwrap();
        assert_eq!(p.capacity(), 40);
        let mut held: Vec<u16> = (0..20).map(|_| p.allocate().unwrap()).collect();
        let victim = held.pop().unwrap();
        let pair = (victim - 30000) / 2;
        p.release(victim);
        for _ in 0..10 {
            let port = p.allocate().unwrap();
            assert_ne!(port, victim, "a just-freed pair handed out again");
            let old = held.remove(0);
            p.release(old);
            held.push(port);
        }
        // ten pairs were freed after it: it is back in the pool
        assert!(p.free.contains(&pair) && !p.quarantine.contains(&pair));
        assert_eq!(p.in_use(), 19);
    }

    #[test]
    fn bad_ranges() {
        assert!(PortAllocator::new(20000, 10000).is_err());
        assert!(PortAllocator::new(10000, 10000).is_err());
        assert!(PortAllocator::new(u16::MAX, u16::MAX).is_err());
        assert_eq!(PortAllocator::new(10000, 20000).unwrap().capacity(), 5000);
    }
}
