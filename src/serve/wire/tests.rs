use super::*;

fn parse(json: &str) -> Result<ClassifyRequest, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn last_user_message_is_routed() {
    let r = parse(
            r#"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "sum"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "these"}]}]}"#,
        )
        .unwrap();
    assert_eq!(r.routed_text().unwrap(), "sum\nthese");
    let input = r.into_input().unwrap();
    assert!(input.context.capabilities.contains("vision"));
    // "be brief" + "first" + "ok" + "sum" + "these" minus the routed "sum\nthese"
    assert_eq!(input.other_text_bytes, 8 + 5 + 2 + 3 + 5 - 9);
}

#[test]
fn context_fields_reach_the_input() {
    let r = parse(
        r#"{"prompt": "hi", "tenant": "acme", "tier": "free", "priority": "high",
                "capabilities": ["json_mode"], "metadata": {"region": "eu"}}"#,
    )
    .unwrap();
    let input = r.into_input().unwrap();
    let c = &input.context;
    assert_eq!(c.tier.as_deref(), Some("free"));
    assert_eq!(c.priority, Priority::High);
    assert!(c.capabilities.contains("json_mode") && !c.capabilities.contains("vision"));
    assert_eq!(c.metadata["region"], "eu");
    assert_eq!(
        c.routing_key.as_deref(),
        Some("acme"),
        "tenant when no request id"
    );
    let with_id = parse(r#"{"prompt": "hi", "tenant": "acme", "request_id": "r1"}"#).unwrap();
    assert_eq!(
        with_id.into_input().unwrap().context.routing_key.as_deref(),
        Some("r1")
    );
}

#[test]
fn unknown_field_is_named() {
    let e = parse(r#"{"prompt": "x", "promt": "y"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("promt"), "{e}");
}

#[test]
fn prompt_and_messages_together_or_neither_are_refused() {
    let both = parse(r#"{"prompt": "x", "messages": [{"role": "user", "content": "y"}]}"#).unwrap();
    assert!(matches!(
        both.routed_text(),
        Err(ApiError::InvalidRequest(_))
    ));
    let neither = parse(r#"{"tenant": "t"}"#).unwrap();
    assert!(matches!(
        neither.routed_text(),
        Err(ApiError::InvalidRequest(_))
    ));
    let empty = parse(r#"{"prompt": "  \n"}"#).unwrap();
    assert!(matches!(empty.routed_text(), Err(ApiError::EmptyPrompt)));
    let no_user = parse(r#"{"messages": [{"role": "system", "content": "y"}]}"#).unwrap();
    assert!(matches!(
        no_user.routed_text(),
        Err(ApiError::InvalidRequest(_))
    ));
}

#[test]
fn a_priority_of_the_wrong_type_is_a_data_error_not_malformed_json() {
    // Found by tests/it/hostile.rs: `"priority": 3` was answered `invalid_json`.
    for json in [
        r#"{"prompt": "x", "priority": 3}"#,
        r#"{"prompt": "x", "priority": true}"#,
        r#"{"prompt": "x", "priority": ["high"]}"#,
        r#"{"prompt": "x", "priority": "urgent"}"#,
    ] {
        let e = parse(json).unwrap_err();
        assert_eq!(
            e.classify(),
            serde_json::error::Category::Data,
            "{json}: {e}"
        );
    }
    let e = parse(r#"{"prompt": "x", "priority": "urgent"}"#).unwrap_err();
    assert!(e.to_string().contains("urgent"), "{e}");
    for (json, expected) in [
        (r#"{"prompt": "x", "priority": "low"}"#, Some(Priority::Low)),
        (r#"{"prompt": "x", "priority": null}"#, None),
        (r#"{"prompt": "x"}"#, None),
    ] {
        assert_eq!(parse(json).unwrap().priority, expected, "{json}");
    }
}

#[test]
fn invisible_prompts_are_empty() {
    // Control characters, zero-width space / joiners, word joiner, BOM, bidi marks and
    // overrides, soft hyphen, a variation selector, a tag character: nothing to route.
    for prompt in [
        "\u{0}\u{1}\u{7f}",
        "\u{200B}\u{200C}\u{200D}",
        "\u{2060}\u{FEFF}",
        "\u{200E}\u{200F}\u{202E}\u{2066}\u{2069}",
        "\u{AD} \u{FE0F}\t\u{E0041}\n",
        "\u{85}\u{3000}\u{1680}",
    ] {
        let json = serde_json::json!({ "prompt": prompt }).to_string();
        let r = parse(&json).unwrap();
        assert!(
            matches!(r.into_input(), Err(ApiError::EmptyPrompt)),
            "{prompt:?} is empty"
        );
        let messages = serde_json::json!({"messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]});
        let r = parse(&messages.to_string()).unwrap();
        assert!(
            matches!(r.into_input(), Err(ApiError::EmptyPrompt)),
            "{prompt:?}"
        );
    }
}

#[test]
fn visible_text_among_invisible_characters_is_routed_as_sent() {
    // Right-to-left text, an RTL override around Latin text, a ZWJ emoji sequence: kept.
    for prompt in [
        "\u{202E}write a parser\u{202C}",
        "\u{200B}hi\u{200B}",
        "مرحبا كيف حالك",
        "\u{1F468}\u{200D}\u{1F469}",
    ] {
        let json = serde_json::json!({ "prompt": prompt }).to_string();
        let input = parse(&json).unwrap().into_input().unwrap();
        assert_eq!(input.text, prompt);
    }
    assert!(!is_blank("\u{200B}a"));
    assert!(is_blank(""));
}
