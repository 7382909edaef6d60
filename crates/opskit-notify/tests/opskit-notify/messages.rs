//! Message bodies, checked against the vendors' formats with the fixtures' validators.

use opskit_notify::jira::{IssueRequest, find_duplicate, jql_string};
use opskit_notify::teams::CardFormat;
use opskit_notify::{Alert, Severity, adf, slack, teams};
use serde_json::json;

use crate::fixtures::{check_adf, check_message_card, check_slack_payload, check_teams_message};

fn alert(sev: Severity) -> Alert {
    let mut a = Alert::new(sev, "Disk almost full", "/var/log is at 91%\nclean it up")
        .host("web-prod-03")
        .field("Environment", "production")
        .field(
            "Runbook",
            "https://wiki.example.invalid/runbooks/disk-full-on-the-web-tier-hosts",
        );
    a.time = time::macros::datetime!(2026-11-22 01:00:00 UTC);
    a
}

#[test]
fn slack_attachment_has_the_seeds_colours_fields_footer_and_time() {
    for (sev, color) in [
        (Severity::Critical, "#FF0000"),
        (Severity::Warning, "#FFA500"),
        (Severity::Info, "#36A64F"),
        (Severity::Resolved, "#439FE0"),
    ] {
        let body = slack::payload(&alert(sev));
        let mut problems = Vec::new();
        check_slack_payload(&body, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let att = &body["attachments"][0];
        assert_eq!(att["color"], color);
        assert_eq!(
            att["title"],
            format!("[{}] Disk almost full", sev.as_str().to_uppercase())
        );
        assert_eq!(att["footer"], "opskit");
        assert_eq!(att["ts"], 1_795_309_200);
        assert_eq!(
            att["fields"][0],
            json!({"title": "Host", "value": "web-prod-03", "short": true})
        );
        assert_eq!(att["fields"][1]["title"], "Environment");
        assert_eq!(
            att["fields"][2]["short"], false,
            "long values take a full row"
        );
    }
}

#[test]
fn teams_adaptive_card_is_a_workflows_message() {
    let body = teams::payload(&alert(Severity::Critical), CardFormat::Adaptive);
    let mut problems = Vec::new();
    check_teams_message(&body, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let card = &body["attachments"][0]["content"];
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["style"], "attention");
    assert_eq!(
        card["body"][0]["items"][0]["text"],
        "[CRITICAL] Disk almost full"
    );
    assert_eq!(
        card["body"][2]["facts"][0],
        json!({"title": "Host", "value": "web-prod-03"})
    );
    assert!(
        card["body"][3]["text"]
            .as_str()
            .unwrap()
            .contains("2026-11-22T01:00:00Z")
    );
    let resolved = teams::payload(&alert(Severity::Resolved), CardFormat::Adaptive);
    assert_eq!(
        resolved["attachments"][0]["content"]["body"][0]["style"],
        "good"
    );
}

#[test]
fn teams_message_card_for_legacy_connectors() {
    let body = teams::payload(&alert(Severity::Warning), CardFormat::MessageCard);
    let mut problems = Vec::new();
    check_message_card(&body, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(body["themeColor"], "FFA500");
    assert_eq!(body["sections"][0]["facts"][0]["name"], "Host");
}

#[test]
fn adf_paragraphs_and_hard_breaks() {
    let doc = adf::from_plain_text("Time: 01:00\nHost: db-prod-02\n\nCPU above 95%\r\n\n\n");
    let mut problems = Vec::new();
    check_adf(&doc, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        doc,
        json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Time: 01:00"},
                {"type": "hardBreak"},
                {"type": "text", "text": "Host: db-prod-02"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "CPU above 95%"}]}
        ]})
    );
    let empty = adf::from_plain_text("");
    let mut problems = Vec::new();
    check_adf(&empty, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn jira_create_body_matches_the_seed_shape() {
    let mut req = IssueRequest::new("OPS", "[ALERT] db-prod-02 - High CPU");
    req.description = Some("CPU above 95% for 10 minutes".into());
    req.priority = Some("High".into());
    req.labels = vec!["auto-created".into(), "monitoring-alert".into()];
    req.validate().unwrap();
    let body = req.create_body();
    assert_eq!(body["fields"]["project"], json!({"key": "OPS"}));
    assert_eq!(body["fields"]["issuetype"], json!({"name": "Incident"}));
    assert_eq!(body["fields"]["priority"], json!({"name": "High"}));
    assert_eq!(
        body["fields"]["labels"],
        json!(["auto-created", "monitoring-alert"])
    );
    assert_eq!(body["fields"]["description"]["type"], "doc");
}

#[test]
fn jira_input_errors_are_explained() {
    let mut req = IssueRequest::new("OPS", "x");
    req.labels = vec!["two words".into()];
    assert!(req.validate().unwrap_err().to_string().contains("spaces"));
    assert!(IssueRequest::new("O P S", "x").validate().is_err());
    assert!(IssueRequest::new("OPS", "a\nb").validate().is_err());
    assert!(
        IssueRequest::new("OPS", "x".repeat(256))
            .validate()
            .is_err()
    );
}

#[test]
fn jql_is_quoted_and_dedupe_compares_summaries_exactly() {
    assert_eq!(jql_string(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
    let mut req = IssueRequest::new("OPS", "[ALERT] db-prod-02: CPU > 95%");
    req.labels = vec!["monitoring".into()];
    assert_eq!(
        req.dedupe_jql(),
        r#"project = "OPS" AND summary ~ "ALERT db prod 02 CPU 95" AND labels = "monitoring" AND statusCategory != Done ORDER BY created DESC"#
    );
    let answer = json!({"issues": [
        {"key": "OPS-7", "fields": {"summary": "[ALERT] db-prod-02: CPU > 95% again"}},
        {"key": "OPS-3", "fields": {"summary": "[ALERT] db-prod-02: CPU > 95%"}}
    ]});
    let found = find_duplicate(answer.to_string().as_bytes(), &req.summary).unwrap();
    assert_eq!(found.as_deref(), Some("OPS-3"));
    assert!(find_duplicate(b"<html>", "x").is_err());
}

#[test]
fn severities_parse_case_insensitively_and_reject_unknowns() {
    assert_eq!("CRITICAL".parse::<Severity>().unwrap(), Severity::Critical);
    let err = "page".parse::<Severity>().unwrap_err();
    assert!(
        err.to_string()
            .contains("critical, warning, info or resolved")
    );
    assert!(opskit_notify::alert::parse_field("novalue").is_err());
    assert_eq!(
        opskit_notify::alert::parse_field("k=v=w").unwrap(),
        ("k".to_string(), "v=w".to_string())
    );
}
