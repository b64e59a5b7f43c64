//! Small validated types shared by the whole crate. A value of one of these types was checked once,
//! at the edge, so the rest of the code never re-validates or panics on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest identifier or free-text field Switchboard accepts from the provider. Real values are far
/// shorter (a Telnyx CallSid is about 60 characters); anything longer is refused at the edge.
pub const MAX_FIELD_LEN: usize = 256;

/// Why a field from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_FIELD_LEN} characters")]
    TooLong,
    #[error("contains a control character or one XML cannot carry")]
    Control,
    #[error("{0}")]
    Invalid(&'static str),
}

/// Whether XML 1.0 can carry `c` (it cannot carry U+FFFE, U+FFFF, or control characters other
/// than tab, newline and carriage return).
pub fn xml_char(c: char) -> bool {
    !matches!(c, '\u{FFFE}' | '\u{FFFF}') && (!c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

fn check_text(s: &str) -> Result<&str, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        Err(FieldError::Empty)
    } else if s.chars().count() > MAX_FIELD_LEN {
        Err(FieldError::TooLong)
    } else if s.chars().any(|c| c.is_control() || !xml_char(c)) {
        Err(FieldError::Control)
    } else {
        Ok(s)
    }
}

/// The provider's identifier of one call leg (`CallSid`, `ParentCallSid`, `DialCallSid`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallSid(Box<str>);

impl CallSid {
    pub fn parse(s: &str) -> Result<CallSid, FieldError> {
        Ok(CallSid(check_text(s)?.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Caller-controlled text (a `From` or `To`: a number, a SIP URI, "anonymous"...). Kept as given
/// (bounded, without control characters); it reaches XML only through the writer's escaping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party(Box<str>);

impl Party {
    /// A caller ID is shown, not refused: characters XML cannot carry (U+FFFE, U+FFFF) become
    /// U+FFFD, so the call still gets a valid document. Control characters are refused.
    pub fn parse(s: &str) -> Result<Party, FieldError> {
        if s.chars().any(char::is_control) {
            return Err(FieldError::Control);
        }
        let cleaned: String = s
            .chars()
            .map(|c| if xml_char(c) { c } else { '\u{FFFD}' })
            .collect();
        Ok(Party(check_text(&cleaned)?.into()))
    }

    /// For a field the provider left out.
    pub fn unknown() -> Party {
        Party("unknown".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an agent is rung: a SIP URI (`<Sip>`) or a phone number (`<Number>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    Sip(Box<str>),
    Number(Box<str>),
}

impl Endpoint {
    /// `sip:user@host` or `sips:user@host`, optionally with `;params`; no spaces or angle brackets.
    pub fn sip(s: &str) -> Result<Endpoint, FieldError> {
        let s = check_text(s)?;
        let rest = s
            .strip_prefix("sip:")
            .or_else(|| s.strip_prefix("sips:"))
            .ok_or(FieldError::Invalid("must start with sip: or sips:"))?;
        let (user, host) = rest
            .split_once('@')
            .ok_or(FieldError::Invalid("must be sip:user@host"))?;
        if user.is_empty() || host.is_empty() || host.starts_with(';') {
            return Err(FieldError::Invalid("must be sip:user@host"));
        }
        if s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        {
            return Err(FieldError::Invalid(
                "must not contain spaces, quotes or angle brackets",
            ));
        }
        Ok(Endpoint::Sip(s.into()))
    }

    /// A number in E.164 form: `+` then 8 to 15 digits, the first not 0.
    pub fn number(s: &str) -> Result<Endpoint, FieldError> {
        let s = check_text(s)?;
        let digits = s.strip_prefix('+').ok_or(FieldError::Invalid(
            "must be in E.164 form, e.g. +12025550142",
        ))?;
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(FieldError::Invalid(
                "must be in E.164 form, e.g. +12025550142",
            ));
        }
        Ok(Endpoint::Number(s.into()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Endpoint::Sip(s) | Endpoint::Number(s) => s,
        }
    }

    /// Whether a leg's `To` names this endpoint. Providers may add or drop the `sip:` scheme,
    /// URI parameters or letter case, so compare only `user@host` (or the digits).
    pub fn matches(&self, to: &str) -> bool {
        fn core(s: &str) -> String {
            let s = s.trim();
            let s = s
                .strip_prefix("sips:")
                .or_else(|| s.strip_prefix("sip:"))
                .unwrap_or(s);
            let s = s.split([';', '?']).next().unwrap_or(s);
            s.to_ascii_lowercase()
        }
        match self {
            Endpoint::Sip(uri) => core(uri) == core(to),
            Endpoint::Number(n) => {
                let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
                let d = digits(to.split('@').next().unwrap_or(to));
                !d.is_empty() && digits(n) == d
            }
        }
    }
}

/// Which line a call came in on (support, hotline, ...): the key of the agent roster and, later,
/// of each line's hours and menus. One line, [`LineId::main`], until lines are configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineId(Box<str>);

impl LineId {
    /// The line every call is on while no lines are configured.
    pub fn main() -> LineId {
        LineId("main".into())
    }

    /// A configured line's id (checked by the configuration).
    pub fn new(id: &str) -> LineId {
        LineId(id.into())
    }

    /// `id` when it is a well-formed line id: 1 to 64 letters, digits, `-` or `_`.
    pub fn parse(id: &str) -> Option<LineId> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        ok.then(|| LineId::new(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The provider's own copy of a recording, as its callback names it: what deleting it takes
/// (`AccountSid`, `RecordingSid`). Only ids of letters, digits, `-` and `_` are kept, since they
/// become part of an API path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCopy {
    pub account: Box<str>,
    pub sid: Box<str>,
}

impl ProviderCopy {
    /// Both ids, if both are present and plain.
    pub fn of(account: Option<&str>, sid: Option<&str>) -> Option<ProviderCopy> {
        let plain = |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let (account, sid) = (account?.trim(), sid?.trim());
        (plain(account) && plain(sid)).then(|| ProviderCopy {
            account: account.into(),
            sid: sid.into(),
        })
    }
}

/// Someone who answers calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// How lines name the agent: `id` in `[[agents]]` (by default the name, lowercased, with
    /// dashes), or the SIP user name of an agent read from the provider.
    #[serde(default)]
    pub id: Box<str>,
    pub name: Box<str>,
    pub endpoint: Endpoint,
    /// The provider's id of the agent's SIP connection, which names them in the Call Control
    /// events of their own calls. `None` for agents reached on a phone number.
    pub connection_id: Option<Box<str>>,
    /// Whether a leg to this agent asks them to press 1 first (`None`: the line decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<Screen>,
    /// Seconds after a call before this agent is rung again (`None`: the line's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up_secs: Option<u32>,
}

/// Whether an agent who answers must press 1 before the caller is put through, so that a
/// mobile's voicemail, which answers like a person, never takes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Screen {
    /// Nobody is asked.
    Never,
    /// Everyone is asked.
    Always,
    /// Agents on phone numbers are asked (their voicemail answers); SIP phones are not.
    #[default]
    Numbers,
}

impl Screen {
    /// Whether a leg to `endpoint` is screened under this rule.
    pub fn applies(self, endpoint: &Endpoint) -> bool {
        match self {
            Screen::Never => false,
            Screen::Always => true,
            Screen::Numbers => matches!(endpoint, Endpoint::Number(_)),
        }
    }

    pub fn parse(s: &str) -> Option<Screen> {
        match s {
            "never" => Some(Screen::Never),
            "always" => Some(Screen::Always),
            "numbers" => Some(Screen::Numbers),
            _ => None,
        }
    }
}

impl Agent {
    /// An agent whose id is derived from `name` (`Ada Lovelace` → `ada-lovelace`).
    pub fn new(name: &str, endpoint: Endpoint) -> Result<Agent, FieldError> {
        let name = check_text(name)?;
        Ok(Agent {
            id: Agent::id_from(name).into(),
            name: name.into(),
            endpoint,
            connection_id: None,
            screen: None,
            wrap_up_secs: None,
        })
    }

    /// `Ada Lovelace` → `ada-lovelace`: lowercase letters and digits, runs of anything else as one
    /// dash.
    pub fn id_from(name: &str) -> String {
        let mut id = String::with_capacity(name.len());
        for c in name.trim().chars() {
            if c.is_alphanumeric() {
                id.extend(c.to_lowercase());
            } else if !id.ends_with('-') && !id.is_empty() {
                id.push('-');
            }
        }
        id.trim_end_matches('-').to_owned()
    }

    /// The same agent, named `id` by lines.
    pub fn with_id(mut self, id: &str) -> Agent {
        self.id = id.trim().into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sids_are_bounded_text() {
        assert!(CallSid::parse("v3:abc-123").is_ok());
        assert_eq!(CallSid::parse("  "), Err(FieldError::Empty));
        assert_eq!(CallSid::parse(&"x".repeat(300)), Err(FieldError::TooLong));
        assert_eq!(CallSid::parse("a\u{0}b"), Err(FieldError::Control));
    }

    #[test]
    fn characters_xml_cannot_carry_never_reach_a_document() {
        // Found by the `render` fuzz target: U+FFFF in a caller ID made the document invalid XML.
        let p = Party::parse("+1202\u{FFFF}555\u{FFFE}").expect("shown, not refused");
        assert_eq!(p.as_str(), "+1202\u{FFFD}555\u{FFFD}");
        assert!(p.as_str().chars().all(xml_char));
        assert_eq!(CallSid::parse("CA\u{FFFF}"), Err(FieldError::Control));
        assert_eq!(Party::parse("a\u{7}b"), Err(FieldError::Control));
    }

    #[test]
    fn sip_and_number_endpoints_are_checked() {
        assert!(Endpoint::sip("sip:ada@example.com").is_ok());
        assert!(Endpoint::sip("sips:ada@example.com;transport=tls").is_ok());
        for bad in [
            "ada@example.com",
            "sip:example.com",
            "sip:a b@x.com",
            "sip:a@x.com<",
        ] {
            assert!(Endpoint::sip(bad).is_err(), "{bad}");
        }
        assert!(Endpoint::number("+12025550142").is_ok());
        for bad in ["12025550142", "+0123456789", "+1202", "+1202555O142"] {
            assert!(Endpoint::number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn legs_are_matched_to_agents_loosely() {
        let sip = Endpoint::sip("sip:Ada@Example.com").expect("valid");
        assert!(sip.matches("sip:ada@example.com"));
        assert!(sip.matches("ada@example.com;transport=udp"));
        assert!(!sip.matches("sip:grace@example.com"));
        let num = Endpoint::number("+12025550142").expect("valid");
        assert!(num.matches("+1 (202) 555-0142"));
        assert!(num.matches("sip:+12025550142@sip.telnyx.com"));
        assert!(!num.matches("+12025550143"));
        assert!(!num.matches("anonymous"));
    }
}
