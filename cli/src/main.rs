//! `deckhand`: the operator's view of deckhand's state, and its levers.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let sdk = deckhand_cli::load_sdk(&args).await;
    let mut out = std::io::stdout().lock();
    let result = deckhand_cli::run(args, &sdk, &mut out).await;
    match &result {
        Ok(()) => {}
        // clap formats help, version and usage errors itself.
        Err(deckhand_cli::CliError::Usage(e)) => {
            let _ = e.print();
        }
        Err(e) => eprintln!("deckhand: {e}"),
    }
    ExitCode::from(deckhand_cli::exit_status(&result))
}
