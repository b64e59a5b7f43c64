//! The operator-editable part of the documents: `templates/prompts.toml`. Loaded and checked once
//! at start; any mistake refuses the start with the file and line, so it never reaches a caller.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Play, Say, Verb};
use crate::audio::AudioDir;

/// The copy built into the binary, used when the configured file does not exist.
pub const EMBEDDED: &str = include_str!("../../templates/prompts.toml");

/// Longest `say` text accepted (providers cap speech at a few thousand characters).
const MAX_SAY: usize = 3000;
/// Telnyx caps `fromDisplayName` at 128 characters.
pub const MAX_DISPLAY_NAME: usize = 128;

/// Whether Telnyx accepts `c` in `fromDisplayName`: "only letters, numbers, spaces, and -_~!.+".
pub fn display_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '~' | '!' | '.' | '+')
}

/// A caller as a display name: a SIP URI shows its user part (`sip:alice@x.example` → `alice`),
/// and every character Telnyx does not accept is left out.
pub fn display_name_text(caller: &str) -> String {
    let user = caller
        .strip_prefix("sip:")
        .or_else(|| caller.strip_prefix("sips:"))
        .map_or(caller, |rest| rest.split(['@', ';']).next().unwrap_or(rest));
    user.chars().filter(|&c| display_name_char(c)).collect()
}

/// A template that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// One thing the caller hears.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Play { url: String },
    Say(Say),
}

impl Prompt {
    pub fn verb(&self) -> Verb {
        match self {
            Prompt::Play { url } => Verb::Play(Play { url: url.clone() }),
            Prompt::Say(say) => Verb::Say(say.clone()),
        }
    }
}

/// What agents' phones show while ringing: literal text and `{caller}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Caller,
}

impl DisplayName {
    fn parse(template: &str) -> Result<DisplayName, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    pieces.push(Piece::Text(literal(rest)?));
                    break;
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err("has a `}` without its `{`".into());
                }
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Text(literal(&rest[..i])?));
                    }
                    let after = &rest[i + 1..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| "has a `{` without its `}`".to_string())?;
                    match &after[..end] {
                        "caller" => pieces.push(Piece::Caller),
                        other => {
                            return Err(format!(
                                "unknown placeholder `{{{other}}}`; the only one is `{{caller}}`"
                            ))
                        }
                    }
                    rest = &after[end + 1..];
                }
            }
        }
        Ok(DisplayName(pieces))
    }

    /// The text for one call, within Telnyx's rule: the caller shown as
    /// [`display_name_text`], cut to [`MAX_DISPLAY_NAME`] characters, trimmed (empty: omit it).
    pub fn render(&self, caller: &str) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Caller => out.push_str(&display_name_text(caller)),
            }
        }
        let cut = match out.char_indices().nth(MAX_DISPLAY_NAME) {
            Some((cut, _)) => &out[..cut],
            None => &out,
        };
        cut.trim().to_owned()
    }
}

/// Literal display-name text, checked against Telnyx's rule.
fn literal(text: &str) -> Result<String, String> {
    match text.chars().find(|&c| !display_name_char(c)) {
        None => Ok(text.to_owned()),
        Some(c) => Err(format!(
            "contains `{c}`: Telnyx accepts only letters, numbers, spaces and -_~!.+"
        )),
    }
}

/// Every prompt, resolved: audio files that exist become `<Play>` URLs, the rest `<Say>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompts {
    pub greeting: Prompt,
    pub busy: Prompt,
    pub voicemail: Prompt,
    pub goodbye: Prompt,
    pub after_call: Prompt,
    pub error: Prompt,
    pub unavailable: Prompt,
    pub after_hours: Prompt,
    pub turned_away: Prompt,
    /// Before a line's menu is played again after no or invalid input.
    pub menu_retry: Prompt,
    /// To an agent whose screened leg answered: `{line}` and `{caller}` are filled in.
    pub screen: Prompt,
    /// To an agent who pressed 1 after another agent took the call.
    pub screen_taken: Prompt,
    /// To an agent whose caller is no longer waiting.
    pub screen_gone: Prompt,
    /// Conference mode, to an organizer whose phone answered: `{name}` and `{line}` are filled
    /// in.
    pub organizer: Prompt,
    /// Conference mode, to the caller: `{name}` is filled in.
    pub joining: Prompt,
    /// Conference mode, after the greeting when the room is recorded.
    pub recorded: Prompt,
    pub display_name: Option<DisplayName>,
    /// The file's voice and language, for texts spoken from elsewhere (a line's menu).
    pub voice: Option<String>,
    pub language: Option<String>,
}

/// What a closed line says when the template file has no `[after_hours]` (files written before
/// lines existed keep loading).
const AFTER_HOURS: &str = "Thank you for calling. We are closed right now.";
/// What a turned-away caller hears (with `action = "message"`), when the file has none.
const TURNED_AWAY: &str = "Sorry, this line cannot take your call. Goodbye.";
/// Before a menu is repeated, when the file has no `[menu_retry]`.
const MENU_RETRY: &str = "Sorry, that was not one of the choices.";
/// What a screened agent hears, when the file has no `[screen]`.
const SCREEN: &str = "{line} call from {caller}. Press 1 to take it.";
/// When the file has no `[screen_taken]`.
const SCREEN_TAKEN: &str = "Another agent took this call. Thank you.";
/// When the file has no `[screen_gone]`.
const SCREEN_GONE: &str = "The caller is no longer waiting. Thank you.";
/// Conference mode: what an organizer hears, when the file has no `[organizer]`.
const ORGANIZER: &str = "Hello {name}. {line} call. Press 1 to join.";
/// When the file has no `[joining]`.
const JOINING: &str = "{name} is joining this call.";
/// When the file has no `[recorded]`.
const RECORDED: &str = "This call is recorded.";
/// The placeholders `[organizer]` may use.
const ORGANIZER_PLACEHOLDERS: [&str; 2] = ["{name}", "{line}"];
/// The placeholders `[joining]` may use.
const JOINING_PLACEHOLDERS: [&str; 1] = ["{name}"];
/// The placeholders `[screen]` may use.
const SCREEN_PLACEHOLDERS: [&str; 2] = ["{line}", "{caller}"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    voice: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
    greeting: PromptDef,
    busy: PromptDef,
    voicemail: PromptDef,
    goodbye: PromptDef,
    after_call: PromptDef,
    error: PromptDef,
    unavailable: PromptDef,
    after_hours: Option<PromptDef>,
    turned_away: Option<PromptDef>,
    menu_retry: Option<PromptDef>,
    screen: Option<PromptDef>,
    screen_taken: Option<PromptDef>,
    screen_gone: Option<PromptDef>,
    organizer: Option<PromptDef>,
    joining: Option<PromptDef>,
    recorded: Option<PromptDef>,
    #[serde(default)]
    ring: RingDef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptDef {
    say: Spanned<String>,
    audio: Option<Spanned<String>>,
    voice: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RingDef {
    display_name: Option<Spanned<String>>,
}

struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> TemplateError {
        let offset = span.map_or(0, |s| s.start.min(self.text.len()));
        let line = self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        TemplateError {
            file: self.name.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl Prompts {
    /// `text` spoken in the file's voice and language.
    pub fn spoken(&self, text: &str) -> Prompt {
        Prompt::Say(Say {
            text: text.to_owned(),
            voice: self.voice.clone(),
            language: self.language.clone(),
        })
    }

    /// Loads `path` (or the embedded copy when it does not exist) and resolves audio against
    /// `audio`, building `<Play>` URLs with `audio_url`.
    pub fn load(
        path: &Path,
        audio: &AudioDir,
        audio_url: &dyn Fn(&str) -> String,
    ) -> Result<Prompts, TemplateError> {
        match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %path.display(), "template file not found; using the built-in prompts");
                Self::parse(
                    "<built-in templates/prompts.toml>",
                    EMBEDDED,
                    audio,
                    audio_url,
                )
            }
            read => Self::from_read(path, read, audio, audio_url),
        }
    }

    /// Loads `path`, which must exist (a line's own prompts: a missing file is a mistake, not a
    /// reason to fall back).
    pub fn load_required(
        path: &Path,
        audio: &AudioDir,
        audio_url: &dyn Fn(&str) -> String,
    ) -> Result<Prompts, TemplateError> {
        Self::from_read(path, std::fs::read_to_string(path), audio, audio_url)
    }

    /// Parses what reading `path` gave, or says why it could not be read.
    fn from_read(
        path: &Path,
        read: std::io::Result<String>,
        audio: &AudioDir,
        audio_url: &dyn Fn(&str) -> String,
    ) -> Result<Prompts, TemplateError> {
        let name = path.display().to_string();
        match read {
            Ok(text) => Self::parse(&name, &text, audio, audio_url),
            Err(e) => Err(TemplateError {
                file: name,
                line: 0,
                message: format!("cannot be read: {e}"),
            }),
        }
    }

    /// Parses and checks template `text`; `name` is what errors call the file.
    pub fn parse(
        name: &str,
        text: &str,
        audio: &AudioDir,
        audio_url: &dyn Fn(&str) -> String,
    ) -> Result<Prompts, TemplateError> {
        let src = Source { name, text };
        let def: FileDef =
            toml::from_str(text).map_err(|e| src.error(e.span(), e.message().trim()))?;
        let voice = check_voice(&src, def.voice.as_ref())?;
        let language = check_language(&src, def.language.as_ref())?;
        let prompt = |key: &str, p: &PromptDef| -> Result<Prompt, TemplateError> {
            let say = p.say.get_ref().trim();
            if say.is_empty() {
                return Err(src.error(Some(p.say.span()), format!("[{key}] say is empty")));
            }
            if say.chars().count() > MAX_SAY {
                return Err(src.error(
                    Some(p.say.span()),
                    format!("[{key}] say is longer than {MAX_SAY} characters"),
                ));
            }
            if say.chars().any(|c| !crate::domain::xml_char(c)) {
                return Err(src.error(
                    Some(p.say.span()),
                    format!("[{key}] say contains a control character"),
                ));
            }
            if let Some(file) = &p.audio {
                if !AudioDir::valid_name(file.get_ref()) {
                    return Err(src.error(
                        Some(file.span()),
                        format!("[{key}] audio must be a plain file name in the audio folder"),
                    ));
                }
                if audio.contains(file.get_ref()) {
                    return Ok(Prompt::Play {
                        url: audio_url(file.get_ref()),
                    });
                }
                tracing::warn!(prompt = key, audio = %file.get_ref(), "audio file not found; its text will be spoken");
            }
            Ok(Prompt::Say(Say {
                text: say.to_owned(),
                voice: check_voice(&src, p.voice.as_ref())?.or_else(|| voice.clone()),
                language: check_language(&src, p.language.as_ref())?.or_else(|| language.clone()),
            }))
        };
        let spoken = |text: &str| {
            Prompt::Say(Say {
                text: text.to_owned(),
                voice: voice.clone(),
                language: language.clone(),
            })
        };
        let display_name = match &def.ring.display_name {
            Some(t) if !t.get_ref().trim().is_empty() => {
                Some(DisplayName::parse(t.get_ref()).map_err(|why| {
                    src.error(Some(t.span()), format!("[ring] display_name {why}"))
                })?)
            }
            _ => None,
        };
        Ok(Prompts {
            greeting: prompt("greeting", &def.greeting)?,
            busy: prompt("busy", &def.busy)?,
            voicemail: prompt("voicemail", &def.voicemail)?,
            goodbye: prompt("goodbye", &def.goodbye)?,
            after_call: prompt("after_call", &def.after_call)?,
            error: prompt("error", &def.error)?,
            unavailable: prompt("unavailable", &def.unavailable)?,
            after_hours: match &def.after_hours {
                Some(p) => prompt("after_hours", p)?,
                None => spoken(AFTER_HOURS),
            },
            turned_away: match &def.turned_away {
                Some(p) => prompt("turned_away", p)?,
                None => spoken(TURNED_AWAY),
            },
            menu_retry: match &def.menu_retry {
                Some(p) => prompt("menu_retry", p)?,
                None => spoken(MENU_RETRY),
            },
            screen: match &def.screen {
                Some(p) => {
                    let text = p.say.get_ref();
                    let mut rest = text.clone();
                    for known in SCREEN_PLACEHOLDERS {
                        rest = rest.replace(known, "");
                    }
                    if rest.contains(['{', '}']) {
                        return Err(src.error(
                            Some(p.say.span()),
                            "[screen] say may use only the placeholders {line} and {caller}",
                        ));
                    }
                    if p.audio.is_some() {
                        return Err(src.error(
                            Some(p.say.span()),
                            "[screen] is spoken (it names the line and the caller): remove `audio`",
                        ));
                    }
                    prompt("screen", p)?
                }
                None => spoken(SCREEN),
            },
            screen_taken: match &def.screen_taken {
                Some(p) => prompt("screen_taken", p)?,
                None => spoken(SCREEN_TAKEN),
            },
            screen_gone: match &def.screen_gone {
                Some(p) => prompt("screen_gone", p)?,
                None => spoken(SCREEN_GONE),
            },
            organizer: match &def.organizer {
                Some(p) => {
                    spoken_only(&src, "organizer", p, &ORGANIZER_PLACEHOLDERS)?;
                    prompt("organizer", p)?
                }
                None => spoken(ORGANIZER),
            },
            joining: match &def.joining {
                Some(p) => {
                    spoken_only(&src, "joining", p, &JOINING_PLACEHOLDERS)?;
                    prompt("joining", p)?
                }
                None => spoken(JOINING),
            },
            recorded: match &def.recorded {
                Some(p) => prompt("recorded", p)?,
                None => spoken(RECORDED),
            },
            display_name,
            voice,
            language,
        })
    }
}

/// A prompt with placeholders: spoken (no `audio`), using only `known` placeholders.
fn spoken_only(
    src: &Source<'_>,
    key: &str,
    p: &PromptDef,
    known: &[&str],
) -> Result<(), TemplateError> {
    let mut rest = p.say.get_ref().clone();
    for k in known {
        rest = rest.replace(k, "");
    }
    if rest.contains(['{', '}']) {
        return Err(src.error(
            Some(p.say.span()),
            format!(
                "[{key}] say may use only the placeholders {}",
                known.join(" and ")
            ),
        ));
    }
    if p.audio.is_some() {
        return Err(src.error(
            Some(p.say.span()),
            format!("[{key}] is spoken (it says a name): remove `audio`"),
        ));
    }
    Ok(())
}

/// A caller as an agent hears them: a number digit by digit (`+1 202…` becomes `1 2 0 2 …`),
/// only its first four digits when numbers are masked; a SIP caller by user name (or `a SIP
/// caller` when masked); an anonymous one as such.
pub fn spoken_caller(caller: &str, masked: bool) -> String {
    if crate::call::policy::is_anonymous(caller) {
        return "an anonymous caller".into();
    }
    let is_sip = caller.starts_with("sip:") || caller.starts_with("sips:");
    if is_sip {
        return match masked {
            true => "a SIP caller".into(),
            false => display_name_text(caller),
        };
    }
    let digits: Vec<String> = caller
        .chars()
        .filter(char::is_ascii_digit)
        .map(String::from)
        .collect();
    match (masked, digits.len()) {
        (_, 0) => "an unknown number".into(),
        (true, n) => format!("a number starting {}", digits[..n.min(4)].join(" ")),
        (false, _) => digits.join(" "),
    }
}

fn check_voice(
    src: &Source<'_>,
    v: Option<&Spanned<String>>,
) -> Result<Option<String>, TemplateError> {
    let Some(v) = v else { return Ok(None) };
    let s = v.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(src.error(
            Some(v.span()),
            "voice must be a voice name such as alice, woman or Polly.Joanna-Neural",
        ));
    }
    Ok(Some(s.clone()))
}

fn check_language(
    src: &Source<'_>,
    v: Option<&Spanned<String>>,
) -> Result<Option<String>, TemplateError> {
    let Some(v) = v else { return Ok(None) };
    let s = v.get_ref();
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !ok {
        return Err(src.error(
            Some(v.span()),
            "language must be a language tag such as en-US or fr-FR",
        ));
    }
    Ok(Some(s.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(name: &str) -> String {
        format!("https://sb.example/audio/{name}")
    }

    fn parse(text: &str) -> Result<Prompts, TemplateError> {
        Prompts::parse("prompts.toml", text, &AudioDir::default(), &url)
    }

    #[test]
    fn the_shipped_templates_are_valid() {
        let p = parse(EMBEDDED).expect("valid");
        // With no audio files every prompt is spoken, in the configured voice.
        match &p.greeting {
            Prompt::Say(say) => {
                assert_eq!(say.voice.as_deref(), Some("alice"));
                assert_eq!(say.language.as_deref(), Some("en-US"));
            }
            other => panic!("expected speech, got {other:?}"),
        }
        let name = p.display_name.expect("display name");
        assert_eq!(name.render("+12025550142"), "+12025550142");
        assert_eq!(name.render(&"9".repeat(200)).len(), MAX_DISPLAY_NAME);
    }

    #[test]
    fn display_names_keep_to_telnyxs_characters() {
        let p = parse(&EMBEDDED.replace("\"{caller}\"", "\"Hotline {caller}\"")).expect("valid");
        let name = p.display_name.expect("display name");
        assert_eq!(name.render("sip:alice@example.com;x=1"), "Hotline alice");
        assert_eq!(name.render("+1 (202) 555-0142"), "Hotline +1 202 555-0142");
        assert_eq!(name.render("<&\"'>"), "Hotline");
        let bare = parse(EMBEDDED).expect("valid").display_name.expect("name");
        assert_eq!(
            bare.render("@;:"),
            "",
            "nothing left: the attribute is left out"
        );
        for caller in ["sips:Bob.B@x.example", "anonymous", "ünïcode+1"] {
            let shown = bare.render(caller);
            assert!(shown.chars().all(display_name_char), "{caller} -> {shown}");
        }
        let err =
            parse(&EMBEDDED.replace("\"{caller}\"", "\"Call: {caller}\"")).expect_err("a colon");
        assert!(err.message.contains("contains `:`"), "{err}");
    }

    #[test]
    fn errors_name_the_line() {
        let broken = EMBEDDED.replacen(
            "say = \"All our agents",
            "say = \"\"\nxsay = \"All our agents",
            1,
        );
        let line = broken
            .lines()
            .position(|l| l.starts_with("xsay"))
            .expect("line")
            + 1;
        let err = parse(&broken).expect_err("unknown key");
        assert_eq!(err.line, line, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("prompts.toml:{line}: ")),
            "{err}"
        );

        let err = parse(&EMBEDDED.replace("{caller}", "{callr}")).expect_err("placeholder");
        assert!(
            err.message.contains("unknown placeholder `{callr}`"),
            "{err}"
        );
        let line = EMBEDDED
            .lines()
            .position(|l| l.contains("{caller}\""))
            .expect("line")
            + 1;
        assert_eq!(err.line, line);

        let err = parse(&EMBEDDED.replace("language = \"en-US\"", "language = \"english!\""))
            .expect_err("lang");
        assert_eq!(err.line, 11, "{err}");

        let err = parse("voice = \"alice\"\n[greeting\n").expect_err("syntax");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn present_audio_is_played() {
        let dir = std::env::temp_dir().join(format!("sb-audio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("greeting.wav"), b"RIFF").expect("write");
        let audio = AudioDir::scan(&dir);
        let p = Prompts::parse("p.toml", EMBEDDED, &audio, &url).expect("valid");
        assert_eq!(
            p.greeting,
            Prompt::Play {
                url: "https://sb.example/audio/greeting.wav".into()
            }
        );
        assert!(matches!(p.busy, Prompt::Say(_)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
