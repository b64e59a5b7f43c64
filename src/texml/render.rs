//! From the call's [`Reply`] to a TeXML document: which prompts, which Dial, which URLs.

use url::Url;

use super::prompts::Prompts;
use super::{
    Dial, DialNoun, DialSettings, Provider, ProviderSettings, Record, RecordMode, Response, Say,
    Verb, VoicemailSettings,
};
use crate::call::{Intro, Lead, Reply};
use crate::domain::Endpoint;
use crate::domain::LineId;

/// The absolute URLs written into documents, built once from `server.public_url`.
#[derive(Debug, Clone)]
pub struct Urls {
    base: Url,
    dial: String,
    menu: String,
    screen: String,
    screen_answer: String,
    voicemail: String,
    status: String,
    recording_voicemail: String,
    recording_conversation: String,
    conference: String,
}

impl Urls {
    pub fn new(public_url: &Url) -> Result<Urls, url::ParseError> {
        let mut base = public_url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let abs = |path: &str| base.join(path).map(String::from);
        Ok(Urls {
            dial: abs("texml/dial")?,
            menu: abs("texml/menu")?,
            screen: abs("texml/screen")?,
            screen_answer: abs("texml/screen/answer")?,
            voicemail: abs("texml/voicemail")?,
            status: abs("texml/status")?,
            recording_voicemail: abs("texml/recording?kind=voicemail")?,
            recording_conversation: abs("texml/recording?kind=conversation")?,
            conference: abs("texml/conference/")?,
            base,
        })
    }

    /// The Dial action of `round` (and of its `group`, when a round is several `<Dial>`s): they
    /// ride along so a late or repeated action is known.
    pub fn dial(&self, round: u8, group: u8) -> String {
        match group {
            0 => format!("{}?round={round}", self.dial),
            g => format!("{}?round={round}&group={g}", self.dial),
        }
    }

    /// The Dial action of a call on `line`: the line rides along too (a menu may have moved the
    /// call off its number's line), unless it is the implicit one.
    pub fn dial_on(&self, line: &LineId, round: u8, group: u8) -> String {
        let url = self.dial(round, group);
        match *line == LineId::main() {
            true => url,
            false => format!("{url}&line={}", line.as_str()),
        }
    }

    /// The action of `line`'s menu, played as attempt `attempt` (a late or repeated one is known).
    pub fn menu(&self, line: &LineId, attempt: u8) -> String {
        format!("{}?attempt={attempt}&line={}", self.menu, line.as_str())
    }

    /// The whisper of a screened leg of `call` (round `round`, `<Dial>` `group`) to `agent`, or
    /// (`answer`) the action of its key: everything the answer needs rides along, as the
    /// provider's request is about the agent's leg.
    pub fn screen(
        &self,
        answer: bool,
        call: &crate::domain::CallSid,
        round: u8,
        group: u8,
        agent: &str,
    ) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("call", call.as_str())
            .append_pair("round", &round.to_string())
            .append_pair("group", &group.to_string())
            .append_pair("agent", agent)
            .finish();
        let base = match answer {
            true => &self.screen_answer,
            false => &self.screen,
        };
        format!("{base}?{query}")
    }

    /// Conference mode: `path` under `/texml/conference/`, with these query pairs.
    pub fn conference(&self, path: &str, pairs: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        let query = query.finish();
        match query.is_empty() {
            true => format!("{}{path}", self.conference),
            false => format!("{}{path}?{query}", self.conference),
        }
    }

    /// Conference mode: the recording callback of `call`'s room (the call rides along: a
    /// conference recording's callback may name another participant's call, or none).
    pub fn recording_conference(&self, call: &crate::domain::CallSid) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("kind", "conference")
            .append_pair("call", call.as_str())
            .finish();
        format!("{}texml/recording?{query}", self.base)
    }

    /// A file of the audio folder (names are checked to be plain, see [`crate::audio`]).
    pub fn audio(&self, name: &str) -> String {
        self.base
            .join("audio/")
            .and_then(|u| u.join(name))
            .map(String::from)
            .unwrap_or_else(|_| format!("{}audio/{name}", self.base))
    }
}

/// The voice Twilio speaks with when a prompt's voice is one only Telnyx knows.
pub const TWILIO_VOICE: &str = "Polly.Joanna";

/// Whether Twilio documents `voice` (`man`, `woman`, `Polly.*`, `Google.*`).
fn twilio_knows(voice: &str) -> bool {
    matches!(voice, "man" | "woman") || voice.starts_with("Polly.") || voice.starts_with("Google.")
}

/// What a line's menu says, and how long it waits for a key after saying it.
#[derive(Debug, Clone)]
pub struct MenuText {
    pub prompt: String,
    pub timeout_secs: u32,
}

/// Renders replies with the configured prompts and settings, in the provider's dialect.
pub struct Renderer {
    urls: Urls,
    dial: DialSettings,
    voicemail: VoicemailSettings,
    provider: Provider,
    prompts: Prompts,
    /// Lines with prompts of their own; the others speak `prompts`.
    line_prompts: std::collections::HashMap<LineId, Prompts>,
    /// Lines with a menu: what it says, how long it waits for a key.
    menus: std::collections::HashMap<LineId, MenuText>,
    /// Lines' names, as a screened agent hears them.
    line_names: std::collections::HashMap<LineId, String>,
    /// Callers' numbers masked in what agents hear (`privacy.mask_caller_numbers`).
    mask_callers: bool,
    /// Conference mode: rooms are recorded; the hold audio's file.
    room_record: bool,
    hold_audio: String,
    /// The apology document, rendered at start so that a failure while rendering can still answer
    /// the caller with something valid.
    fallback: Vec<u8>,
}

impl Renderer {
    pub fn new(
        dial: &DialSettings,
        voicemail: &VoicemailSettings,
        provider: &ProviderSettings,
        urls: Urls,
        prompts: Prompts,
    ) -> std::io::Result<Renderer> {
        let mut renderer = Renderer {
            urls,
            dial: dial.clone(),
            voicemail: voicemail.clone(),
            provider: provider.kind,
            prompts,
            line_prompts: Default::default(),
            menus: Default::default(),
            line_names: Default::default(),
            mask_callers: false,
            room_record: true,
            hold_audio: "hold.wav".into(),
            fallback: Vec::new(),
        };
        renderer.fallback = renderer
            .document(&Reply::Voicemail {
                intro: Intro::Apology,
            })
            .to_xml()?;
        Ok(renderer)
    }

    /// Gives `line` prompts of its own.
    pub fn with_line_prompts(mut self, line: LineId, prompts: Prompts) -> Renderer {
        self.line_prompts.insert(line, prompts);
        self
    }

    /// Gives `line` its menu.
    pub fn with_menu(mut self, line: LineId, menu: MenuText) -> Renderer {
        self.menus.insert(line, menu);
        self
    }

    /// Names lines for screened agents, and says whether callers' numbers are masked.
    pub fn with_screening(
        mut self,
        line_names: std::collections::HashMap<LineId, String>,
        mask_callers: bool,
    ) -> Renderer {
        self.line_names = line_names;
        self.mask_callers = mask_callers;
        self
    }

    /// How conference-mode rooms are run: recorded or not, and what the caller waits to.
    pub fn with_rooms(mut self, record: bool, hold_audio: &str) -> Renderer {
        self.room_record = record;
        self.hold_audio = hold_audio.to_owned();
        self
    }

    /// The hold document of a room: the hold audio, looped.
    pub fn hold(&self) -> Vec<u8> {
        let doc = Response::new(vec![Verb::Loop(self.urls.audio(&self.hold_audio))]);
        doc.to_xml().unwrap_or_else(|_| self.fallback.clone())
    }

    fn line_name(&self, line: &LineId) -> String {
        self.line_names
            .get(line)
            .map_or_else(|| line.as_str().to_owned(), Clone::clone)
    }

    /// A prompt with `{placeholder}`s filled in (a spoken one; an audio one as it is).
    fn filled(&self, prompt: &super::Prompt, pairs: &[(&str, &str)]) -> Verb {
        let prompt = match prompt {
            super::Prompt::Say(say) => {
                let mut text = say.text.clone();
                for (k, v) in pairs {
                    text = text.replace(k, v);
                }
                super::Prompt::Say(Say {
                    text,
                    ..say.clone()
                })
            }
            other => other.clone(),
        };
        self.verb(&prompt)
    }

    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The apology document: sorry, then take a message.
    pub fn fallback(&self) -> &[u8] {
        &self.fallback
    }

    /// The document as bytes, in the default prompts; the apology document if writing fails.
    pub fn render(&self, reply: &Reply) -> Vec<u8> {
        self.render_for(&LineId::main(), reply)
    }

    /// The document as bytes, in `line`'s prompts.
    pub fn render_for(&self, line: &LineId, reply: &Reply) -> Vec<u8> {
        match self.document_for(line, reply).to_xml() {
            Ok(xml) => xml,
            Err(e) => {
                tracing::error!(error = %e, "rendering a document failed; answering with the apology");
                self.fallback.clone()
            }
        }
    }

    /// A prompt as a verb, in the provider's dialect: under Twilio a voice only Telnyx knows
    /// (`alice`, `Azure.*`...) becomes [`TWILIO_VOICE`].
    fn verb(&self, prompt: &super::Prompt) -> Verb {
        match prompt.verb() {
            Verb::Say(say) if self.provider == Provider::Twilio => Verb::Say(Say {
                voice: say
                    .voice
                    .filter(|v| twilio_knows(v))
                    .or_else(|| Some(TWILIO_VOICE.to_owned())),
                ..say
            }),
            verb => verb,
        }
    }

    pub fn document(&self, reply: &Reply) -> Response {
        self.document_for(&LineId::main(), reply)
    }

    /// The document of `reply` for a call on `line`, in its prompts.
    pub fn document_for(&self, line: &LineId, reply: &Reply) -> Response {
        let p = self.line_prompts.get(line).unwrap_or(&self.prompts);
        match reply {
            Reply::Menu { attempt } => {
                let Some(menu) = self.menus.get(line) else {
                    // Not this line's menu (a call from before a configuration change): ring on.
                    tracing::warn!(
                        line = line.as_str(),
                        "a menu document for a line without a menu"
                    );
                    return Response::new(vec![Verb::Redirect(self.urls.menu(line, *attempt))]);
                };
                // The menu's prompt is the line's welcome (the greeting promises an agent); a
                // repeat says why first.
                let mut verbs = match attempt {
                    0 | 1 => vec![],
                    _ => vec![self.verb(&p.menu_retry)],
                };
                verbs.push(self.verb(&p.spoken(&menu.prompt)));
                let action = self.urls.menu(line, *attempt);
                // No key: Twilio falls through to the next verb; Telnyx may too, or may request
                // the action without digits. Both land on the same URL with no digits.
                Response::new(vec![
                    Verb::Gather(super::Gather {
                        action: action.clone(),
                        timeout_secs: menu.timeout_secs,
                        verbs,
                    }),
                    Verb::Redirect(action),
                ])
            }
            Reply::Ring {
                call,
                round,
                group,
                targets,
                caller,
                ring_secs,
                lead,
                screen,
            } => {
                // The greeting or busy prompt opens a round; its later `<Dial>`s follow at once.
                let lead = match (round, group, lead) {
                    (_, 1.., _) | (0 | 1, 0, Lead::Nothing) => None,
                    (0 | 1, 0, Lead::AfterHours) => Some(&p.after_hours),
                    (0 | 1, 0, Lead::Greeting) => Some(&p.greeting),
                    (_, 0, _) => Some(&p.busy),
                };
                let nouns = targets
                    .iter()
                    .map(|agent| DialNoun {
                        endpoint: agent.endpoint.clone(),
                        status_callback: self.urls.status.clone(),
                        url: crate::call::routing::screens(*screen, agent)
                            .then(|| self.urls.screen(false, call, *round, *group, &agent.id)),
                    })
                    .collect();
                let record = self.dial.record;
                let rings_a_number = targets
                    .iter()
                    .any(|a| matches!(a.endpoint, Endpoint::Number(_)));
                let from_display_name = match self.provider {
                    // Twilio has no such attribute.
                    Provider::Twilio => None,
                    Provider::Telnyx => p
                        .display_name
                        .as_ref()
                        .map(|name| name.render(caller.as_str()))
                        .filter(|name| !name.is_empty()),
                };
                let dial = Dial {
                    action: self.urls.dial_on(line, *round, *group),
                    timeout_secs: *ring_secs,
                    time_limit_secs: self.dial.time_limit_secs,
                    record,
                    recording_status_callback: (record != RecordMode::DoNotRecord)
                        .then(|| self.urls.recording_conversation.clone()),
                    from_display_name,
                    caller_id: Some(self.dial.caller_id.clone())
                        .filter(|c| rings_a_number && !c.is_empty()),
                    nouns,
                };
                let mut verbs: Vec<Verb> = lead.map(|l| self.verb(l)).into_iter().collect();
                verbs.push(Verb::Dial(dial));
                Response::new(verbs)
            }
            Reply::Voicemail { intro } => {
                let mut verbs = match intro {
                    Intro::Greeting => vec![self.verb(&p.greeting)],
                    Intro::PromptOnly => vec![],
                    Intro::Apology => vec![self.verb(&p.error)],
                    Intro::AfterHours => vec![self.verb(&p.after_hours)],
                };
                let vm = &self.voicemail;
                // 0 means "no silence limit". Telnyx documents 0 as that (and bills transcription
                // for any other value); Twilio does not say what 0 does, so it gets a silence limit
                // no message can reach: the longest message allowed.
                let silence = match (self.provider, vm.silence_timeout_secs) {
                    (Provider::Twilio, 0) => vm.max_length_secs,
                    (_, secs) => secs,
                };
                verbs.extend([
                    self.verb(&p.voicemail),
                    Verb::Record(Record {
                        action: self.urls.voicemail.clone(),
                        max_length_secs: vm.max_length_secs,
                        timeout_secs: silence,
                        finish_on_key: Some(self.voicemail.finish_on_key.clone())
                            .filter(|k| !k.is_empty()),
                        play_beep: self.voicemail.play_beep,
                        recording_status_callback: self.urls.recording_voicemail.clone(),
                    }),
                    // Reached only if the provider skips the Record action (e.g. no audio).
                    self.verb(&p.goodbye),
                    Verb::Hangup,
                ]);
                Response::new(verbs)
            }
            Reply::Screen {
                call,
                round,
                group,
                agent,
                caller,
            } => {
                let name = self
                    .line_names
                    .get(line)
                    .map_or_else(|| line.as_str().to_owned(), Clone::clone);
                let who = super::prompts::spoken_caller(caller.as_str(), self.mask_callers);
                let prompt = match &p.screen {
                    super::Prompt::Say(say) => super::Prompt::Say(Say {
                        text: say.text.replace("{line}", &name).replace("{caller}", &who),
                        ..say.clone()
                    }),
                    other => other.clone(),
                };
                // No key: Twilio falls through to the hangup; Telnyx may instead request the
                // action without digits, which hangs up too.
                Response::new(vec![
                    Verb::Gather(super::Gather {
                        action: self.urls.screen(true, call, *round, *group, agent),
                        timeout_secs: self.dial.screen_timeout_secs,
                        verbs: vec![self.verb(&prompt)],
                    }),
                    Verb::Hangup,
                ])
            }
            Reply::Conference { call, room, lead } => {
                let mut verbs = Vec::new();
                match lead {
                    Lead::Greeting => verbs.push(self.verb(&p.greeting)),
                    Lead::AfterHours => verbs.push(self.verb(&p.after_hours)),
                    Lead::Nothing => {}
                }
                if self.room_record {
                    verbs.push(self.verb(&p.recorded));
                }
                let call_pair = [("call", call.as_str())];
                verbs.push(Verb::Room(super::RoomDial {
                    action: self.urls.conference("left", &call_pair),
                    time_limit_secs: self.dial.time_limit_secs,
                    name: room.to_string(),
                    label: crate::call::conference::CALLER_LABEL.to_owned(),
                    start_on_enter: false,
                    end_on_exit: true,
                    wait_url: Some(self.urls.conference("hold", &[])),
                    status_callback: self.urls.conference("events", &call_pair),
                }));
                // Reached if the provider skips the Dial action: the caller is not left in silence.
                verbs.push(self.verb(&p.goodbye));
                verbs.push(Verb::Hangup);
                Response::new(verbs)
            }
            Reply::Organizer { call, agent, name } => {
                let prompt = self.filled(
                    &p.organizer,
                    &[("{name}", name), ("{line}", &self.line_name(line))],
                );
                let pairs = [("call", call.as_str()), ("agent", agent)];
                // No key: Twilio falls through to the hangup; Telnyx may instead request the
                // action without digits, which hangs up too.
                Response::new(vec![
                    Verb::Gather(super::Gather {
                        action: self.urls.conference("organizer/answer", &pairs),
                        timeout_secs: self.dial.screen_timeout_secs,
                        verbs: vec![prompt],
                    }),
                    Verb::Hangup,
                ])
            }
            Reply::JoinRoom {
                call,
                room,
                agent,
                host,
            } => {
                let call_pair = [("call", call.as_str())];
                Response::new(vec![
                    Verb::Room(super::RoomDial {
                        action: self.urls.conference("organizer/left", &call_pair),
                        time_limit_secs: self.dial.time_limit_secs,
                        name: room.to_string(),
                        label: crate::call::conference::organizer_label(agent),
                        start_on_enter: true,
                        end_on_exit: *host,
                        wait_url: None,
                        status_callback: self.urls.conference("events", &call_pair),
                    }),
                    Verb::Hangup,
                ])
            }
            Reply::Announce { name } => {
                Response::new(vec![self.filled(&p.joining, &[("{name}", name)])])
            }
            // The document ends: the provider connects the agent to the caller.
            Reply::Accept => Response::new(vec![]),
            Reply::TooLate => Response::new(vec![self.verb(&p.screen_taken), Verb::Hangup]),
            Reply::CallerGone => Response::new(vec![self.verb(&p.screen_gone), Verb::Hangup]),
            Reply::Decline => Response::new(vec![Verb::Hangup]),
            Reply::AfterCall => Response::new(vec![self.verb(&p.after_call), Verb::Hangup]),
            Reply::Goodbye => Response::new(vec![self.verb(&p.goodbye), Verb::Hangup]),
            Reply::Hangup => Response::new(vec![Verb::Hangup]),
            Reply::Unavailable => Response::new(vec![self.verb(&p.unavailable), Verb::Hangup]),
            Reply::Closed => Response::new(vec![self.verb(&p.after_hours), Verb::Hangup]),
            Reply::TurnedAway => Response::new(vec![self.verb(&p.turned_away), Verb::Hangup]),
            // First and only: the call is refused before it is answered, so it is not charged.
            Reply::Reject => Response::new(vec![Verb::Reject]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_path_prefix() {
        let url = |s: &str| Url::parse(s).expect("url");
        let urls = Urls::new(&url("https://sb.example/switchboard")).expect("url");
        assert_eq!(
            urls.dial(2, 0),
            "https://sb.example/switchboard/texml/dial?round=2"
        );
        assert_eq!(
            urls.dial(1, 2),
            "https://sb.example/switchboard/texml/dial?round=1&group=2"
        );
        assert_eq!(
            urls.audio("greeting.wav"),
            "https://sb.example/switchboard/audio/greeting.wav"
        );
        let urls = Urls::new(&url("http://localhost:8080")).expect("url");
        assert_eq!(urls.status, "http://localhost:8080/texml/status");
    }
}
