//! Secrets out of what is printed: URLs with their credentials blanked,
//! for every log line, error and `Debug` output that shows a URL.
//!
//! A URL's credentials sit in its authority, before the last `@`: a
//! password after the user's `:` (`postgres://shop:***@db/shop`), or a
//! token alone where a user would be (`nats://***@bus`), which cannot be
//! told from a user name and so is blanked too.
//!
//! ```
//! assert_eq!(
//!     seams_core::redact("billing=postgres://billing:s3cr3t@db/billing"),
//!     "billing=postgres://billing:***@db/billing"
//! );
//! ```

/// `text` with the credentials of every URL in it replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        // Another URL may begin inside what looks like this authority (a
        // server list, `nats://a,nats://user:pw@b`): it is judged on its own.
        let authority_end = tail
            .find("://")
            .map_or(authority_end, |next| authority_end.min(next));
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
