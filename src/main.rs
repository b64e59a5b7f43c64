use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchboard::config::Settings;
use switchboard::startup::Application;
use switchboard::time::Clock;

/// Switchboard: serves TeXML to your provider and rings every available agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file overriding the embedded defaults (only the keys it sets change).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Play calls against a TeXML/TwiML server as the provider would (no phone needed).
    Simulate(switchboard::simulate::SimulateArgs),
    /// See and steer a running server's lines through its admin API (open, close, why).
    Lines(switchboard::lines::cli::LinesArgs),
    /// See a running server's agents (free, on a call, wrap-up, away) and set one away or back.
    Agents(switchboard::agents::cli::AgentsArgs),
    /// The call history, from the ledger the configuration names (a table, or --csv).
    Calls(switchboard::ledger::cli::CallsArgs),
    /// Per line and agent: offered, answered, abandoned, answer rate, ASA, service level, talk.
    Report(switchboard::ledger::cli::ReportArgs),
    /// The recordings archive: list, or copy out (checked against their SHA-256).
    Recordings(switchboard::ledger::cli::RecordingsArgs),
    /// Reads a password on standard input and prints its Argon2 hash for [[dashboard.users]].
    HashPassword,
}

/// `switchboard hash-password`: the first line of standard input (without its line end).
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("switchboard hash-password: {e}");
        return ExitCode::from(1);
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.chars().count() < 8 {
        eprintln!(
            "switchboard hash-password: give a password of at least 8 characters on standard input"
        );
        return ExitCode::from(2);
    }
    match switchboard::dashboard::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard hash-password: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs a command that prints a table (`lines`, `agents`, `calls`, `report`).
fn printed<F>(tool: &str, run: F) -> ExitCode
where
    F: std::future::Future<Output = Result<String, String>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let done = match runtime {
        Ok(rt) => rt.block_on(run),
        Err(e) => Err(e.to_string()),
    };
    match done {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard {tool}: {e}");
            ExitCode::from(1)
        }
    }
}

fn simulate(args: switchboard::simulate::SimulateArgs) -> ExitCode {
    let json = args.json.clone();
    let trace = args.trace;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard simulate: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(switchboard::simulate::run(args)) {
        Ok(report) => {
            if trace {
                for line in &report.trace {
                    println!("{line}");
                }
            }
            print!("{}", report.render());
            if let Some(path) = json {
                let written = serde_json::to_string_pretty(&report)
                    .map_err(|e| e.to_string())
                    .and_then(|j| std::fs::write(&path, j).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    eprintln!("switchboard simulate: --json {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            if report.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("switchboard simulate: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Simulate(args)) => return simulate(args),
        Some(Command::Lines(args)) => return printed("lines", switchboard::lines::cli::run(args)),
        Some(Command::Agents(args)) => {
            return printed("agents", switchboard::agents::cli::run(args))
        }
        Some(Command::HashPassword) => return hash_password(),
        _ => {}
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    let now = switchboard::time::SystemClock.now_ms();
    match cli.command {
        Some(Command::Calls(args)) => {
            return printed("calls", async move {
                switchboard::ledger::cli::run(&settings, args, now).await
            })
        }
        Some(Command::Report(args)) => {
            return printed("report", async move {
                switchboard::ledger::cli::report(&settings, args, now).await
            })
        }
        Some(Command::Recordings(args)) => {
            return printed("recordings", async move {
                switchboard::ledger::cli::recordings(&settings, args, now).await
            })
        }
        _ => {}
    }
    let _logs = switchboard::telemetry::init(&settings.log);
    let served = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await?;
        Ok::<_, anyhow::Error>(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::from(1)
        }
    }
}
