//! The transition's inputs besides the call and the event: the [`Policy`], built once from the
//! settings, and a [`Snapshot`] of the moment, gathered by the call service for each event.

use std::sync::Arc;

use crate::domain::{Agent, Endpoint, LineId, Party};

use super::event::Event;
use super::hours::{self, Override};
use super::routing::{Presences, Routing};
use super::schedule::Schedule;
use super::state::{Call, Phase, Targets};

/// Operators' overrides by line (usually none), as the call service read them for this event.
pub type Overrides = Arc<std::collections::HashMap<LineId, Override>>;

/// What a line does with a call outside its hours.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterHours {
    /// The after-hours prompt, then a voicemail.
    Voicemail,
    /// The after-hours prompt, then ring these once, then a voicemail.
    Forward(Targets),
    /// The after-hours prompt, then hang up.
    Message,
    /// Refuse before answering (`<Reject>`).
    Reject,
}

impl AfterHours {
    /// The action's name in logs and messages.
    pub fn label(&self) -> &'static str {
        match self {
            AfterHours::Voicemail => "voicemail",
            AfterHours::Forward(_) => "forward",
            AfterHours::Message => "message",
            AfterHours::Reject => "reject",
        }
    }
}

/// How a caller who is turned away is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turnaway {
    /// `<Reject>`: not answered, not charged.
    Reject,
    /// A short message, then hang up.
    Message,
}

/// What happens to a call to a number no line lists.
#[derive(Debug, Clone, PartialEq)]
pub enum UnknownNumber {
    /// It is this line's call.
    Line(LineId),
    TurnAway(Turnaway),
}

/// What happens to a caller who hides their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    /// Like any caller (crisis and Code of Conduct lines must be reachable anonymously).
    Allow,
    /// Straight to voicemail, no agent rung.
    Voicemail,
    /// Turned away.
    Reject,
}

/// Who may call at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// `None`: the default line takes it.
    pub unknown_number: Option<UnknownNumber>,
    /// Caller numbers turned away, as [`called`] keys.
    pub blocked: Vec<String>,
    /// Caller number prefixes turned away (`+1900`), as [`called`] keys.
    pub blocked_prefixes: Vec<String>,
    pub blocked_action: Turnaway,
    pub anonymous: Anonymous,
}

impl Default for Gate {
    /// Everyone may call; a number no line lists reaches the default line.
    fn default() -> Gate {
        Gate {
            unknown_number: None,
            blocked: Vec::new(),
            blocked_prefixes: Vec::new(),
            blocked_action: Turnaway::Reject,
            anonymous: Anonymous::Allow,
        }
    }
}

/// Whether a caller hides their number (`anonymous`, `private`, `restricted`, `unknown`, or no
/// digits at all where a number was expected).
pub fn is_anonymous(from: &str) -> bool {
    let f = from.trim().to_ascii_lowercase();
    let user = f
        .strip_prefix("sip:")
        .or_else(|| f.strip_prefix("sips:"))
        .map_or(f.as_str(), |rest| rest.split('@').next().unwrap_or(rest));
    matches!(
        user,
        "" | "anonymous" | "private" | "restricted" | "unknown" | "unavailable"
    )
}

/// Where a menu choice takes the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuChoice {
    /// To another line, as if its number had been called (its hours, its agents; not its menu).
    Line(LineId),
    /// Ring this line's agents.
    Ring,
    /// Straight to voicemail.
    Voicemail,
}

/// A line's menu: a `<Gather>` of one key before anyone rings.
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    /// Key (`0`-`9`, `*`, `#`) → choice.
    pub options: Vec<(char, MenuChoice)>,
    /// Taken after `retries` repeats with no or invalid input.
    pub default: MenuChoice,
    /// How many times the menu is repeated after no or invalid input.
    pub retries: u8,
}

/// What a menu does with the caller's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuStep {
    /// Play the menu again, as this attempt.
    Again(u8),
    Go(MenuChoice),
}

impl Menu {
    /// The choice for what the caller pressed (`None`: nothing, or not one of the options).
    pub fn choice(&self, digits: Option<&str>) -> Option<&MenuChoice> {
        let mut keys = digits?.trim().chars().filter(|c| !c.is_whitespace());
        let key = keys.next()?;
        if keys.next().is_some() {
            return None;
        }
        self.options.iter().find(|(k, _)| *k == key).map(|(_, c)| c)
    }

    /// What input `digits` at attempt `attempt` leads to: the option pressed; after no or
    /// invalid input, the menu again while retries remain, then the default.
    pub fn step(&self, attempt: u8, digits: Option<&str>) -> MenuStep {
        match self.choice(digits) {
            Some(choice) => MenuStep::Go(choice.clone()),
            None if attempt <= self.retries => MenuStep::Again(attempt.saturating_add(1)),
            None => MenuStep::Go(self.default.clone()),
        }
    }
}

/// What happens to an organizer who presses 1 after another organizer took a conference call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtraOrganizers {
    /// Told another organizer took it; their call ends. Calls still ringing are ended as soon
    /// as the first organizer accepts.
    #[default]
    Hangup,
    /// They join the room too (a second organizer); calls still ringing keep ringing.
    Join,
}

/// How a conference-mode line runs its rooms (`[conference]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConferenceRules {
    pub extra_organizers: ExtraOrganizers,
    /// The caller hears "NAME is joining this call" when the first organizer joins.
    pub announce: bool,
    /// The room is recorded from when the first organizer joins.
    pub record: bool,
}

/// One line's rules.
#[derive(Debug, Clone)]
pub struct LinePolicy {
    pub id: LineId,
    /// The called numbers it answers, as [`called`] keys.
    pub numbers: Vec<String>,
    /// `None`: always open.
    pub schedule: Option<Arc<Schedule>>,
    pub after_hours: AfterHours,
    /// Played before ringing, when the line is open.
    pub menu: Option<Menu>,
    /// Who rings in what order, who presses 1 first, how long agents wrap up.
    pub routing: Routing,
    /// Conference mode (`mode = "conference"`): the caller waits in a room and organizers are
    /// called through the REST API. `None`: the `<Dial>` flow.
    pub conference: Option<ConferenceRules>,
}

impl PartialEq for LinePolicy {
    fn eq(&self, other: &LinePolicy) -> bool {
        self.id == other.id
    }
}

/// A called number as a line matches it: a phone number by its digits (`+1 (800) 555-0100` is
/// `18005550100`), a SIP address by its `user@host`, lowercased.
pub fn called(to: &str) -> String {
    let to = to.trim();
    if to.starts_with('+') || to.starts_with(|c: char| c.is_ascii_digit()) {
        return to.chars().filter(char::is_ascii_digit).collect();
    }
    let rest = to
        .strip_prefix("sip:")
        .or_else(|| to.strip_prefix("sips:"))
        .unwrap_or(to);
    rest.split(';').next().unwrap_or(rest).to_ascii_lowercase()
}

/// What one `<Dial>` may hold, by provider. Telnyx rings any number of `<Sip>` and `<Number>`
/// nouns at once; Twilio takes at most ten `<Number>`s per `<Dial>` and, unless the account has
/// Enhanced Programmable SIP Features, one `<Sip>` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DialLimits {
    /// Each `<Sip>` in a `<Dial>` of its own.
    pub one_sip_per_dial: bool,
    /// At most this many `<Number>`s per `<Dial>` (`None`: no limit).
    pub max_numbers: Option<usize>,
    /// At most this many legs of any kind per `<Dial>` (`None`: no limit): the operator's cap for
    /// an account's concurrent-call or dials-per-second limits.
    pub max_legs: Option<usize>,
}

impl DialLimits {
    /// Twilio's limits, with or without Enhanced Programmable SIP Features.
    pub fn twilio(enhanced_sip: bool) -> DialLimits {
        DialLimits {
            one_sip_per_dial: !enhanced_sip,
            max_numbers: Some(10),
            max_legs: None,
        }
    }

    /// These limits, with at most `max` legs per `<Dial>` (0: no cap of our own).
    pub fn with_max_legs(self, max: usize) -> DialLimits {
        DialLimits {
            max_legs: (max > 0).then_some(max),
            ..self
        }
    }

    /// The `<Dial>`s one round rings, in order: every agent once, each group within the limits
    /// (then cut to `max_legs`). SIP agents come first, in roster order, then numbers. One group
    /// (the same list) when nothing limits it.
    pub fn groups(&self, targets: &Targets) -> Vec<Targets> {
        let groups = self.provider_groups(targets);
        let Some(max) = self
            .max_legs
            .filter(|m| groups.iter().any(|g| g.len() > *m))
        else {
            return groups;
        };
        groups
            .iter()
            .flat_map(|g| {
                g.chunks(max.max(1))
                    .filter_map(|c| Targets::new(Arc::from(c.to_vec())))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn provider_groups(&self, targets: &Targets) -> Vec<Targets> {
        let is_sip = |a: &&Agent| matches!(a.endpoint, Endpoint::Sip(_));
        let numbers: Vec<&Agent> = targets.iter().filter(|a| !is_sip(a)).collect();
        let over = self.max_numbers.is_some_and(|max| numbers.len() > max);
        let sips = targets.iter().filter(is_sip).count();
        if !over && !(self.one_sip_per_dial && (sips > 1 || (sips == 1 && !numbers.is_empty()))) {
            return vec![targets.clone()];
        }
        let group = |agents: Vec<Agent>| Targets::new(Arc::from(agents));
        let mut groups = Vec::new();
        let mut first: Vec<Agent> = Vec::new();
        for sip in targets.iter().filter(is_sip) {
            if self.one_sip_per_dial {
                groups.extend(group(vec![sip.clone()]));
            } else {
                first.push(sip.clone());
            }
        }
        let chunk = self.max_numbers.unwrap_or(usize::MAX).max(1);
        let mut numbers = numbers.into_iter().peekable();
        if !first.is_empty() {
            first.extend(numbers.by_ref().take(chunk).cloned());
            groups.extend(group(first));
        }
        while numbers.peek().is_some() {
            groups.extend(group(numbers.by_ref().take(chunk).cloned().collect()));
        }
        groups
    }
}

/// How calls are handled: decided by the operator, fixed while running.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How many times every agent is rung before voicemail.
    pub rounds: u8,
    /// Live calls held at most; a new call past it hears the `unavailable` prompt.
    pub max_active_calls: usize,
    /// The line of a number no line lists (the first configured line, or the implicit one).
    pub line: LineId,
    /// The configured lines; empty: one implicit line, always open.
    pub lines: Arc<[LinePolicy]>,
    /// Who may call at all.
    pub gate: Gate,
    /// What one `<Dial>` may hold (the provider's limits).
    pub limits: DialLimits,
    /// How long one round rings, in seconds: split between its `<Dial>`s when a round needs
    /// several, each at least [`Policy::MIN_RING_SECS`].
    pub ring_secs: u32,
    /// How the implicit line (no lines configured) rings; configured lines have their own.
    pub routing: Routing,
    /// The longest conversation (`<Dial timeLimit>`), in seconds: an agent is busy at most this
    /// long after answering when the call's end is never reported.
    pub time_limit_secs: u32,
}

impl Default for Policy {
    /// The embedded configuration's policy: two rounds of 20 s, 10,000 live calls, one line,
    /// Telnyx's limits (none).
    fn default() -> Policy {
        Policy {
            rounds: 2,
            max_active_calls: 10_000,
            line: LineId::main(),
            lines: Arc::from(Vec::new()),
            gate: Gate::default(),
            limits: DialLimits::default(),
            ring_secs: 20,
            routing: Routing::default(),
            time_limit_secs: 14_400,
        }
    }
}

impl Policy {
    /// The shortest ring both providers accept.
    pub const MIN_RING_SECS: u32 = 5;

    /// How long each of a round's `groups` `<Dial>`s rings: the round's time shared out.
    pub fn ring_secs_each(&self, groups: usize) -> u32 {
        let groups = u32::try_from(groups.max(1)).unwrap_or(u32::MAX);
        (self.ring_secs / groups).max(Self::MIN_RING_SECS)
    }

    /// How `line` rings its agents.
    pub fn routing_of(&self, line: &LineId) -> &Routing {
        self.line_policy(line).map_or(&self.routing, |l| &l.routing)
    }

    /// The `<Dial>`s of one round of `line` ringing `targets` (already in the strategy's order):
    /// one agent each when the strategy rings one at a time, else within the provider's limits.
    /// `forward`: an after-hours forward, rung all at once whatever the strategy.
    pub fn waves(&self, line: &LineId, forward: bool, targets: &Targets) -> Vec<Targets> {
        if !forward && self.routing_of(line).strategy.one_at_a_time() {
            return targets
                .iter()
                .filter_map(|a| Targets::new(Arc::from(vec![a.clone()])))
                .collect();
        }
        self.limits.groups(targets)
    }

    /// How long each of `waves` `<Dial>`s of one round of `line` rings: the round's ring time
    /// shared out, or all of it for each agent rung one at a time.
    pub fn wave_secs(&self, line: &LineId, forward: bool, waves: usize) -> u32 {
        match !forward && self.routing_of(line).strategy.one_at_a_time() {
            true => self.ring_secs.max(Self::MIN_RING_SECS),
            false => self.ring_secs_each(waves),
        }
    }

    /// The conference rules of `line`, when it is in conference mode.
    pub fn conference_of(&self, line: &LineId) -> Option<&ConferenceRules> {
        self.line_policy(line).and_then(|l| l.conference.as_ref())
    }

    /// The waves a conference-mode round of `line` calls `targets` in: one organizer each when
    /// the strategy rings one at a time, else everyone at once, cut to the operator's
    /// `max_legs_per_dial` (the account's concurrent-call and dials-per-second limits). The
    /// provider's `<Dial>` limits do not apply: each organizer is a call of its own.
    pub fn conference_waves(
        &self,
        line: &LineId,
        forward: bool,
        targets: &Targets,
    ) -> Vec<Targets> {
        if !forward && self.routing_of(line).strategy.one_at_a_time() {
            return self.waves(line, forward, targets);
        }
        let limits = DialLimits {
            max_legs: self.limits.max_legs,
            ..DialLimits::default()
        };
        limits.groups(targets)
    }

    pub fn with_routing(self, routing: Routing) -> Policy {
        Policy { routing, ..self }
    }

    pub fn with_limits(self, limits: DialLimits) -> Policy {
        Policy { limits, ..self }
    }

    pub fn with_rounds(self, rounds: u8) -> Policy {
        Policy { rounds, ..self }
    }

    pub fn with_max_active_calls(self, max_active_calls: usize) -> Policy {
        Policy {
            max_active_calls,
            ..self
        }
    }

    /// The line a call to `to` is on: the line that lists it, else `[unknown_number]`'s line,
    /// else the default line.
    pub fn line_for(&self, to: &Party) -> LineId {
        match (self.listed_line(to), &self.gate.unknown_number) {
            (Some(line), _) => line,
            (None, Some(UnknownNumber::Line(line))) => line.clone(),
            (None, _) => self.line.clone(),
        }
    }

    /// The line that lists `to`, if one does (`None` without lines: every number is the line's).
    pub fn listed_line(&self, to: &Party) -> Option<LineId> {
        if self.lines.is_empty() {
            return Some(self.line.clone());
        }
        let key = called(to.as_str());
        self.lines
            .iter()
            .find(|l| l.numbers.contains(&key))
            .map(|l| l.id.clone())
    }

    /// Whether `from` is on the blocked list (its number, or a prefix of it).
    pub fn blocked(&self, from: &Party) -> bool {
        let key = called(from.as_str());
        !key.is_empty()
            && (self.gate.blocked.contains(&key)
                || self
                    .gate
                    .blocked_prefixes
                    .iter()
                    .any(|p| key.starts_with(p.as_str())))
    }

    /// A configured line's rules.
    pub fn line_policy(&self, id: &LineId) -> Option<&LinePolicy> {
        self.lines.iter().find(|l| &l.id == id)
    }

    pub fn with_lines(self, lines: Vec<LinePolicy>) -> Policy {
        let line = lines
            .first()
            .map_or_else(|| self.line.clone(), |l| l.id.clone());
        Policy {
            line,
            lines: lines.into(),
            ..self
        }
    }

    /// The line of a call the store does not hold yet, from the event that would create it.
    pub fn line_of(&self, event: &Event) -> LineId {
        match event {
            Event::DialEnded {
                line: Some(line), ..
            }
            | Event::MenuInput {
                line: Some(line), ..
            } if self.line_policy(line).is_some() => line.clone(),
            Event::Incoming { to, .. }
            | Event::DialEnded { to, .. }
            | Event::MenuInput { to, .. } => self.line_for(to),
            _ => self.line.clone(),
        }
    }

    /// The line whose agents the transition of `event` may ring: the call's, or the line its
    /// menu sends it to.
    pub fn line_needed(&self, call: Option<&Call>, event: &Event) -> LineId {
        let Some(call) = call else {
            return self.line_of(event);
        };
        if let (
            Event::MenuInput {
                attempt, digits, ..
            },
            Phase::Menu { attempt: current },
        ) = (event, &call.phase)
        {
            if attempt == current {
                if let Some(MenuStep::Go(MenuChoice::Line(line))) = self
                    .menu_of(&call.line)
                    .map(|m| m.step(*attempt, digits.as_deref()))
                {
                    return line;
                }
            }
        }
        call.line.clone()
    }

    /// A line's menu, if it has one.
    pub fn menu_of(&self, line: &LineId) -> Option<&Menu> {
        self.line_policy(line).and_then(|l| l.menu.as_ref())
    }

    /// What a line does after hours (the implicit line: voicemail).
    pub fn after_hours_of(&self, line: &LineId) -> &AfterHours {
        self.line_policy(line)
            .map_or(&AfterHours::Voicemail, |l| &l.after_hours)
    }

    /// Whether `line` is open at `now`, and why, given the operators' overrides.
    pub fn status(
        &self,
        line: &LineId,
        manual: &Overrides,
        now: crate::time::Millis,
    ) -> hours::Status {
        hours::status(self.schedule_of(line), manual.get(line), now)
    }

    /// When `line`'s state changes next, if known (for people: it searches the schedule ahead).
    pub fn until(
        &self,
        line: &LineId,
        manual: &Overrides,
        now: crate::time::Millis,
    ) -> Option<crate::time::Millis> {
        hours::until(self.schedule_of(line), manual.get(line), now)
    }

    /// A line's schedule (`None`: always open).
    pub fn schedule_of(&self, line: &LineId) -> Option<&Schedule> {
        self.line_policy(line).and_then(|l| l.schedule.as_deref())
    }

    /// Every line the policy knows, the implicit one when none is configured.
    pub fn line_ids(&self) -> Vec<LineId> {
        match self.lines.is_empty() {
            true => vec![self.line.clone()],
            false => self.lines.iter().map(|l| l.id.clone()).collect(),
        }
    }
}

/// What is true right now, for the call's line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The agents a round starting now would ring (`None`: nobody is free).
    pub available: Option<Targets>,
    /// Live calls held, counted only for a new call (0 for every other event).
    pub live_calls: usize,
    /// Operators' overrides, read for the events that may look at a line's hours.
    pub manual: Overrides,
    /// What each agent is doing (busy, wrapping up, away; when they last answered or hung up),
    /// read for the events that may ring.
    pub presence: Presences,
}

impl Snapshot {
    /// `available` would ring, nothing else to say.
    pub fn ringing(available: Option<Targets>) -> Snapshot {
        Snapshot {
            available,
            ..Snapshot::default()
        }
    }
}
