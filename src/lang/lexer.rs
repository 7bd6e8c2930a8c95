//! Splits one line into tokens: words, quoted strings and `=`.

use super::text::unescape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Word(String),
    Str(Vec<u8>),
    Eq,
}

/// A token and the column (1-based, in characters) where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub col: usize,
}

/// Tokens of `line`, or the column and text of the first lexical error.
pub fn lex(line: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            break;
        } else if c == '=' {
            out.push(Token { tok: Tok::Eq, col });
            i += 1;
        } else if c == '"' {
            let start = i;
            i += 1;
            let mut raw = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err((col, "unterminated string: expected a closing `\"`".into()))
                    }
                    Some('"') => break,
                    Some('\\') => {
                        raw.push('\\');
                        match chars.get(i + 1) {
                            Some(&n) => raw.push(n),
                            None => {
                                return Err((i + 1, "unterminated escape at end of line".into()))
                            }
                        }
                        i += 2;
                    }
                    Some(&ch) => {
                        raw.push(ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            let bytes = unescape(&raw).map_err(|(off, msg)| (start + 2 + off, msg))?;
            out.push(Token {
                tok: Tok::Str(bytes),
                col,
            });
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '"' | '#' | '=')
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(chars[start..i].iter().collect()),
                col: start + 1,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_strings_and_comments() {
        let t = lex(r#"p1: write 3 "a\"b # c" = 4 # done"#).unwrap();
        let kinds: Vec<Tok> = t.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Word("p1:".into()),
                Tok::Word("write".into()),
                Tok::Word("3".into()),
                Tok::Str(b"a\"b # c".to_vec()),
                Tok::Eq,
                Tok::Word("4".into()),
            ]
        );
        assert_eq!(t[3].col, 13);
    }

    #[test]
    fn unterminated_string_names_its_column() {
        assert_eq!(lex(r#"p1: write 3 "abc"#).unwrap_err().0, 13);
    }
}
