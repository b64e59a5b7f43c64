//! From the settings to the values the rest of the code runs on: the call core's [`Policy`]
//! (lines, hours, who may call, the provider's limits) and the signature [`Verifier`]. Kept next
//! to the settings, so that building the application stays wiring.

use std::sync::Arc;

use crate::call::policy::{
    called, AfterHours, Anonymous, DialLimits, Gate, LinePolicy, Turnaway, UnknownNumber,
};
use crate::call::routing::Routing;
use crate::call::{Policy, Targets};
use crate::config::{
    AfterHoursAction, AnonymousAction, LineSettings, Provider, Settings, TurnawayAction,
};
use crate::signature::Verifier;
use crate::texml::render::MenuText;
use crate::texml::{Prompts, Renderer, TemplateError, Urls};

impl Settings {
    /// The documents' renderer: the prompts (a mistake in any file refuses the start), each
    /// line's own prompts and menu.
    pub fn renderer(
        &self,
        urls: Urls,
        audio: &crate::audio::AudioDir,
    ) -> Result<Renderer, TemplateError> {
        let prompts = Prompts::load(&self.paths.templates, audio, &|name| urls.audio(name))?;
        let mut line_prompts = Vec::new();
        for line in &self.lines {
            if let Some(path) = &line.prompts {
                let own = Prompts::load_required(path, audio, &|name| urls.audio(name))?;
                line_prompts.push((line.id.clone(), own));
            }
        }
        let renderer = Renderer::new(&self.dial, &self.voicemail, &self.provider, urls, prompts)
            .map_err(|e| TemplateError {
                file: "<documents>".into(),
                line: 0,
                message: format!("the apology document cannot be written: {e}"),
            })?;
        let renderer = line_prompts
            .into_iter()
            .fold(renderer, |r, (line, own)| r.with_line_prompts(line, own));
        let renderer = renderer
            .with_screening(self.line_names(), self.privacy.mask_caller_numbers)
            .with_rooms(self.conference.record, &self.conference.hold_audio);
        Ok(self
            .lines
            .iter()
            .fold(renderer, |r, line| match &line.menu {
                Some(m) => r.with_menu(
                    line.id.clone(),
                    MenuText {
                        prompt: m.prompt.clone(),
                        timeout_secs: m.timeout_secs,
                    },
                ),
                None => r,
            }))
    }

    /// Lines' names by id, for people (Slack, the admin API); the implicit line is "Main line".
    pub fn line_names(&self) -> std::collections::HashMap<crate::domain::LineId, String> {
        match self.lines.is_empty() {
            true => [(crate::domain::LineId::main(), "Main line".to_owned())].into(),
            false => self
                .lines
                .iter()
                .map(|l| (l.id.clone(), l.name.clone()))
                .collect(),
        }
    }

    /// How calls are handled, from the settings; says at start what the provider's limits imply.
    pub fn policy(&self) -> Policy {
        let settings = self;
        let provider = &settings.provider;
        let limits = match provider.kind {
            Provider::Telnyx => DialLimits::default(),
            Provider::Twilio => DialLimits::twilio(provider.twilio_enhanced_sip),
        }
        .with_max_legs(provider.max_legs_per_dial);
        let sip_agents = settings
            .agents
            .iter()
            .filter(|a| matches!(a.endpoint, crate::domain::Endpoint::Sip(_)))
            .count();
        if provider.kind == Provider::Twilio && !provider.twilio_enhanced_sip {
            tracing::warn!(
                sip_agents,
                "Twilio without Enhanced Programmable SIP Features: one <Sip> per <Dial>, so SIP agents \
                 are rung one at a time, sharing each round's ring time; enable the feature in the \
                 Twilio console (Voice > Settings) and set provider.twilio_enhanced_sip = true to ring \
                 them all at once"
            );
        }
        let lines = settings
            .lines
            .iter()
            .map(|l| line_policy(l, settings))
            .collect();
        Policy {
            gate: gate(settings),
            rounds: settings.dial.rounds,
            max_active_calls: settings.limits.max_active_calls,
            limits,
            ring_secs: settings.dial.ring_timeout_secs,
            routing: Routing {
                screen: settings.dial.screen,
                strategy: settings.dial.strategy,
                wrap_up_secs: settings.dial.wrap_up_secs,
            },
            time_limit_secs: settings.dial.time_limit_secs,
            ..Policy::default()
        }
        .with_lines(lines)
    }

    /// The signature checks, with the keys and modes configured.
    pub fn verifier(&self) -> Verifier {
        let settings = self;
        Verifier {
            mode: settings.security.mode,
            voice_mode: settings.security.voice_mode,
            voice_signed: settings.provider.kind == Provider::Twilio,
            telnyx: settings.telnyx.public_key,
            twilio: settings.twilio.auth_token.clone(),
            max_skew_secs: settings.security.max_clock_skew_secs,
            public_base: settings
                .server
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            trust_forwarded: settings.security.trust_forwarded_headers,
            rejected: Default::default(),
        }
    }
}

/// Who may call: `[unknown_number]` and `[blocking]`.
fn gate(settings: &Settings) -> Gate {
    let turnaway = |a: TurnawayAction| match a {
        TurnawayAction::Reject => Turnaway::Reject,
        TurnawayAction::Message => Turnaway::Message,
    };
    let action = settings.unknown_number.action.trim();
    let unknown_number = match action.strip_prefix("line:") {
        Some(id) => Some(UnknownNumber::Line(crate::domain::LineId::new(id))),
        None if action == "message" => Some(UnknownNumber::TurnAway(Turnaway::Message)),
        None if action == "reject" => Some(UnknownNumber::TurnAway(Turnaway::Reject)),
        None => None,
    };
    let b = &settings.blocking;
    Gate {
        unknown_number,
        blocked: b.numbers.iter().map(|n| called(n)).collect(),
        blocked_prefixes: b.prefixes.iter().map(|n| called(n)).collect(),
        blocked_action: turnaway(b.action),
        anonymous: match b.anonymous {
            AnonymousAction::Allow => Anonymous::Allow,
            AnonymousAction::Voicemail => Anonymous::Voicemail,
            AnonymousAction::Reject => Anonymous::Reject,
        },
    }
}

/// One configured line's rules.
fn line_policy(line: &LineSettings, settings: &Settings) -> LinePolicy {
    let after_hours = match line.after_hours {
        AfterHoursAction::Voicemail => AfterHours::Voicemail,
        AfterHoursAction::Message => AfterHours::Message,
        AfterHoursAction::Reject => AfterHours::Reject,
        AfterHoursAction::Forward => match Targets::new(line.after_hours_forward.clone().into()) {
            Some(targets) => AfterHours::Forward(targets),
            None => AfterHours::Voicemail,
        },
    };
    LinePolicy {
        id: line.id.clone(),
        numbers: line.numbers.iter().map(|n| called(n)).collect(),
        schedule: line
            .schedule
            .as_ref()
            .and_then(|name| settings.schedules.get(name))
            .map(|s| Arc::new(s.clone())),
        after_hours,
        menu: line.menu.as_ref().map(|m| m.menu.clone()),
        routing: Routing {
            screen: line.screen.unwrap_or(settings.dial.screen),
            strategy: line.strategy.unwrap_or(settings.dial.strategy),
            wrap_up_secs: line.wrap_up_secs.unwrap_or(settings.dial.wrap_up_secs),
        },
        conference: (line.mode == crate::config::LineMode::Conference).then_some(
            crate::call::policy::ConferenceRules {
                extra_organizers: settings.conference.extra_organizers,
                announce: settings.conference.announce,
                record: settings.conference.record,
            },
        ),
    }
}
