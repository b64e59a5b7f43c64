//! A TeXML/TwiML document as a simple tree, read with quick-xml: the simulator only needs element
//! names, attributes, text and children.

use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a document; its root must be `<Response>`.
pub fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err("content after the root element".into());
            }
            Event::Start(start) => stack.push(element(&start)?),
            Event::Empty(start) => {
                let el = element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    let t = text.unescape().map_err(|e| format!("bad text: {e}"))?;
                    top.text.push_str(t.trim());
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(String::from_utf8_lossy(&data.into_inner()).trim());
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    let root = root.ok_or("empty document")?;
    if root.name != "Response" {
        return Err(format!("the root is <{}>, not <Response>", root.name));
    }
    Ok(root)
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_become_trees() {
        let doc = parse(
            r#"<?xml version="1.0"?><Response><Say voice="alice">Hi &amp; bye</Say>
               <Dial action="/a?x=1&amp;y=2"><Sip>sip:a@b</Sip><Number>+1</Number></Dial><Hangup/></Response>"#,
        )
        .expect("parses");
        let names: Vec<_> = doc.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Say", "Dial", "Hangup"]);
        assert_eq!(doc.children[0].text, "Hi & bye");
        assert_eq!(doc.children[1].attr("action"), Some("/a?x=1&y=2"));
        assert_eq!(doc.children[1].children.len(), 2);
        assert!(parse("<Other/>").is_err());
        assert!(parse("<Response><Say>").is_err());
        assert!(parse("not xml at all <<<").is_err());
    }
}
