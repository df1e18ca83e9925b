//! Reading delivered mail in tests: shared by the root crate's support
//! library and by the host crate's tests (included there by path, since the
//! two crates can't depend on each other).

/// The text of an `.eml` with quoted-printable soft breaks and escapes
/// undone, so a test can find the link in it.
pub fn decoded_eml(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The six-digit recovery code in a code mail's text.
pub fn code_in(text: &str) -> Option<String> {
    let after = text.split("enter this code").nth(1)?;
    after
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_string)
}

/// The first recovery link under `base` in a text.
pub fn link_in(text: &str, base: &str) -> Option<String> {
    let start = text.find(&format!("{base}/self-service/recovery?"))?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}
