//! `deckhand`: the operator's view of deckhand's state, and its levers.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let sdk = deckhand_cli::load_sdk(&args).await;
    let mut out = std::io::stdout().lock();
    match deckhand_cli::run(args, &sdk, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(deckhand_cli::CliError::Usage(e)) => {
            // clap formats help, version and usage errors itself.
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("deckhand: {e}");
            ExitCode::FAILURE
        }
    }
}
