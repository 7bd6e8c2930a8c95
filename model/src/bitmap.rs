//! The two-level free-slot bitmap of a descriptor table.
//!
//! OpenBSD keeps `fd_lomap` (one bit per descriptor) and `fd_himap` (one bit
//! per *full* `lomap` word), so that finding a free slot skips 64 full words
//! with one test of a `himap` word. Linux's `full_fds_bits` is the same idea.
//! With 2^20 descriptors open a search from the bottom reads at most 256
//! `himap` words and one `lomap` word, where a flat scan reads 2^20 slots.

const BITS: usize = 64;

/// A set of used descriptor numbers. Bit `i` of `lo` is set when slot `i` is
/// used (larval or installed); bit `j` of `hi` is set when `lo[j]` is full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitmap {
    lo: Vec<u64>,
    hi: Vec<u64>,
}

impl Bitmap {
    /// An empty bitmap with room for at least `slots` numbers.
    pub fn with_capacity(slots: usize) -> Bitmap {
        let mut b = Bitmap::default();
        b.grow(slots);
        b
    }

    /// The numbers it has room for (a multiple of 64).
    pub fn capacity(&self) -> usize {
        self.lo.len() * BITS
    }

    /// Make room for at least `slots` numbers; the new ones are free.
    pub fn grow(&mut self, slots: usize) {
        let words = slots.div_ceil(BITS);
        if words > self.lo.len() {
            self.lo.resize(words, 0);
            self.hi.resize(words.div_ceil(BITS), 0);
        }
    }

    pub fn is_set(&self, i: usize) -> bool {
        self.lo
            .get(i / BITS)
            .is_some_and(|w| w & (1 << (i % BITS)) != 0)
    }

    /// Mark `i` used (OpenBSD `fd_used`).
    ///
    /// Precondition: `i < self.capacity()`.
    pub fn set(&mut self, i: usize) {
        let w = i / BITS;
        self.lo[w] |= 1 << (i % BITS);
        if self.lo[w] == u64::MAX {
            self.hi[w / BITS] |= 1 << (w % BITS);
        }
    }

    /// Mark `i` free (OpenBSD `fd_unused`).
    ///
    /// Precondition: `i < self.capacity()`.
    pub fn clear(&mut self, i: usize) {
        let w = i / BITS;
        self.lo[w] &= !(1 << (i % BITS));
        self.hi[w / BITS] &= !(1 << (w % BITS));
    }

    /// The lowest free number `>= from`, or `capacity()` when every number
    /// from `from` up is used (the caller then grows the table).
    pub fn first_free_from(&self, from: usize) -> usize {
        let cap = self.capacity();
        if from >= cap {
            return from;
        }
        // Fast path: a free bit in `from`'s own word, at or above `from`.
        let w = from / BITS;
        let free = !self.lo[w] & (u64::MAX << (from % BITS));
        if free != 0 {
            return w * BITS + free.trailing_zeros() as usize;
        }
        // Slow path: the first word above `w` that is not full, found in `hi`.
        let start = w + 1;
        let mut hw = start / BITS;
        let mut mask = if start.is_multiple_of(BITS) {
            u64::MAX
        } else {
            u64::MAX << (start % BITS)
        };
        while hw < self.hi.len() {
            let not_full = !self.hi[hw] & mask;
            if not_full != 0 {
                let word = hw * BITS + not_full.trailing_zeros() as usize;
                if word >= self.lo.len() {
                    return cap;
                }
                return word * BITS + (!self.lo[word]).trailing_zeros() as usize;
            }
            hw += 1;
            mask = u64::MAX;
        }
        cap
    }

    /// The highest used number, if any.
    pub fn last_set(&self) -> Option<usize> {
        self.lo
            .iter()
            .rposition(|&w| w != 0)
            .map(|w| w * BITS + (BITS - 1 - self.lo[w].leading_zeros() as usize))
    }

    /// Checks that every `hi` bit says exactly whether its `lo` word is full.
    pub fn summary_agrees(&self) -> Result<(), String> {
        for (w, &word) in self.lo.iter().enumerate() {
            let marked = self.hi[w / BITS] & (1 << (w % BITS)) != 0;
            if marked != (word == u64::MAX) {
                return Err(format!(
                    "himap bit {w} is {marked} but lomap word {w} is {word:#018x}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lowest_free_across_full_words() {
        let mut b = Bitmap::with_capacity(64 * 200);
        for i in 0..64 * 130 + 5 {
            b.set(i);
        }
        assert_eq!(b.first_free_from(0), 64 * 130 + 5);
        assert_eq!(b.first_free_from(64 * 140), 64 * 140);
        b.clear(77);
        assert_eq!(b.first_free_from(0), 77);
        assert_eq!(b.first_free_from(78), 64 * 130 + 5);
        b.summary_agrees().unwrap();
    }

    #[test]
    fn full_bitmap_reports_capacity() {
        let mut b = Bitmap::with_capacity(128);
        for i in 0..128 {
            b.set(i);
        }
        assert_eq!(b.first_free_from(3), 128);
        assert_eq!(b.last_set(), Some(127));
        b.summary_agrees().unwrap();
    }

    #[test]
    fn agrees_with_a_flat_scan() {
        // A deterministic pseudo-random pattern checked against the obvious scan.
        let mut b = Bitmap::with_capacity(64 * 70);
        let mut used = vec![false; 64 * 70];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % used.len() as u64) as usize;
            if x & (1 << 40) != 0 || !i.is_multiple_of(3) {
                b.set(i);
                used[i] = true;
            } else {
                b.clear(i);
                used[i] = false;
            }
            let from = ((x >> 20) % used.len() as u64) as usize;
            let want = (from..used.len()).find(|&j| !used[j]).unwrap_or(used.len());
            assert_eq!(b.first_free_from(from), want);
        }
        b.summary_agrees().unwrap();
    }
}
