//! The RTP port allocator: even/odd pairs (RTP on the even port, RTCP on the next) from a
//! configured range, handed out round-robin so a port just freed is not reused at once
//! (late packets of the old call then do not reach the new one).

use crate::error::{MediaError, Result};

/// Hands out and reclaims RTP/RTCP port pairs.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    min: u16,
    max: u16,
    /// Invariant: `used[i]` covers ports `first + 2i` and `first + 2i + 1`.
    first: u16,
    used: Vec<bool>,
    next: usize,
    in_use: usize,
}

impl PortAllocator {
    /// A pool over `min..=max` (the default range is 10000–20000).
    pub fn new(min: u16, max: u16) -> Result<Self> {
        let first = min.checked_add(min % 2).ok_or_else(|| MediaError::Config("RTP port range empty".into()))?;
        if max <= first {
            return Err(MediaError::Config(format!("RTP port range {min}-{max} holds no even/odd pair")));
        }
        let pairs = usize::from((max - first).div_ceil(2));
        if pairs == 0 {
            return Err(MediaError::Config(format!("RTP port range {min}-{max} holds no even/odd pair")));
        }
        Ok(PortAllocator { min, max, first, used: vec![false; pairs], next: 0, in_use: 0 })
    }

    /// The next free pair's RTP (even) port.
    pub fn allocate(&mut self) -> Result<u16> {
        let n = self.used.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.next = (i + 1) % n;
                self.in_use += 1;
                return Ok(self.first + 2 * i as u16);
            }
        }
        Err(MediaError::PortsExhausted { min: self.min, max: self.max })
    }

    /// Returns a pair to the pool (by its RTP port); unknown ports are ignored.
    pub fn release(&mut self, rtp_port: u16) {
        if rtp_port < self.first || !(rtp_port - self.first).is_multiple_of(2) {
            return;
        }
        let i = usize::from((rtp_port - self.first) / 2);
        if let Some(u) = self.used.get_mut(i)
            && *u {
                *u = false;
                self.in_use -= 1;
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

    #[test]
    fn pairs_are_even_round_robin_and_reclaimed() {
        let mut p = PortAllocator::new(10001, 10010).unwrap();
        assert_eq!(p.capacity(), 4);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!((a, b), (10002, 10004));
        p.release(a);
        // not reused at once
        assert_eq!(p.allocate().unwrap(), 10006);
        assert_eq!(p.allocate().unwrap(), 10008);
        assert_eq!(p.allocate().unwrap(), 10002);
        assert!(matches!(p.allocate(), Err(MediaError::PortsExhausted { .. })));
        p.release(10004);
        p.release(10004);
        p.release(10005);
        p.release(9);
        assert_eq!(p.in_use(), 3);
        assert_eq!(p.allocate().unwrap(), 10004);
    }

    #[test]
    fn bad_ranges() {
        assert!(PortAllocator::new(20000, 10000).is_err());
        assert!(PortAllocator::new(10000, 10000).is_err());
        assert!(PortAllocator::new(u16::MAX, u16::MAX).is_err());
        assert_eq!(PortAllocator::new(10000, 20000).unwrap().capacity(), 5000);
    }
}
