//! The `deckhand` binary signs in the way operators do: an SSO profile after `aws sso login`,
//! and a `credential_process` profile. A local server stands in for the SSO portal and for
//! DynamoDB, and records what reaches it: the portal is asked for the role's credentials with the
//! cached token, and the table is called with the credentials the profile produced.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

/// The SSO start URL of the test profile, and the name of its cached token: the SHA-1 of the
/// start URL, where the AWS CLI's `aws sso login` leaves it for a profile without a session.
const START_URL: &str = "https://deckhand-test.awsapps.com/start";
const TOKEN_FILE: &str = "7d8b1810940d97a5241e2448a31c1d6e8a35a584.json";

/// One request as the stand-in server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: String,
    sso_bearer_token: String,
}

/// Answers the SSO portal's `GetRoleCredentials` with fixed credentials and everything else
/// (DynamoDB) with `ResourceNotFoundException`, recording each request.
fn stand_in() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, &log);
        }
    });
    (url, seen)
}

fn answer(mut stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (mut length, mut authorization, mut bearer) = (0, String::new(), String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.trim().to_owned();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "authorization" => authorization = value,
            "x-amz-sso_bearer_token" => bearer = value,
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    log.lock().unwrap().push(Seen {
        path: path.clone(),
        authorization,
        sso_bearer_token: bearer,
    });
    let (status, kind, body) = if path.starts_with("/federation/credentials") {
        (
            "200 OK",
            "application/json",
            r#"{"roleCredentials":{"accessKeyId":"ASIAFROMSSOPORTAL","secretAccessKey":"secret","sessionToken":"session","expiration":4102444800000}}"#,
        )
    } else {
        (
            "400 Bad Request",
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        )
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A home of its own with this AWS configuration.
fn home(name: &str, config: &str) -> PathBuf {
    let home =
        std::env::temp_dir().join(format!("deckhand-profiles-{name}-{}", std::process::id()));
    let aws = home.join(".aws");
    std::fs::create_dir_all(aws.join("sso/cache")).unwrap();
    std::fs::write(aws.join("config"), config).unwrap();
    home
}

/// Runs `deckhand --profile PROFILE history demo/web` in that home, against the stand-in.
fn deckhand(home: &Path, profile: &str, url: &str) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deckhand"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") || name.starts_with("DECKHAND_") {
            command.env_remove(name);
        }
    }
    command
        .args([
            "--profile",
            profile,
            "--table",
            "deckhand",
            "history",
            "demo/web",
        ])
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join(".aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", url)
        .output()
        .unwrap()
}

#[test]
fn an_sso_profile_signs_in_with_the_token_aws_sso_login_left() {
    let (url, seen) = stand_in();
    let home = home(
        "sso",
        &format!(
            "[profile operator]\nsso_start_url = {START_URL}\nsso_region = us-east-1\n\
             sso_account_id = 123456789012\nsso_role_name = DeckhandOperator\nregion = eu-west-1\n"
        ),
    );
    std::fs::write(
        home.join(".aws/sso/cache").join(TOKEN_FILE),
        format!(
            r#"{{"accessToken":"token-from-aws-sso-login","expiresAt":"2099-01-01T00:00:00Z","region":"us-east-1","startUrl":"{START_URL}"}}"#
        ),
    )
    .unwrap();
    let output = deckhand(&home, "operator", &url);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("cargo feature"), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    let portal = seen
        .iter()
        .find(|s| s.path.starts_with("/federation/credentials"))
        .unwrap_or_else(|| panic!("the SSO portal was never asked: {seen:?} {stderr}"));
    assert!(
        portal.path.contains("role_name=DeckhandOperator"),
        "{portal:?}"
    );
    assert!(
        portal.path.contains("account_id=123456789012"),
        "{portal:?}"
    );
    assert_eq!(portal.sso_bearer_token, "token-from-aws-sso-login");
    let table = seen
        .iter()
        .find(|s| s.path == "/")
        .unwrap_or_else(|| panic!("DynamoDB was never called: {seen:?} {stderr}"));
    assert!(
        table
            .authorization
            .contains("Credential=ASIAFROMSSOPORTAL/"),
        "{table:?}"
    );
    assert!(
        table.authorization.contains("/eu-west-1/dynamodb/"),
        "{table:?}"
    );
    // The stand-in has no table: deckhand says so and fails.
    assert!(!output.status.success());
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");
}

#[test]
fn a_credential_process_profile_signs_with_what_the_process_prints() {
    let (url, seen) = stand_in();
    let home = home(
        "process",
        "[profile scripted]\nregion = eu-west-1\ncredential_process = printf '{\"Version\": 1, \
         \"AccessKeyId\": \"AKIAFROMPROCESS\", \"SecretAccessKey\": \"secret\"}'\n",
    );
    let output = deckhand(&home, "scripted", &url);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let seen = seen.lock().unwrap().clone();
    let table = seen
        .iter()
        .find(|s| s.path == "/")
        .unwrap_or_else(|| panic!("DynamoDB was never called: {seen:?} {stderr}"));
    assert!(
        table.authorization.contains("Credential=AKIAFROMPROCESS/"),
        "{table:?}"
    );
}
