//! The hello service's entry point: settings from the environment, telemetry, then serve
//! until SIGTERM or SIGINT, draining in-flight requests before exiting 0.

use std::process::ExitCode;

use hello::{access_log::AccessLog, config::Settings, startup::Application, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hello: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let log_writer = telemetry::init(settings.log_format, &settings.log_level);
    let access_log = (settings.access_log
        && tracing::enabled!(target: "access", tracing::Level::INFO))
    .then(|| AccessLog::new(log_writer.make(), settings.log_format));
    // Handlers first: a signal that arrives once the port answers must drain, not kill.
    let stop = hello::shutdown::signal();
    let app = match Application::build(settings, access_log).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
