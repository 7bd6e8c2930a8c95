//! Strings in scenarios and in output: the escapes `\n`, `\"`, `\\` of the
//! contract, and `\t`, `\r`, `\0`, `\xHH` for bytes that are not printable
//! (so that what `read` returned can always be written back as an
//! expectation).

/// The bytes a string literal's body (without quotes) denotes, or the
/// character offset and text of a bad escape.
pub fn unescape(s: &str) -> Result<Vec<u8>, (usize, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 1;
            continue;
        }
        let bad = |msg: &str| Err((i, msg.to_string()));
        match chars.get(i + 1) {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('"') => out.push(b'"'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.iter().skip(i + 2).take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => return bad("expected two hex digits after `\\x`"),
                }
                i += 2;
            }
            Some(other) => {
                return bad(&format!(
                    "unknown escape `\\{other}` (known: \\n \\t \\r \\0 \\\" \\\\ \\xHH)"
                ))
            }
            None => return bad("unterminated escape"),
        }
        i += 2;
    }
    Ok(out)
}

/// `bytes` as a quoted literal that [`unescape`] reads back.
pub fn quote(bytes: &[u8]) -> String {
    format!("\"{}\"", escape(bytes))
}

/// The body of [`quote`]: printable ASCII as is, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0 => s.push_str("\\0"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// `bytes` as a JSON string: the text itself when it is UTF-8, otherwise
/// the escaped form of [`escape`].
pub fn json_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => escape(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let q = escape(&all);
        assert_eq!(unescape(&q).unwrap(), all);
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert!(unescape(r"\q").is_err());
        assert!(unescape(r"\x4").is_err());
        assert_eq!(unescape(r"a\x41\n").unwrap(), b"aA\n");
    }
}
