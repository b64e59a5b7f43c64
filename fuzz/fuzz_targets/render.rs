//! Any text as a caller's number, rendered into every document (the whisper a screened agent
//! hears too): the XML is always well-formed and
//! the text comes back out as data, never as markup.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use switchboard::audio::AudioDir;
use switchboard::call::{Intro, Lead, Reply, Targets};
use switchboard::config::Settings;
use switchboard::domain::{Agent, CallSid, Endpoint, Party, Screen};
use switchboard::texml::prompts::{display_name_char, Prompts, EMBEDDED, MAX_DISPLAY_NAME};
use switchboard::texml::display_name_text;
use switchboard::texml::{Renderer, Urls};

fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| {
        let settings = Settings::demo().expect("demo settings");
        let urls = Urls::new(&"https://sb.example".parse().expect("url")).expect("url");
        let audio = AudioDir::default();
        let prompts = Prompts::parse("prompts.toml", EMBEDDED, &audio, &|n| urls.audio(n))
            .expect("templates");
        Renderer::new(&settings.dial, &settings.voicemail, &settings.provider, urls, prompts).expect("renderer")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(caller) = Party::parse(&text) else {
        return;
    };
    let ada = Agent::new("Ada", Endpoint::sip("sip:ada@x.example").expect("sip")).expect("agent");
    let targets = Targets::new(Arc::from(vec![ada])).expect("one agent");
    let replies = [
        Reply::Ring {
            call: CallSid::parse("CA-fuzz").expect("sid"),
            round: 1,
            group: 0,
            targets,
            caller: caller.clone(),
            ring_secs: 20,
            lead: Lead::Greeting,
            screen: Screen::Always,
        },
        Reply::Screen {
            call: CallSid::parse("CA-fuzz").expect("sid"),
            round: 1,
            group: 0,
            agent: "ada".into(),
            caller: caller.clone(),
        },
        Reply::Accept,
        Reply::TooLate,
        Reply::CallerGone,
        Reply::Decline,
        Reply::Menu { attempt: 2 },
        Reply::Closed,
        Reply::TurnedAway,
        Reply::Reject,
        Reply::Voicemail { intro: Intro::Apology },
        Reply::AfterCall,
        Reply::Goodbye,
        Reply::Hangup,
        Reply::Unavailable,
    ];
    for reply in &replies {
        let xml = renderer().render(reply);
        let xml = std::str::from_utf8(&xml).expect("UTF-8");
        let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
        if let Some(dial) = doc.descendants().find(|n| n.has_tag_name("Dial")) {
            // Telnyx's rule holds whatever the caller sent; nothing left means no attribute.
            let expected: String = display_name_text(caller.as_str()).chars().take(MAX_DISPLAY_NAME).collect();
            let shown = dial.attribute("fromDisplayName").unwrap_or("");
            assert_eq!(shown, expected.trim());
            assert!(shown.chars().all(display_name_char));
        }
    }
});
