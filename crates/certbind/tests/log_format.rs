//! `--log-format json` writes one JSON object per line; text lines carry no colour codes
//! when the log is not a terminal.

mod common;

use common::*;

fn log_of(format: &str) -> String {
    let dir = TempDir::new(&format!("log-{format}"));
    let log = dir.path().join("server.log");
    let options = ServerOptions {
        extra_args: vec!["--log-format".into(), format.into()],
        debug_log: Some(log.clone()),
        ..Default::default()
    };
    let mut server = Server::start_with(&dir.path().join("data"), options);
    let client = server.client();
    let _ = error_code(client.get("/v1/certificates/cert-999"));
    server.stop();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn json_logs_are_one_object_per_line_and_text_logs_are_plain() {
    let json = log_of("json");
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "{json}");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string() && value["fields"].is_object(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("certbind serving")), "{json}");

    let text = log_of("text");
    assert!(text.contains("certbind serving"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log that is not a terminal");
}
