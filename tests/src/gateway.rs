//! What stands in front of the route functions on AWS, for the AWS backend of the contract
//! suite: API Gateway's HTTP API for `/v1/*`, CloudFront's page bucket for the rest.
//!
//! An API request becomes the event API Gateway sends (payload format 2.0: route key, raw path
//! and query, path parameters, lower-case headers with repeated ones joined by commas, cookies
//! apart, the body in base64 unless it is text), is handled by its function's own handler as
//! the function's `main` hands it over ([`sealpost::lambda::invoke_route`]: lambda_http's request
//! conversion, that function's router, Sealpost's response event), and the response event the
//! function returns becomes the HTTP answer. What happens before a function sees a request is
//! kept too: only the routes and methods of `template.yaml` reach their functions (anything
//! else under `/v1/` goes to its `$default` route), and a request whose event would pass
//! Lambda's 6 MiB payload limit, or whose body passes API Gateway's 10 MiB, gets API Gateway's
//! own `413 {"message": …}`: Sealpost never sees it.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodFilter, on};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost::aws::{AwsConfig, Clients};
use sealpost::http::Route;
use sealpost::ports::Clock;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Lambda's limit on the payload of a synchronous invocation (the whole event).
pub const LAMBDA_EVENT_LIMIT: usize = 6 * 1024 * 1024;
/// API Gateway's limit on a request body.
const GATEWAY_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// The function behind the HTTP API's `$default` route (template.yaml): its router answers
/// SPEC's "no such route" for anything it is sent.
pub const DEFAULT_ROUTE_FUNCTION: &str = "public-share";

/// `/v1/*` through the functions, the page (`page` router: CloudFront's page bucket) for the rest.
/// Each function's router is built as its `main` builds it ([`sealpost::lambda::function_router`]:
/// its routes over the adapters of only what they use), so a route that needed another port
/// fails here.
pub fn router(config: &AwsConfig, clients: &Clients, clock: Arc<dyn Clock>, page: axum::Router) -> axum::Router {
    let router_of = |function: &str| {
        sealpost::lambda::function_router(function, config, clients, clock.clone())
            .unwrap_or_else(|| panic!("no function {function}"))
    };
    let mut api = axum::Router::new();
    for route in Route::ALL {
        let function = router_of(route.function_name());
        let filter = MethodFilter::try_from(route.method()).expect("a method API Gateway routes");
        let key = format!("{} {}", route.method(), route.path());
        api = api.route(
            route.path(),
            on(filter, move |Path(params): Path<HashMap<String, String>>, request: Request| {
                invoke(function, key, params, request)
            }),
        );
    }
    let function = router_of(DEFAULT_ROUTE_FUNCTION);
    let default = move |request: Request| invoke(function.clone(), "$default".into(), HashMap::new(), request);
    let page = page.clone();
    api.method_not_allowed_fallback(default.clone()).fallback(move |request: Request| {
        let (default, page) = (default.clone(), page.clone());
        async move {
            if request.uri().path().starts_with("/v1/") {
                default(request).await
            } else {
                tower::ServiceExt::oneshot(page, request).await.unwrap_or_else(|e| match e {})
            }
        }
    })
}

/// Whether the template attaches the managed policy `policy` (`PepperReadPolicy`) to the
/// function `name` (its `Handler`).
pub fn has_policy(template: &str, name: &str, policy: &str) -> bool {
    let reference = format!("- !Ref {policy}");
    function_lines(template, name).iter().any(|line| line.split('#').next().map(str::trim) == Some(reference.as_str()))
}

/// The actions of `service` (`s3`) the function `name` (its `Handler`) is granted in
/// its own statements (`Action: 's3:GetObject'`, or one per line under `Action:`), sorted.
pub fn granted_actions(template: &str, name: &str, service: &str) -> Vec<String> {
    let prefix = format!("'{service}:");
    let mut actions: Vec<String> = function_lines(template, name)
        .iter()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let quoted = line.strip_prefix("Action:").or_else(|| line.strip_prefix("- "))?.trim();
            quoted.starts_with(&prefix).then(|| quoted.trim_matches('\'').to_owned())
        })
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

/// One statement of an IAM policy in template.yaml, as written (not evaluated).
#[derive(Debug, Default)]
pub struct Statement {
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// The `dynamodb:LeadingKeys` condition: its operator and patterns.
    pub leading_keys: Option<(String, Vec<String>)>,
    /// Elements this reader does not model (`NotAction`, `NotResource`, other conditions):
    /// a test should refuse a statement that has any rather than misread it.
    pub unmodelled: Vec<String>,
}

/// The IAM statements that apply to the function `name` (its `Handler`): its own
/// (`Policies:` inline documents) and those of the managed policies it references.
pub fn function_statements(template: &str, name: &str) -> Vec<Statement> {
    let handler = format!("Handler: {name}");
    let lines = raw_resource_lines(template, |r| r.iter().any(|l| l.trim() == handler));
    assert!(!lines.is_empty(), "no function with {handler} in template.yaml");
    let mut statements = statements(&lines);
    for line in &lines {
        let Some(policy) = line.split('#').next().and_then(|l| l.trim().strip_prefix("- !Ref ")) else { continue };
        let policy = policy.trim();
        let header = format!("  {policy}:");
        let policy_lines = raw_resource_lines(template, |r| r.first().is_some_and(|l| *l == header));
        if policy_lines.iter().any(|l| l.trim() == "Type: AWS::IAM::ManagedPolicy") {
            statements.extend(self::statements(&policy_lines));
        }
    }
    statements
}

/// The statements written under `Statement:` in `lines` (one resource), in order.
fn statements(lines: &[&str]) -> Vec<Statement> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if !(trimmed.starts_with("- Effect:") || trimmed.starts_with("- Sid:")) {
            i += 1;
            continue;
        }
        // The statement: this line (without its dash) and every line indented past the dash.
        let dash = indent(line);
        let mut body = vec![trimmed[2..].to_owned()];
        i += 1;
        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > dash) {
            body.push(lines[i].trim().to_owned());
            i += 1;
        }
        out.push(statement(&body));
    }
    out
}

fn statement(body: &[String]) -> Statement {
    let unquote = |v: &str| v.trim().trim_matches('\'').to_owned();
    let list = |v: &str| -> Vec<String> {
        let v = v.trim();
        match v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some(items) => items.split(',').map(unquote).collect(),
            None => vec![unquote(v)],
        }
    };
    let mut s = Statement::default();
    let mut open: Option<&str> = None; // the key whose `- item` lines follow
    let mut operator: Option<String> = None;
    for line in body {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(item) = line.strip_prefix("- ") {
            match open {
                Some("Action") => s.actions.push(unquote(item)),
                Some("Resource") => s.resources.push(item.trim().to_owned()),
                _ => s.unmodelled.push(line.to_owned()),
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) else {
            s.unmodelled.push(line.to_owned());
            continue;
        };
        // `ForAllValues:StringLike:` and `'dynamodb:LeadingKeys': [...]` hold a colon themselves.
        if let Some(op) = line.strip_suffix(':').filter(|l| l.contains(':') && !l.contains(' ')) {
            operator = Some(op.to_owned());
            open = None;
            continue;
        }
        if let Some(patterns) = line.strip_prefix("'dynamodb:LeadingKeys':") {
            s.leading_keys = Some((operator.clone().unwrap_or_default(), list(patterns)));
            continue;
        }
        open = None;
        match (key, value) {
            ("Effect", v) => s.effect = v.to_owned(),
            ("Sid", _) => {}
            ("Action", "") => open = Some("Action"),
            ("Action", v) => s.actions.extend(list(v)),
            ("Resource", "") => open = Some("Resource"),
            ("Resource", v) => s.resources.push(v.to_owned()),
            ("Condition", "") => {}
            _ => s.unmodelled.push(line.to_owned()),
        }
    }
    s
}

/// What the template's HTTP API routes where: each route key (`POST /v1/shares`, `$default`)
/// with the function its integration invokes (its `Handler`).
pub fn template_routes(template: &str) -> Vec<(String, String)> {
    let resources = named_resources(template);
    let resource = |name: &str| resources.iter().find(|(n, _)| *n == name).map(|(_, lines)| lines.as_slice());
    let value = |lines: &[&str], key: &str| {
        let key = format!("{key}: ");
        lines.iter().find_map(|l| l.trim().strip_prefix(key.as_str())).map(str::to_owned)
    };
    let mut routes = Vec::new();
    for (name, lines) in &resources {
        if value(lines, "Type").as_deref() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let key = value(lines, "RouteKey").unwrap_or_else(|| panic!("{name}: no RouteKey"));
        let target = value(lines, "Target").unwrap_or_default();
        let integration = target.trim_start_matches("!Sub 'integrations/${").trim_end_matches("}'");
        let uri =
            resource(integration).and_then(|l| value(l, "IntegrationUri")).unwrap_or_else(|| panic!("{name}: no integration"));
        let function = uri.trim_start_matches("!GetAtt ").trim_end_matches(".Arn");
        let handler = resource(function).and_then(|l| value(l, "Handler")).unwrap_or_else(|| panic!("{name}: no function"));
        routes.push((key, handler));
    }
    routes
}

/// A function as template.yaml deploys it: its `Handler` (the function's name), what SAM
/// builds it from (`CodeUri`, from `Globals` unless its own) and the binary it copies.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeployedFunction {
    pub handler: String,
    pub code_uri: String,
    pub binary: String,
}

/// Every `AWS::Serverless::Function` of the template.
pub fn template_functions(template: &str) -> Vec<DeployedFunction> {
    let value = |lines: &[&str], key: &str| {
        let key = format!("{key}: ");
        lines.iter().find_map(|l| l.trim().strip_prefix(key.as_str())).map(str::to_owned)
    };
    let globals: Vec<&str> =
        template.lines().skip_while(|l| *l != "Globals:").skip(1).take_while(|l| l.starts_with(' ')).collect();
    named_resources(template)
        .into_iter()
        .filter(|(_, lines)| value(lines, "Type").as_deref() == Some("AWS::Serverless::Function"))
        .map(|(name, lines)| DeployedFunction {
            handler: value(&lines, "Handler").unwrap_or_else(|| panic!("{name}: no Handler")),
            code_uri: value(&lines, "CodeUri")
                .or_else(|| value(&globals, "CodeUri"))
                .unwrap_or_else(|| panic!("{name}: no CodeUri")),
            binary: value(&lines, "Binary").unwrap_or_else(|| panic!("{name}: no BuildProperties.Binary")),
        })
        .collect()
}

/// Every resource's name and its untrimmed lines (its key's line first).
fn named_resources(template: &str) -> Vec<(&str, Vec<&str>)> {
    let mut resources: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut in_resources = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_resources = line == "Resources:";
            continue;
        }
        if !in_resources {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ")
            && rest.ends_with(':')
            && rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        {
            resources.push((rest.trim_end_matches(':'), vec![]));
        }
        if let Some((_, lines)) = resources.last_mut() {
            lines.push(line);
        }
    }
    resources
}

/// The untrimmed lines of the first resource `is_it` accepts (none if none does). A resource is
/// a two-space-indented key and the more-indented lines under it.
fn raw_resource_lines(template: &str, is_it: impl Fn(&[&str]) -> bool) -> Vec<&str> {
    let mut resources: Vec<Vec<&str>> = Vec::new();
    let is_key = |l: &str| l.ends_with(':') && l.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    for line in template.lines() {
        match line.strip_prefix("  ") {
            Some(rest) if is_key(rest) => resources.push(vec![]),
            _ if is_key(line) => resources.push(vec![]),
            _ => {}
        }
        if let Some(resource) = resources.last_mut() {
            resource.push(line);
        }
    }
    resources.into_iter().find(|r| is_it(r)).unwrap_or_default()
}

/// The lines of the function resource whose `Handler` is `name`, trimmed.
fn function_lines<'a>(template: &'a str, name: &str) -> Vec<&'a str> {
    let handler = format!("Handler: {name}");
    let lines = raw_resource_lines(template, |r| r.iter().any(|l| l.trim() == handler));
    assert!(!lines.is_empty(), "no function with {handler} in template.yaml");
    lines.into_iter().map(str::trim).collect()
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// API Gateway passes a body as text when its type is text, else in base64.
fn is_text(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/") || t.contains("json") || t.contains("xml") || t.starts_with("application/x-www-form-urlencoded")
    })
}

async fn invoke(
    function: sealpost::http::HttpRouter,
    route_key: String,
    params: HashMap<String, String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, GATEWAY_BODY_LIMIT).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        if name == header::COOKIE {
            cookies.extend(values.iter().flat_map(|v| v.split("; ")).map(str::to_owned));
        } else {
            headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
        }
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: Map<String, Value> = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let now = chrono::Utc::now();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "sealpost",
            "domainName": parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "sealpost",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": format!("{:x}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(text) if is_text(content_type) => event["body"] = json!(text),
            _ => {
                event["body"] = json!(STANDARD.encode(&body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    if event.to_string().len() > LAMBDA_EVENT_LIMIT {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }

    let answer = match sealpost::lambda::invoke_route(function, event).await {
        Ok(answer) => answer,
        // An unhandled function error: API Gateway answers 500 on the function's behalf.
        Err(_) => return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    response_from_event(&answer)
}

/// The function's response event as API Gateway turns it into an HTTP answer.
fn response_from_event(answer: &Value) -> Response {
    let body = answer["body"].as_str().unwrap_or("");
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        match STANDARD.decode(body) {
            Ok(bytes) => bytes,
            Err(_) => return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(answer["statusCode"].as_u64().unwrap_or(500) as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    // Payload 2.0 reads `headers` (one string each) and `cookies`; `multiValueHeaders`, which
    // the response event also carries (empty), is not part of it.
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str)) {
            headers.append(name, value);
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}
