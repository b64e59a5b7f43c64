//! Caller numbers on Code of Conduct and crisis lines are private: with
//! `privacy.mask_caller_numbers` they appear masked (`+1202•••0142`) in Slack and in logs.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, Default)]
pub struct Privacy {
    pub mask_caller_numbers: bool,
}

impl Privacy {
    /// A caller-side party as it may be shown.
    pub fn party<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if self.mask_caller_numbers {
            Cow::Owned(mask(s))
        } else {
            Cow::Borrowed(s)
        }
    }
}

/// What stands for the hidden part.
pub const DOTS: &str = "•••";

/// `+12025550142` → `+1202•••0142`; `sip:alice@example.com` → `sip:a•••@example.com`; anything
/// else keeps its first and last two characters (or nothing, when that would show most of it).
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let is_number =
        chars.len() >= 9 && chars[0] == '+' && chars[1..].iter().all(char::is_ascii_digit);
    if is_number {
        let head: String = chars[..5].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        return format!("{head}{DOTS}{tail}");
    }
    if let Some((user, host)) = s.split_once('@') {
        let (scheme, user) = match user.split_once(':') {
            Some((scheme, user)) => (format!("{scheme}:"), user),
            None => (String::new(), user),
        };
        let first: String = user.chars().take(1).collect();
        return format!("{scheme}{first}{DOTS}@{host}");
    }
    if chars.len() <= 6 {
        return DOTS.to_owned();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{DOTS}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_uris_are_masked() {
        assert_eq!(mask("+12025550142"), "+1202•••0142");
        assert_eq!(mask("sip:alice@example.com"), "sip:a•••@example.com");
        assert_eq!(mask("anonymous"), "an•••us");
        assert_eq!(mask("12345"), "•••");
        assert_eq!(mask("+1<&>"), "•••");
        let p = Privacy {
            mask_caller_numbers: false,
        };
        assert_eq!(p.party("+12025550142"), "+12025550142");
    }
}
