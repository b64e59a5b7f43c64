use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchboard::config::Settings;
use switchboard::startup::Application;

/// Switchboard: serves TeXML to your provider and rings every available agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file overriding the embedded defaults (only the keys it sets change).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    switchboard::telemetry::init(&settings.log);
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
