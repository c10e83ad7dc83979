//! A hello-world Lambda function: answers any JSON event with a greeting. The baseline of
//! `bench/coldstart.py` (no telemetry, no SDK, no configuration: only the runtime client).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async { Ok::<_, Error>(json!({ "message": "hello" })) })).await
}
