//! The one writer of TeXML: every attribute value and text node goes through quick-xml's escaping.

use std::io;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::{Dial, Record, Response, RoomDial, Verb, LEG_EVENTS, ROOM_EVENTS};
use crate::domain::Endpoint;

type W = Writer<Vec<u8>>;

pub(super) fn write(response: &Response) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::with_capacity(1024), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    if response.verbs.is_empty() {
        w.write_event(Event::Empty(BytesStart::new("Response")))?;
    } else {
        w.write_event(Event::Start(BytesStart::new("Response")))?;
        for verb in &response.verbs {
            write_verb(&mut w, verb)?;
        }
        w.write_event(Event::End(BytesEnd::new("Response")))?;
    }
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

fn text_element(w: &mut W, start: BytesStart<'_>, text: &str) -> io::Result<()> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn write_verb(w: &mut W, verb: &Verb) -> io::Result<()> {
    match verb {
        Verb::Say(say) => {
            let mut el = BytesStart::new("Say");
            if let Some(voice) = &say.voice {
                el.push_attribute(("voice", voice.as_str()));
            }
            if let Some(language) = &say.language {
                el.push_attribute(("language", language.as_str()));
            }
            text_element(w, el, &say.text)
        }
        Verb::Play(play) => text_element(w, BytesStart::new("Play"), &play.url),
        Verb::Dial(dial) => write_dial(w, dial),
        Verb::Record(record) => write_record(w, record),
        Verb::Gather(gather) => {
            let timeout = gather.timeout_secs.to_string();
            let mut el = BytesStart::new("Gather");
            el.push_attribute(("action", gather.action.as_str()));
            el.push_attribute(("input", "dtmf"));
            el.push_attribute(("numDigits", "1"));
            el.push_attribute(("timeout", timeout.as_str()));
            w.write_event(Event::Start(el))?;
            for verb in &gather.verbs {
                write_verb(w, verb)?;
            }
            w.write_event(Event::End(BytesEnd::new("Gather")))
        }
        Verb::Redirect(url) => {
            let mut el = BytesStart::new("Redirect");
            el.push_attribute(("method", "POST"));
            text_element(w, el, url)
        }
        Verb::Room(room) => write_room(w, room),
        Verb::Loop(url) => {
            let mut el = BytesStart::new("Play");
            el.push_attribute(("loop", "0"));
            text_element(w, el, url)
        }
        Verb::Hangup => w.write_event(Event::Empty(BytesStart::new("Hangup"))),
        Verb::Reject => {
            let mut el = BytesStart::new("Reject");
            el.push_attribute(("reason", "rejected"));
            w.write_event(Event::Empty(el))
        }
    }
}

fn write_dial(w: &mut W, dial: &Dial) -> io::Result<()> {
    let timeout = dial.timeout_secs.to_string();
    let time_limit = dial.time_limit_secs.to_string();
    let mut el = BytesStart::new("Dial");
    el.push_attribute(("action", dial.action.as_str()));
    el.push_attribute(("method", "POST"));
    el.push_attribute(("timeout", timeout.as_str()));
    el.push_attribute(("timeLimit", time_limit.as_str()));
    el.push_attribute(("record", dial.record.as_str()));
    if let Some(cb) = &dial.recording_status_callback {
        el.push_attribute(("recordingStatusCallback", cb.as_str()));
        el.push_attribute(("recordingStatusCallbackMethod", "POST"));
    }
    if let Some(name) = &dial.from_display_name {
        el.push_attribute(("fromDisplayName", name.as_str()));
    }
    if let Some(number) = &dial.caller_id {
        el.push_attribute(("callerId", number.as_str()));
    }
    w.write_event(Event::Start(el))?;
    for noun in &dial.nouns {
        let (tag, target) = match &noun.endpoint {
            Endpoint::Sip(uri) => ("Sip", uri),
            Endpoint::Number(number) => ("Number", number),
        };
        let mut el = BytesStart::new(tag);
        el.push_attribute(("statusCallback", noun.status_callback.as_str()));
        el.push_attribute(("statusCallbackEvent", LEG_EVENTS));
        el.push_attribute(("statusCallbackMethod", "POST"));
        if let Some(url) = &noun.url {
            el.push_attribute(("url", url.as_str()));
            el.push_attribute(("method", "POST"));
        }
        text_element(w, el, target)?;
    }
    w.write_event(Event::End(BytesEnd::new("Dial")))
}

fn write_room(w: &mut W, room: &RoomDial) -> io::Result<()> {
    let time_limit = room.time_limit_secs.to_string();
    let flag = |b: bool| if b { "true" } else { "false" };
    let mut el = BytesStart::new("Dial");
    el.push_attribute(("action", room.action.as_str()));
    el.push_attribute(("method", "POST"));
    el.push_attribute(("timeLimit", time_limit.as_str()));
    w.write_event(Event::Start(el))?;
    let mut el = BytesStart::new("Conference");
    el.push_attribute(("participantLabel", room.label.as_str()));
    el.push_attribute(("beep", "false"));
    el.push_attribute(("startConferenceOnEnter", flag(room.start_on_enter)));
    el.push_attribute(("endConferenceOnExit", flag(room.end_on_exit)));
    if let Some(url) = &room.wait_url {
        el.push_attribute(("waitUrl", url.as_str()));
        el.push_attribute(("waitMethod", "POST"));
    }
    // The room is recorded through the REST API (the caller's call, from when the first
    // organizer joins), so that an operator can stop and start it.
    el.push_attribute(("record", "do-not-record"));
    el.push_attribute(("statusCallback", room.status_callback.as_str()));
    el.push_attribute(("statusCallbackMethod", "POST"));
    el.push_attribute(("statusCallbackEvent", ROOM_EVENTS));
    text_element(w, el, &room.name)?;
    w.write_event(Event::End(BytesEnd::new("Dial")))
}

fn write_record(w: &mut W, record: &Record) -> io::Result<()> {
    let max_length = record.max_length_secs.to_string();
    let timeout = record.timeout_secs.to_string();
    let mut el = BytesStart::new("Record");
    el.push_attribute(("action", record.action.as_str()));
    el.push_attribute(("method", "POST"));
    el.push_attribute(("maxLength", max_length.as_str()));
    el.push_attribute(("timeout", timeout.as_str()));
    if let Some(key) = &record.finish_on_key {
        el.push_attribute(("finishOnKey", key.as_str()));
    }
    el.push_attribute(("playBeep", if record.play_beep { "true" } else { "false" }));
    el.push_attribute((
        "recordingStatusCallback",
        record.recording_status_callback.as_str(),
    ));
    el.push_attribute(("recordingStatusCallbackMethod", "POST"));
    w.write_event(Event::Empty(el))
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn hostile_text_is_escaped_not_interpreted() {
        let doc = Response::new(vec![Verb::Say(Say {
            text: r#"</Say><Hangup/> & "quotes" 'too'"#.into(),
            voice: Some(r#"a"b"#.into()),
            language: None,
        })]);
        let xml = String::from_utf8(doc.to_xml().expect("xml")).expect("utf8");
        assert!(xml.contains("&lt;/Say&gt;&lt;Hangup/&gt; &amp;"), "{xml}");
        assert!(xml.contains(r#"voice="a&quot;b""#), "{xml}");
        let parsed = roxmltree::Document::parse(&xml).expect("well-formed");
        let say = parsed.root_element().first_element_child().expect("say");
        assert_eq!(say.text(), Some(r#"</Say><Hangup/> & "quotes" 'too'"#));
        assert_eq!(
            parsed
                .root_element()
                .children()
                .filter(|n| n.is_element())
                .count(),
            1
        );
    }

    #[test]
    fn an_empty_response_is_self_closing() {
        let xml = Response::default().to_xml().expect("xml");
        assert_eq!(
            String::from_utf8(xml).expect("utf8"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response/>\n"
        );
    }
}
