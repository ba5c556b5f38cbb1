//! `GET /openapi.json` against the real app: every route the router serves is documented with
//! its method (and nothing else is), and real answers conform to the schemas the document
//! declares for them (a small structural check: required fields, no undeclared fields, types,
//! enums; `$ref`, `allOf` and `oneOf` resolved).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use semantic_router::serve::error::ERROR_CODES;
use semantic_router::serve::{Limits, ROUTES};
use serde_json::{json, Map, Value};

use crate::common;
use crate::common::http::{admin_app, as_admin, get, post, post_json, send};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The properties and required names of an object schema, `allOf` parts merged.
fn object_parts(
    doc: &Value,
    schema: &Value,
    props: &mut Map<String, Value>,
    required: &mut BTreeSet<String>,
) {
    let schema = resolve(doc, schema);
    if let Some(p) = schema["properties"].as_object() {
        props.extend(p.clone());
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        required.insert(r.as_str().unwrap().to_owned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        object_parts(doc, part, props, required);
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown schema type {other}"),
    }
}

/// Where `value` departs from `schema`, one line per finding (empty: it conforms).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    if let Some(branches) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let failures: Vec<Vec<String>> =
            branches.iter().map(|b| check(doc, b, value, at)).collect();
        if failures.iter().any(Vec::is_empty) {
            return Vec::new();
        }
        return vec![format!("{at}: matches no branch of oneOf: {failures:?}")];
    }
    let mut errors = Vec::new();
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        return vec![format!("{at}: {value} is not of type {types:?}")];
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            if schema.get("items").is_some() {
                errors.extend(check(doc, &schema["items"], item, &format!("{at}[{i}]")));
            }
        }
    }
    if let Some(object) = value.as_object() {
        let mut props = Map::new();
        let mut required = BTreeSet::new();
        object_parts(doc, schema, &mut props, &mut required);
        for name in &required {
            if !object.contains_key(name) {
                errors.push(format!("{at}: required `{name}` is missing"));
            }
        }
        let map_values = &schema["additionalProperties"];
        for (name, field) in object {
            match props.get(name) {
                Some(s) => errors.extend(check(doc, s, field, &format!("{at}.{name}"))),
                None if map_values.is_object() => {
                    errors.extend(check(doc, map_values, field, &format!("{at}.{name}")));
                }
                None if !props.is_empty() || map_values == &Value::Bool(false) => {
                    errors.push(format!("{at}: `{name}` is not in the schema"));
                }
                None => {}
            }
        }
    }
    errors
}

/// The schema the document declares for `method path` answering `status` with JSON.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema documented"
    );
    schema
}

fn assert_conforms(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let schema = response_schema(doc, method, path, status.as_u16());
    let errors = check(doc, schema, body, "$");
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:#?}\n{body:#}"
    );
}

async fn document(app: &axum::Router) -> Value {
    let (status, _, doc) = send(app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    doc
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let app = admin_app(common::core(), Limits::default());
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    let served: BTreeSet<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
    assert!(served.len() >= 17, "ROUTES looks short: {served:?}");
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method];
        assert!(
            op.is_object(),
            "{} {} is served but not documented",
            route.method,
            route.path
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{} {}: no success response documented",
            route.method,
            route.path
        );
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("admin_token").is_some()));
        assert_eq!(
            secured, route.admin,
            "{} {}: admin_token security",
            route.method, route.path
        );
        if route.admin {
            for status in ["401", "403"] {
                assert!(
                    responses.contains_key(status),
                    "{} {}: no {status}",
                    route.method,
                    route.path
                );
            }
        }
    }
    for (path, item) in paths {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            assert!(
                served.contains(&(*method, path.as_str())),
                "{method} {path} is documented but not served"
            );
        }
    }
    // Every JSON POST route documents its body.
    for (method, path) in &served {
        if *method == "post" && *path != "/admin/rebuild" {
            let body = &doc["paths"][*path]["post"]["requestBody"]["content"]["application/json"]
                ["schema"];
            assert!(body.is_object(), "POST {path}: no request body documented");
        }
    }
    // The stable error codes, exactly.
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes, ERROR_CODES.into_iter().collect::<BTreeSet<_>>());
    assert!(codes.contains("empty_prompt") && codes.contains("overloaded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn real_answers_conform_to_the_documented_schemas() {
    let app = admin_app(common::core(), Limits::default());
    let doc = document(&app).await;

    let (status, _, decision) = send(
        &app,
        post_json(
            "/classify",
            &json!({"prompt": "write a python function that reverses a linked list"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    // The fields the schema declares required for a Decision are all in a real one.
    let mut props = Map::new();
    let mut required = BTreeSet::new();
    object_parts(
        &doc,
        &doc["components"]["schemas"]["Decision"],
        &mut props,
        &mut required,
    );
    for field in [
        "decision_id",
        "bucket",
        "confidence",
        "target",
        "fallbacks",
        "reasons",
        "timings_us",
        "neighbours",
    ] {
        assert!(
            required.contains(field),
            "Decision schema does not require {field}: {required:?}"
        );
    }
    for field in &required {
        assert!(
            decision.get(field).is_some(),
            "a real decision lacks required `{field}`: {decision}"
        );
    }
    assert_conforms(&doc, "post", "/classify", status, &decision);
    // The check can fail: a decision without its id, or with an undeclared field, does not conform.
    let mut broken = decision.clone();
    broken.as_object_mut().unwrap().remove("decision_id");
    assert!(!check(
        &doc,
        response_schema(&doc, "post", "/classify", 200),
        &broken,
        "$"
    )
    .is_empty());
    let mut extra = decision.clone();
    extra["not_declared"] = json!(1);
    assert!(!check(
        &doc,
        response_schema(&doc, "post", "/classify", 200),
        &extra,
        "$"
    )
    .is_empty());

    let conversation = json!({"messages": [
        {"role": "user", "content": "write a rust parser for ini files"},
        {"role": "assistant", "content": "here it is"},
        {"role": "user", "content": "now add tests"}], "request_id": "r-1"});
    let (status, _, body) = send(&app, post_json("/classify", &conversation)).await;
    assert_conforms(&doc, "post", "/classify", status, &body);

    let batch = json!({"requests": [{"prompt": "summarise this article"}, {"prompt": "hi", "tenant": "t"}]});
    let (status, _, body) = send(&app, post_json("/classify/batch", &batch)).await;
    assert_conforms(&doc, "post", "/classify/batch", status, &body);

    for request in [json!({"text": "hello"}), json!({"texts": ["a", "b"]})] {
        let (status, _, body) = send(&app, post_json("/embed", &request)).await;
        assert_conforms(&doc, "post", "/embed", status, &body);
    }

    let target = decision["target"]["name"].as_str().unwrap();
    let (status, _, body) = send(
        &app,
        post_json(
            "/feedback",
            &json!({"target": target, "outcome": "timeout", "latency_ms": 10,
                "decision_id": decision["decision_id"], "feedback_token": decision["feedback_tokens"][target]}),
        ),
    )
    .await;
    assert_conforms(&doc, "post", "/feedback", status, &body);

    for path in ["/health", "/ready", "/info", "/health/targets"] {
        let (status, _, body) = send(&app, get(path)).await;
        assert_conforms(&doc, "get", path, status, &body);
    }
    for path in ["/archetypes?limit=3", "/admin/uncertain"] {
        let (status, _, body) = send(&app, as_admin(get(path))).await;
        let route = path.split('?').next().unwrap();
        assert_conforms(&doc, "get", route, status, &body);
    }

    // Errors: the documented error body with a documented code.
    for (body, code) in [
        ("{", "invalid_json"),
        (r#"{"prompt": " "}"#, "empty_prompt"),
        (r#"{"prompt": "x", "promt": 1}"#, "unknown_field"),
    ] {
        let (status, _, answer) = send(&app, post("/classify", body)).await;
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert_conforms(&doc, "post", "/classify", status, &answer);
    }
    let (status, _, answer) = send(&app, get("/admin/uncertain")).await;
    assert_conforms(&doc, "get", "/admin/uncertain", status, &answer);
}

/// `x-request-id` and `traceparent` are declared on every path and every answer, and a real
/// answer carries both: the caller's request id back, and the caller's trace continued.
#[tokio::test(flavor = "multi_thread")]
async fn trace_headers_are_documented_everywhere_and_echoed() {
    let app = admin_app(common::core(), Limits::default());
    let doc = document(&app).await;
    for route in ROUTES {
        let item = &doc["paths"][route.path];
        for header in ["x-request-id", "traceparent"] {
            let declared = item["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == header && p["in"] == "header" && p["required"] == false)
            });
            assert!(
                declared,
                "{} {}: no {header} parameter",
                route.method, route.path
            );
            for (status, response) in item[route.method]["responses"].as_object().unwrap() {
                assert!(
                    response["headers"][header].is_object(),
                    "{} {} {status}: no {header} response header",
                    route.method,
                    route.path
                );
            }
        }
    }
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = post_json("/classify", &json!({"prompt": "translate hello to French"}));
    request
        .headers_mut()
        .insert("x-request-id", "openapi-trace-1".parse().unwrap());
    request.headers_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let (status, headers, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-request-id"], "openapi-trace-1");
    let echoed = headers["traceparent"].to_str().unwrap();
    assert!(
        echoed.starts_with(&format!("00-{trace_id}-")) && !echoed.contains("00f067aa0ba902b7"),
        "{echoed}"
    );
}
