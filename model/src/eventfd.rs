//! eventfd: a 64-bit counter behind a descriptor (`eventfd(2)`).

use crate::errno::Errno;

#[derive(Debug, Clone, Default)]
pub struct Eventfd {
    pub count: u64,
}

impl Eventfd {
    /// `eventfd_read` without blocking: the counter's 8 bytes, then zero.
    ///
    /// Errors: `EINVAL` for a buffer under 8 bytes; `EAGAIN` while zero.
    pub fn read(&mut self, n: usize) -> Result<Vec<u8>, Errno> {
        if n < 8 {
            return Err(Errno::EINVAL);
        }
        if self.count == 0 {
            return Err(Errno::EAGAIN);
        }
        let out = self.count.to_le_bytes().to_vec();
        self.count = 0;
        Ok(out)
    }

    /// `eventfd_write` without blocking: adds the 8-byte value.
    ///
    /// Errors: `EINVAL` unless exactly 8 bytes, or for the value
    /// `0xffff_ffff_ffff_ffff`; `EAGAIN` when the sum would reach it.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, Errno> {
        let bytes: [u8; 8] = data.try_into().map_err(|_| Errno::EINVAL)?;
        let v = u64::from_le_bytes(bytes);
        if v == u64::MAX {
            return Err(Errno::EINVAL);
        }
        if u64::MAX - self.count <= v {
            return Err(Errno::EAGAIN);
        }
        self.count += v;
        Ok(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_semantics() {
        let mut e = Eventfd::default();
        assert_eq!(e.read(8), Err(Errno::EAGAIN));
        assert_eq!(e.write(b"abc"), Err(Errno::EINVAL));
        assert_eq!(e.write(b"aaaaaaaa"), Ok(8));
        assert_eq!(e.read(4), Err(Errno::EINVAL));
        assert_eq!(e.read(8).unwrap(), b"aaaaaaaa");
        assert_eq!(e.write(&[0xff; 8]), Err(Errno::EINVAL));
        let mut almost = [0xff; 8];
        almost[0] = 0xfe;
        assert_eq!(e.write(&almost), Ok(8));
        assert_eq!(e.write(&1u64.to_le_bytes()), Err(Errno::EAGAIN));
    }
}
