//! What Lambda receives and starts: each function's binary as built, stripped and zipped, and
//! its cold start (process start to its first `/invocation/next`).

use std::path::Path;
use std::process::Command;

use crate::table::{Row, Table};
use crate::{Args, FUNCTIONS, Function, binary, median};

pub async fn cold_starts(args: &Args, table: &mut Table) {
    // No fleet needed: the function starts, then asks for its first invocation.
    let env: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", "deckhand"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("DECKHAND_TABLE", "deckhand"),
        (
            "DECKHAND_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:deckhand",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let logs = args.out.with_file_name("logs-cold");
    std::fs::create_dir_all(&logs).expect("a log directory");
    for name in FUNCTIONS {
        let mut samples = Vec::new();
        for _ in 0..args.cold_starts {
            let function = Function::spawn(&args.bin_dir, name, &env, &logs).await;
            samples.push(function.cold_start().await);
        }
        let max = samples.iter().max().copied().unwrap_or_default();
        table.push(Row::cold_start(
            name,
            median(samples),
            max,
            args.cold_starts,
        ));
    }
}

/// Each binary as built, stripped of symbols, and zipped as `bootstrap` the way `cargo lambda build
/// --output-format zip` packages it for Lambda.
pub fn sizes(args: &Args, table: &mut Table) {
    let size = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}; build it with make bench", path.display()))
            .len()
    };
    for name in FUNCTIONS {
        let path = binary(&args.bin_dir, name);
        let stripped = args.out.with_file_name(format!("{name}.stripped"));
        let status = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(&path)
            .status()
            .expect("strip, from binutils");
        assert!(status.success(), "strip {}", path.display());
        let zipped = zipped_size(&stripped);
        table.push(Row::size(name, size(&path), size(&stripped)));
        table.push(Row::zipped(name, zipped));
        let _ = std::fs::remove_file(&stripped);
    }
}

/// The size of a zip holding `binary` as an executable named `bootstrap`, deflated.
fn zipped_size(binary: &Path) -> u64 {
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    let bytes = std::fs::read(binary).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options).expect("a zip entry");
    zip.write_all(&bytes).expect("zip in memory");
    zip.finish().expect("zip in memory").into_inner().len() as u64
}
