//! A deterministic mutator for the stable driver and the regression tests: no
//! coverage feedback, just seeds and stacked mutations (bit flips, byte sets,
//! truncations, insertions, deletions, splices, length-like big values).

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

const INTERESTING_U8: [u8; 9] = [0, 1, 2, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x40];
const INTERESTING_U32: [u32; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x0100_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// Picks a seed and applies 1 to 4 stacked mutations; the result is at most
/// `max_len` bytes.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut d = if seeds.is_empty() {
        Vec::new()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, seeds, &mut d);
    }
    d.truncate(max_len);
    d
}

fn mutate_once(rng: &mut Rng, seeds: &[Vec<u8>], d: &mut Vec<u8>) {
    // Keep the mode byte (first) more often than the rest: it picks the path.
    let pos = |rng: &mut Rng, len: usize| {
        if len > 1 {
            1 + rng.below(len - 1)
        } else {
            rng.below(len.max(1))
        }
    };
    match rng.below(11) {
        0 if !d.is_empty() => {
            let i = pos(rng, d.len());
            d[i] ^= 1 << rng.below(8);
        }
        1 if !d.is_empty() => {
            let i = pos(rng, d.len());
            d[i] = rng.byte();
        }
        2 if !d.is_empty() => {
            let i = pos(rng, d.len());
            d[i] = INTERESTING_U8[rng.below(INTERESTING_U8.len())];
        }
        3 => {
            let at = rng.below(d.len() + 1);
            d.truncate(at);
        }
        4 => {
            let at = rng.below(d.len() + 1);
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            d.splice(at..at, ins);
        }
        5 if !d.is_empty() => {
            let a = pos(rng, d.len()).min(d.len());
            let b = (a + 1 + rng.below(32)).min(d.len());
            d.drain(a..b);
        }
        6 if !seeds.is_empty() => {
            // Splice: our head, another seed's tail.
            let other = &seeds[rng.below(seeds.len())];
            let at = rng.below(d.len() + 1);
            let from = rng.below(other.len() + 1);
            d.truncate(at);
            d.extend_from_slice(&other[from..]);
        }
        7 | 8 if d.len() >= 4 => {
            // A big or boundary value where a length or count may be.
            let i = rng.below(d.len() - 3);
            let v = match rng.below(3) {
                0 => INTERESTING_U32[rng.below(INTERESTING_U32.len())],
                1 => d.len() as u32 + rng.below(3) as u32,
                _ => (u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]))
                    .wrapping_add(rng.below(5) as u32)
                    .wrapping_sub(2),
            };
            if rng.below(4) == 0 {
                d[i..i + 4].copy_from_slice(&v.to_le_bytes());
            } else {
                d[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        9 if !d.is_empty() => {
            // Duplicate a chunk in place.
            let a = rng.below(d.len());
            let b = (a + 1 + rng.below(64)).min(d.len());
            let chunk = d[a..b].to_vec();
            let at = rng.below(d.len() + 1);
            d.splice(at..at, chunk);
        }
        10 if d.len() >= 8 => {
            // A u64 boundary value (seqs, times, CBOR lengths).
            let i = rng.below(d.len() - 7);
            let v = [0u64, 1, u64::MAX, i64::MAX as u64, 1 << 32][rng.below(5)];
            d[i..i + 8].copy_from_slice(&v.to_be_bytes());
        }
        _ => {
            if d.is_empty() {
                d.push(rng.byte());
            } else {
                let i = rng.below(d.len());
                d[i] = d[i].wrapping_add(1);
            }
        }
    }
}
