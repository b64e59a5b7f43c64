//! From the call's [`Reply`] to a TeXML document: which prompts, which Dial, which URLs.

use url::Url;

use super::prompts::Prompts;
use super::{Dial, DialNoun, DialSettings, Record, RecordMode, Response, Verb, VoicemailSettings};
use crate::call::{Intro, Reply};

/// The absolute URLs written into documents, built once from `server.public_url`.
#[derive(Debug, Clone)]
pub struct Urls {
    base: Url,
    dial: String,
    voicemail: String,
    status: String,
    recording_voicemail: String,
    recording_conversation: String,
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
            voicemail: abs("texml/voicemail")?,
            status: abs("texml/status")?,
            recording_voicemail: abs("texml/recording?kind=voicemail")?,
            recording_conversation: abs("texml/recording?kind=conversation")?,
            base,
        })
    }

    /// The Dial action of `round`: the round rides along so a late or repeated action is known.
    pub fn dial(&self, round: u8) -> String {
        format!("{}?round={round}", self.dial)
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

/// Renders replies with the configured prompts and settings.
pub struct Renderer {
    urls: Urls,
    dial: DialSettings,
    voicemail: VoicemailSettings,
    prompts: Prompts,
    /// The apology document, rendered at start so that a failure while rendering can still answer
    /// the caller with something valid.
    fallback: Vec<u8>,
}

impl Renderer {
    pub fn new(
        dial: &DialSettings,
        voicemail: &VoicemailSettings,
        urls: Urls,
        prompts: Prompts,
    ) -> std::io::Result<Renderer> {
        let mut renderer = Renderer {
            urls,
            dial: dial.clone(),
            voicemail: voicemail.clone(),
            prompts,
            fallback: Vec::new(),
        };
        renderer.fallback = renderer
            .document(&Reply::Voicemail {
                intro: Intro::Apology,
            })
            .to_xml()?;
        Ok(renderer)
    }

    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The apology document: sorry, then take a message.
    pub fn fallback(&self) -> &[u8] {
        &self.fallback
    }

    /// The document as bytes; the apology document if writing it fails.
    pub fn render(&self, reply: &Reply) -> Vec<u8> {
        match self.document(reply).to_xml() {
            Ok(xml) => xml,
            Err(e) => {
                tracing::error!(error = %e, "rendering a document failed; answering with the apology");
                self.fallback.clone()
            }
        }
    }

    pub fn document(&self, reply: &Reply) -> Response {
        let p = &self.prompts;
        match reply {
            Reply::Ring {
                round,
                targets,
                caller,
            } => {
                let lead = if *round <= 1 { &p.greeting } else { &p.busy };
                let nouns = targets
                    .iter()
                    .map(|agent| DialNoun {
                        endpoint: agent.endpoint.clone(),
                        status_callback: self.urls.status.clone(),
                    })
                    .collect();
                let record = self.dial.record;
                let dial = Dial {
                    action: self.urls.dial(*round),
                    timeout_secs: self.dial.ring_timeout_secs,
                    time_limit_secs: self.dial.time_limit_secs,
                    record,
                    recording_status_callback: (record != RecordMode::DoNotRecord)
                        .then(|| self.urls.recording_conversation.clone()),
                    from_display_name: p
                        .display_name
                        .as_ref()
                        .map(|name| name.render(caller.as_str())),
                    nouns,
                };
                Response::new(vec![lead.verb(), Verb::Dial(dial)])
            }
            Reply::Voicemail { intro } => {
                let mut verbs = match intro {
                    Intro::Greeting => vec![p.greeting.verb()],
                    Intro::PromptOnly => vec![],
                    Intro::Apology => vec![p.error.verb()],
                };
                verbs.extend([
                    p.voicemail.verb(),
                    Verb::Record(Record {
                        action: self.urls.voicemail.clone(),
                        max_length_secs: self.voicemail.max_length_secs,
                        timeout_secs: self.voicemail.silence_timeout_secs,
                        finish_on_key: Some(self.voicemail.finish_on_key.clone())
                            .filter(|k| !k.is_empty()),
                        play_beep: self.voicemail.play_beep,
                        recording_status_callback: self.urls.recording_voicemail.clone(),
                    }),
                    // Reached only if the provider skips the Record action (e.g. no audio).
                    p.goodbye.verb(),
                    Verb::Hangup,
                ]);
                Response::new(verbs)
            }
            Reply::AfterCall => Response::new(vec![p.after_call.verb(), Verb::Hangup]),
            Reply::Goodbye => Response::new(vec![p.goodbye.verb(), Verb::Hangup]),
            Reply::Hangup => Response::new(vec![Verb::Hangup]),
            Reply::Unavailable => Response::new(vec![p.unavailable.verb(), Verb::Hangup]),
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
            urls.dial(2),
            "https://sb.example/switchboard/texml/dial?round=2"
        );
        assert_eq!(
            urls.audio("greeting.wav"),
            "https://sb.example/switchboard/audio/greeting.wav"
        );
        let urls = Urls::new(&url("http://localhost:8080")).expect("url");
        assert_eq!(urls.status, "http://localhost:8080/texml/status");
    }
}
