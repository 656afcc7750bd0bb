//! The scan of a request's text before it is parsed: the parser recurses
//! once per bracket, so nesting is measured on the bytes first.
/// What the text scan found.
pub(super) struct Scan {
    pub(super) tokens: usize,
    pub(super) too_deep: bool,
}

/// One pass over the bytes: tokens as the GraphQL lexer would count them
/// (commas and comments are not tokens) and whether `{`, `[` or `(` nest
/// deeper than `limit`. Strings and comments are skipped as units.
pub(super) fn scan(query: &str, limit: usize) -> Scan {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut tokens = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {}
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                tokens += 1;
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // An escaped triple quote does not close the block.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2; // the closing quotes, less the one the loop skips
            }
            b'"' => {
                tokens += 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                tokens += 1;
                depth += 1;
                if depth > limit {
                    return Scan {
                        tokens,
                        too_deep: true,
                    };
                }
            }
            b'}' | b']' | b')' => {
                tokens += 1;
                depth = depth.saturating_sub(1);
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                tokens += 1;
                i += 2;
            }
            byte if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'+' | b'.') => {
                tokens += 1;
                while i + 1 < bytes.len()
                    && (bytes[i + 1].is_ascii_alphanumeric()
                        || matches!(bytes[i + 1], b'_' | b'.' | b'-' | b'+'))
                    && !bytes[i + 1..].starts_with(b"...")
                {
                    i += 1;
                }
            }
            _ => tokens += 1,
        }
        i += 1;
    }
    Scan {
        tokens,
        too_deep: false,
    }
}
