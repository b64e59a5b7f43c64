//! A conference-mode call, played end to end: the caller waits in the room (its hold document is
//! fetched, its join reported), the organizers' calls the server placed through the faked REST
//! API ring, one answers, hears who the call is for and presses 1 (or a voicemail answers and
//! presses nothing; or two press at once), joins the room, the caller hears the announcement,
//! the room is recorded; then the organizer leaves and the caller's Dial action is followed. With
//! nobody answering, the simulator waits for the server to move the caller (the API's call
//! update) and follows it to voicemail.

use std::time::Duration;

use url::Url;

use super::doc::Element;
use super::provider_api::{ApiRequest, PlacedCall};
use super::{Method, Next, Plan, Room, Sim, Walk};

/// How long the simulator waits for the server's requests to the API.
const WAIT: Duration = Duration::from_secs(5);

impl Sim {
    fn caller(&self, sid: &str, status: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AccountSid", "ACsimulator".to_owned()),
            ("CallSid", sid.to_owned()),
            ("From", self.args.from.clone()),
            ("To", self.args.to.clone()),
            ("CallStatus", status.to_owned()),
            ("Direction", "inbound".to_owned()),
        ]
    }

    /// A conference status callback.
    async fn room_event(
        &self,
        cb: &Url,
        sid: &str,
        event: &str,
        label: &str,
        leg: &str,
    ) -> Result<(), String> {
        let params = vec![
            ("AccountSid", "ACsimulator".to_owned()),
            ("ConferenceSid", format!("CF{sid}")),
            ("FriendlyName", "room".to_owned()),
            ("StatusCallbackEvent", event.to_owned()),
            ("ParticipantLabel", label.to_owned()),
            ("CallSid", leg.to_owned()),
        ];
        self.request("room-event", cb, Method::Post, &params)
            .await
            .map(drop)
    }

    /// A status callback of an organizer's call.
    async fn organizer_status(
        &self,
        base: &Url,
        p: &PlacedCall,
        status: &str,
    ) -> Result<(), String> {
        if p.status_callback.is_empty() {
            return Ok(());
        }
        let url = self.resolve(base, &p.status_callback)?;
        let params = vec![
            ("AccountSid", "ACsimulator".to_owned()),
            ("CallSid", p.leg.clone()),
            ("CallStatus", status.to_owned()),
            ("Direction", "outbound-api".to_owned()),
            ("From", self.args.to.clone()),
            ("To", p.to.clone()),
        ];
        self.request("organizer-status", &url, Method::Post, &params)
            .await
            .map(drop)
    }

    /// An organizer's phone answers: their document, then the key (`Some("1")`, or nothing).
    /// Returns the conference they were put in (`Some(label)`), if any.
    async fn organizer_answers(
        &self,
        base: &Url,
        p: &PlacedCall,
        key: Option<&str>,
    ) -> Result<Option<(Element, Url)>, String> {
        let mut params = vec![
            ("AccountSid", "ACsimulator".to_owned()),
            ("CallSid", p.leg.clone()),
            ("CallStatus", "in-progress".to_owned()),
            ("From", self.args.to.clone()),
            ("To", p.to.clone()),
        ];
        let (mut url, mut doc) = self
            .follow("organizer", base, &p.url, Method::Post, &params)
            .await?;
        for _ in 0..4 {
            if let Some(room) = doc
                .children
                .iter()
                .find(|v| v.name == "Dial")
                .and_then(|d| d.children.iter().find(|c| c.name == "Conference"))
            {
                return Ok(Some((room.clone(), url)));
            }
            let Some(gather) = doc.children.iter().find(|v| v.name == "Gather") else {
                return Ok(None);
            };
            let Some(key) = key else {
                // A voicemail box: silence; the document falls through to its hangup.
                return Ok(None);
            };
            let action = gather.attr("action").unwrap_or(url.as_str()).to_owned();
            params.push(("Digits", key.to_owned()));
            (url, doc) = self
                .follow("organizer-answer", &url, &action, Method::Post, &params)
                .await?;
        }
        Ok(None)
    }

    /// The conference `<Dial>` of call `sid` (number `n`), played as `plan` says.
    pub(super) async fn conference(
        &self,
        base: &Url,
        dial: &Element,
        sid: &str,
        n: u64,
        plan: &Plan,
        walk: &mut Walk,
    ) -> Result<Room, String> {
        let Some(api) = &self.api else {
            return Err(format!(
                "call {sid}: a conference-mode line; start the simulator with --provider-api \
                 and point the server's telnyx.api_base_url (or twilio.api_base_url) at it"
            ));
        };
        let room = dial
            .children
            .iter()
            .find(|c| c.name == "Conference")
            .ok_or("no Conference")?;
        if let Some(wait) = room.attr("waitUrl") {
            let hold = self
                .follow("hold", base, wait, Self::method_of(room, "waitMethod"), &[])
                .await?
                .1;
            if !hold.children.iter().any(|v| v.name == "Play") {
                return Err(format!("call {sid}: the hold document plays nothing"));
            }
        }
        let events = match room.attr("statusCallback") {
            Some(cb) => Some(self.resolve(base, cb)?),
            None => None,
        };
        let label = room.attr("participantLabel").unwrap_or("caller").to_owned();
        if let Some(cb) = &events {
            self.room_event(cb, sid, "participant-join", &label, sid)
                .await?;
        }
        // The server places every organizer's call; give it a moment to place them all.
        let mut placed = api.placed(sid, 1, WAIT).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        placed = api.placed(sid, placed.len(), Duration::ZERO).await;
        if placed.is_empty() {
            return Err(format!("call {sid}: no organizer was called"));
        }
        walk.step(format!("room, call {}", placed.len()));
        for p in &placed {
            self.organizer_status(base, p, "initiated").await?;
            self.organizer_status(base, p, "ringing").await?;
        }
        self.linger().await;
        if plan.abandon {
            self.request(
                "status",
                &self.status_url,
                Method::Post,
                &self.caller(sid, "completed"),
            )
            .await?;
            for p in &placed {
                self.organizer_status(base, p, "canceled").await?;
            }
            walk.step("abandoned".into());
            return Ok(Room::Abandoned);
        }
        // Who answers: `--agent` (1-based, the last if fewer) when this is the answered round.
        let answering =
            (plan.answer_round >= 1).then(|| (plan.agent.max(1) - 1).min(placed.len() - 1));
        let mut joined: Option<(&PlacedCall, Element)> = None;
        if let Some(i) = answering {
            let key = (!plan.machine).then_some("1");
            if plan.race && placed.len() > 1 {
                let j = (i + 1) % placed.len();
                let (a, b) = tokio::join!(
                    self.organizer_answers(base, &placed[i], key),
                    self.organizer_answers(base, &placed[j], key)
                );
                let (a, b) = (a?, b?);
                let winners = usize::from(a.is_some()) + usize::from(b.is_some());
                if winners != 1 {
                    return Err(format!("call {sid}: {winners} organizers joined a race"));
                }
                walk.step("race".into());
                joined = match (a, b) {
                    (Some((r, _)), _) => Some((&placed[i], r)),
                    (_, Some((r, _))) => Some((&placed[j], r)),
                    _ => None,
                };
            } else {
                joined = self
                    .organizer_answers(base, &placed[i], key)
                    .await?
                    .map(|(r, _)| (&placed[i], r));
                if plan.machine {
                    walk.step("voicemail box answered".into());
                    self.organizer_status(base, &placed[i], "completed").await?;
                }
            }
        }
        let Some((host, host_room)) = joined else {
            // Nobody takes it: every call rings out; the server moves the caller.
            for (i, p) in placed.iter().enumerate() {
                if Some(i) != answering || !plan.machine {
                    self.organizer_status(base, p, "no-answer").await?;
                }
            }
            let moved = api
                .request(
                    |r| r.path.contains(&format!("/Calls/{sid}")) && r.fields.contains_key("Url"),
                    WAIT,
                )
                .await
                .ok_or(format!(
                    "call {sid}: nobody accepted and the caller was not moved"
                ))?;
            walk.step("moved".into());
            let (url, doc) = self
                .follow(
                    "resume",
                    base,
                    &moved.fields["Url"],
                    Method::Post,
                    &self.caller(sid, "in-progress"),
                )
                .await?;
            return Ok(Room::Next(Box::new(Next {
                url,
                doc,
                answered: false,
                recording: None,
            })));
        };
        walk.step("pressed 1".into());
        let host_label = host_room
            .attr("participantLabel")
            .unwrap_or("organizer")
            .to_owned();
        if let Some(cb) = &events {
            self.room_event(cb, sid, "participant-join", &host_label, &host.leg)
                .await?;
        }
        // The others' calls are ended by the server: they report so.
        for p in placed.iter().filter(|p| p.leg != host.leg) {
            self.organizer_status(base, p, "completed").await?;
        }
        // The announcement, played to the caller.
        let announce = api
            .request(
                |r: &ApiRequest| {
                    r.fields.contains_key("AnnounceUrl") && r.path.contains(&format!("CF{sid}"))
                },
                WAIT,
            )
            .await;
        if let Some(a) = announce {
            let (_, said) = self
                .follow(
                    "announce",
                    base,
                    &a.fields["AnnounceUrl"],
                    Method::Post,
                    &self.caller(sid, "in-progress"),
                )
                .await?;
            let text: Vec<&str> = said
                .children
                .iter()
                .filter(|v| v.name == "Say")
                .map(|v| v.text.as_str())
                .collect();
            walk.step(format!("announced \"{}\"", text.join(" ")));
        }
        // The room's recording, when the server started one.
        let recording = api
            .request(
                |r| {
                    r.method == "POST" && r.path.ends_with(&format!("/Calls/{sid}/Recordings.json"))
                },
                Duration::from_millis(500),
            )
            .await
            .and_then(|r| r.fields.get("RecordingStatusCallback").cloned())
            .map(|cb| self.resolve(base, &cb))
            .transpose()?;
        if recording.is_some() {
            walk.step("recorded".into());
        }
        self.linger().await;
        // The organizer hangs up: they leave, the room ends, the caller's Dial action.
        if let Some(cb) = &events {
            self.room_event(cb, sid, "participant-leave", &host_label, &host.leg)
                .await?;
        }
        self.organizer_status(base, host, "completed").await?;
        let action = dial
            .attr("action")
            .ok_or(format!("call {sid}: the room's Dial has no action"))?;
        let mut params = self.caller(sid, "in-progress");
        params.push(("DialCallStatus", "completed".into()));
        let (url, doc) = self
            .follow(
                "room-left",
                base,
                action,
                Self::method_of(dial, "method"),
                &params,
            )
            .await?;
        let _ = n;
        Ok(Room::Next(Box::new(Next {
            url,
            doc,
            answered: true,
            recording,
        })))
    }
}
