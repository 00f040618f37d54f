//! The bytes that a JSON string cannot hold as they are: quotes, backslashes and control
//! characters. The listing reader looks for them to find where a string ends, and the
//! report writers to find what to escape. Both scan long texts, so the scan takes eight
//! bytes at a time.

/// Returns the index of the first quote, backslash or control character in `bytes`.
///
/// Eight bytes are checked at a time. For each byte `b` of a word, `(b - k) & !b & 0x80`
/// is nonzero when `b < k` and `b < 0x80`. With `k = 1` it finds zero bytes, and with
/// `k = 0x20` control characters. A quote or a backslash becomes a zero byte once the word
/// is XORed with it. A borrow can only mark bytes after the first true find, so the lowest
/// marked byte is the first one sought.
pub(crate) fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES * 0x80;
    let below = |word: u64, bound: u64| word.wrapping_sub(ONES * bound) & !word & HIGH_BITS;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for (index, word) in words.enumerate() {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let found = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if found != 0 {
            return Some(index * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let checked = bytes.len() - tail.len();
    tail.iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        .map(|index| checked + index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_byte_matches_naive_scan() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        };
        // Every byte value at every position of a 19-byte text (two words and a tail), over a
        // background of bytes just beside the sought ones, so a borrow would show.
        let background = [b'!', b'#', b'[', b']', b' ', 0x7f, 0x80, 0xa2, 0xdc, 0xff];
        for &fill in &background {
            for at in 0..19 {
                for byte in 0..=255u8 {
                    let mut bytes = vec![fill; 19];
                    bytes[at] = byte;
                    assert_eq!(special_byte(&bytes), naive(&bytes), "{bytes:?}");
                    bytes[18] = b'"';
                    assert_eq!(special_byte(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }
}
