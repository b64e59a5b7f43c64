//! `[dashboard]`: who may see the live dashboard, and how they sign in. Users come from
//! `[[dashboard.users]]` and from `dashboard.users_file` (a Kubernetes Secret mounted as a file),
//! each with a PHC-format Argon2 hash (`switchboard hash-password`); or an authenticating proxy in
//! front names the user in a header, trusted only from the proxy's addresses.

use std::path::PathBuf;

use argon2::password_hash::phc::PasswordHash;
use serde::Deserialize;

use crate::config::Problems;

/// What a signed-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees the page (a wall screen).
    #[default]
    Viewer,
    /// Also closes and opens lines and sets agents away or available.
    Supervisor,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
        }
    }
}

/// One user of the page.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), checked at start.
    pub password_hash: String,
    pub role: Role,
}

/// Signing in through an authenticating proxy (oauth2-proxy).
#[derive(Debug, Clone)]
pub struct ProxyAuth {
    /// The header naming the user (`X-Forwarded-Email`).
    pub header: actix_web::http::header::HeaderName,
    /// Requests from these addresses only; from anywhere else the header is ignored.
    pub from: Vec<ipnet::IpNet>,
    /// Users (as the header names them) who may act; everyone else only sees.
    pub supervisors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub users: Vec<User>,
    pub proxy: Option<ProxyAuth>,
    /// A comment on idle streams this often, so proxies and load balancers keep them open.
    pub heartbeat_secs: u64,
    /// When each line's day starts (in its time zone), for the "today" figures.
    pub daily_reset: jiff::civil::Time,
    /// Voicemails listed.
    pub recent_voicemails: u32,
}

impl DashboardSettings {
    /// Whether anyone can sign in: without users or a proxy the dashboard is off.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || self.proxy.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_hash: String,
    #[serde(default)]
    role: Role,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDashboard {
    #[serde(default)]
    users: Vec<RawUser>,
    users_file: String,
    proxy_header: String,
    proxy_from: Vec<String>,
    proxy_supervisors: Vec<String>,
    heartbeat_secs: u64,
    daily_reset: String,
    recent_voicemails: u32,
}

/// A user's name as it may appear: printable, no `:` (Basic auth splits on the first one).
fn good_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.contains(':')
        && !name.chars().any(char::is_control)
}

/// `hash` is a PHC string of an Argon2 variant.
fn good_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("is not a PHC hash ({e})"))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Ok(()),
        other => Err(format!(
            "is a `{other}` hash; an Argon2 one is needed (switchboard hash-password)"
        )),
    }
}

impl RawDashboard {
    pub(crate) fn parse(self, p: &mut Problems) -> DashboardSettings {
        let mut users = Vec::new();
        for (i, u) in self.users.into_iter().enumerate() {
            let key = format!("dashboard.users[{i}]");
            push_user(&mut users, u.name, u.password_hash, u.role, &key, p);
        }
        let file = self.users_file.trim();
        if !file.is_empty() {
            read_users_file(&PathBuf::from(file), &mut users, p);
        }
        let mut names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            p.check(
                false,
                "dashboard.users",
                &format!("`{}` is there twice", w[0]),
            );
        }
        let proxy = match self.proxy_header.trim() {
            "" => None,
            header => {
                let name = actix_web::http::header::HeaderName::from_bytes(header.as_bytes());
                let mut from = Vec::new();
                for (i, cidr) in self.proxy_from.iter().enumerate() {
                    let parsed = cidr.trim().parse::<ipnet::IpNet>().or_else(|_| {
                        cidr.trim()
                            .parse::<std::net::IpAddr>()
                            .map(ipnet::IpNet::from)
                    });
                    if let Some(net) = p.take(parsed, &format!("dashboard.proxy_from[{i}]"), |_| {
                        "must be an address or a network (127.0.0.1, 10.0.0.0/8, ::1)".into()
                    }) {
                        from.push(net);
                    }
                }
                p.check(
                    !from.is_empty(),
                    "dashboard.proxy_from",
                    "must name the proxy's addresses when proxy_header is set",
                );
                p.take(name, "dashboard.proxy_header", |_| {
                    "must be a header name (X-Forwarded-Email)".into()
                })
                .map(|header| ProxyAuth {
                    header,
                    from,
                    supervisors: self.proxy_supervisors.clone(),
                })
            }
        };
        p.within(self.heartbeat_secs, 1..=300, "dashboard.heartbeat_secs");
        p.within(
            self.recent_voicemails,
            0..=100,
            "dashboard.recent_voicemails",
        );
        let daily_reset = p
            .take(
                self.daily_reset.trim().parse::<jiff::civil::Time>(),
                "dashboard.daily_reset",
                |_| "must be a time of day (00:00, 07:30)".into(),
            )
            .unwrap_or(jiff::civil::Time::midnight());
        DashboardSettings {
            users,
            proxy,
            heartbeat_secs: self.heartbeat_secs,
            daily_reset,
            recent_voicemails: self.recent_voicemails,
        }
    }
}

fn push_user(
    users: &mut Vec<User>,
    name: String,
    hash: String,
    role: Role,
    key: &str,
    p: &mut Problems,
) {
    let name = name.trim().to_owned();
    let hash = hash.trim().to_owned();
    p.check(
        good_name(&name),
        &format!("{key}.name"),
        "must be 1 to 128 printable characters without `:`",
    );
    if let Err(why) = good_hash(&hash) {
        p.check(false, &format!("{key}.password_hash"), &why);
        return;
    }
    users.push(User {
        name,
        password_hash: hash,
        role,
    });
}

/// `name:hash` or `name:hash:role` per line; `#` comments and blank lines are skipped.
fn read_users_file(path: &std::path::Path, users: &mut Vec<User>, p: &mut Problems) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            p.check(
                false,
                "dashboard.users_file",
                &format!("{}: {e}", path.display()),
            );
            return;
        }
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = format!("dashboard.users_file line {}", n + 1);
        let mut parts = line.split(':');
        let (name, hash) = (parts.next().unwrap_or_default(), parts.next());
        let role = match parts.next().map(str::trim) {
            None | Some("") | Some("viewer") => Some(Role::Viewer),
            Some("supervisor") => Some(Role::Supervisor),
            Some(_) => None,
        };
        match (hash, role) {
            (Some(hash), Some(role)) => {
                push_user(users, name.to_owned(), hash.to_owned(), role, &key, p)
            }
            (None, _) => p.check(false, &key, "must be name:hash[:role]"),
            (_, None) => p.check(false, &key, "role must be viewer or supervisor"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$qpQ3tMZrCFmZbE2zyUSnHq6kHzumgBPsMewZ1z7NJw0";

    fn raw() -> RawDashboard {
        RawDashboard {
            users: vec![],
            users_file: String::new(),
            proxy_header: String::new(),
            proxy_from: vec!["127.0.0.1".into(), "::1/128".into()],
            proxy_supervisors: vec![],
            heartbeat_secs: 15,
            daily_reset: "00:00".into(),
            recent_voicemails: 10,
        }
    }

    #[test]
    fn no_users_and_no_proxy_is_off() {
        let mut p = Problems::default();
        let s = raw().parse(&mut p);
        assert!(p.0.is_empty(), "{:?}", p.0);
        assert!(!s.enabled());
    }

    #[test]
    fn users_need_argon2_hashes_and_distinct_names() {
        let mut p = Problems::default();
        let mut r = raw();
        r.users = vec![
            RawUser {
                name: "ada".into(),
                password_hash: HASH.into(),
                role: Role::Supervisor,
            },
            RawUser {
                name: "ada".into(),
                password_hash: HASH.into(),
                role: Role::Viewer,
            },
            RawUser {
                name: "bob".into(),
                password_hash: "hunter2".into(),
                role: Role::Viewer,
            },
            RawUser {
                name: "eve:x".into(),
                password_hash: "$2b$12$abcdefghijklmnopqrstuu5a3kIwY5pWbQwDqv8fQtC1lUaVv3bW".into(),
                role: Role::Viewer,
            },
        ];
        let s = raw_parse(r, &mut p);
        let problems = p.0.join("\n");
        assert!(
            problems.contains("dashboard.users[2].password_hash: is not a PHC hash"),
            "{problems}"
        );
        assert!(problems.contains("dashboard.users[3].name"), "{problems}");
        assert!(problems.contains("`ada` is there twice"), "{problems}");
        assert!(s.enabled());
    }

    fn raw_parse(r: RawDashboard, p: &mut Problems) -> DashboardSettings {
        r.parse(p)
    }

    #[test]
    fn a_users_file_has_a_user_a_line() {
        let dir = std::env::temp_dir().join(format!("sb-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        std::fs::write(
            &file,
            format!("# the team\nada:{HASH}:supervisor\n\nbob:{HASH}\ncid:{HASH}:king\n"),
        )
        .unwrap();
        let mut r = raw();
        r.users_file = file.display().to_string();
        let mut p = Problems::default();
        let s = r.parse(&mut p);
        assert_eq!(
            p.0,
            vec!["dashboard.users_file line 5: role must be viewer or supervisor"]
        );
        let got: Vec<_> = s.users.iter().map(|u| (u.name.as_str(), u.role)).collect();
        assert_eq!(got, vec![("ada", Role::Supervisor), ("bob", Role::Viewer)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_proxy_header_needs_the_proxys_addresses() {
        let mut r = raw();
        r.proxy_header = "X-Forwarded-Email".into();
        r.proxy_from = vec!["10.0.0.0/8".into(), "nowhere".into()];
        let mut p = Problems::default();
        let s = r.parse(&mut p);
        assert_eq!(p.0, vec!["dashboard.proxy_from[1]: must be an address or a network (127.0.0.1, 10.0.0.0/8, ::1)"]);
        let proxy = s.proxy.expect("proxy");
        assert_eq!(proxy.header.as_str(), "x-forwarded-email");
        assert_eq!(proxy.from.len(), 1);
        // No addresses: refused, not "trust everyone" (nor loopback by default).
        let mut r = raw();
        r.proxy_header = "X-Forwarded-Email".into();
        r.proxy_from = vec![];
        let mut p = Problems::default();
        r.parse(&mut p);
        assert_eq!(
            p.0,
            vec!["dashboard.proxy_from: must name the proxy's addresses when proxy_header is set"]
        );
    }
}
