//! Creates the table, bucket and sender identity the way `template.yaml` declares them, for
//! moto's server in tests and for trying the AWS shape locally (`sealpost aws-bootstrap`). On a
//! real account, SAM creates them; this is never run there.

use super::Clients;
use super::dynamo::{GSI_EXPIRY, GSI_PRACTICE};
use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

fn key(name: &str, kind: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder().attribute_name(name).key_type(kind).build()?)
}

fn string_attr(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()?)
}

/// `gsi1` carries the record (`body`): a listing is one query. `gsi2` only finds ids; the sweep
/// reads each share itself, consistently.
fn index(name: &str, pk: &str, sk: &str, with_body: bool) -> anyhow::Result<GlobalSecondaryIndex> {
    let projection = if with_body {
        Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("body").build()
    } else {
        Projection::builder().projection_type(ProjectionType::KeysOnly).build()
    };
    Ok(GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(projection)
        .build()?)
}

/// The table: `pk`/`sk`, GSIs `gsi1` (a practice's shares and keys) and `gsi2` (shares
/// awaiting expiry), a stream with old and new images, TTL on `ttl`.
pub async fn create_table(clients: &Clients, table: &str) -> anyhow::Result<()> {
    let mut attrs = Vec::new();
    for a in ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"] {
        attrs.push(string_attr(a)?);
    }
    clients
        .dynamodb()
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attrs))
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index(GSI_PRACTICE, "gsi1pk", "gsi1sk", true)?)
        .global_secondary_indexes(index(GSI_EXPIRY, "gsi2pk", "gsi2sk", false)?)
        .stream_specification(
            StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::NewAndOldImages).build()?,
        )
        .send()
        .await
        .with_context(|| format!("creating table {table}"))?;
    clients
        .dynamodb()
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(TimeToLiveSpecification::builder().enabled(true).attribute_name("ttl").build()?)
        .send()
        .await
        .context("enabling TTL")?;
    Ok(())
}

pub async fn create_bucket(clients: &Clients, bucket: &str, region: &str) -> anyhow::Result<()> {
    let mut request = clients.s3().create_bucket().bucket(bucket);
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    request.send().await.with_context(|| format!("creating bucket {bucket}"))?;
    // As template.yaml's buckets: every object encrypted at rest, whether or not its PUT asks
    // (an upload URL signs Content-Length only).
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let by_default = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build()?;
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build();
    let encryption = ServerSideEncryptionConfiguration::builder().rules(rule).build()?;
    clients
        .s3()
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .with_context(|| format!("encrypting bucket {bucket} by default"))?;
    Ok(())
}

/// SES sends only from verified identities (as in the SES sandbox); moto enforces it too.
pub async fn create_sender_identity(clients: &Clients, address: &str) -> anyhow::Result<()> {
    clients
        .ses()
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
        .with_context(|| format!("creating SES identity {address}"))?;
    Ok(())
}

/// The webhook deliveries' FIFO queue and its dead-letter queue (as `template.yaml` makes them);
/// returns the queue's URL.
pub async fn create_webhook_queue(clients: &Clients, name: &str) -> anyhow::Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq = clients
        .sqs()
        .create_queue()
        .queue_name(format!("{name}-webhooks-dlq.fifo"))
        .attributes(A::FifoQueue, "true")
        .attributes(A::MessageRetentionPeriod, "1209600")
        .send()
        .await?;
    let dlq_url = dlq.queue_url().context("no DLQ URL")?;
    let arn = clients.sqs().get_queue_attributes().queue_url(dlq_url).attribute_names(A::QueueArn).send().await?;
    let dlq_arn = arn.attributes().and_then(|a| a.get(&A::QueueArn)).context("no DLQ ARN")?;
    let queue = clients
        .sqs()
        .create_queue()
        .queue_name(format!("{name}-webhooks.fifo"))
        .attributes(A::FifoQueue, "true")
        .attributes(A::VisibilityTimeout, "60")
        .attributes(A::MessageRetentionPeriod, "172800")
        .attributes(A::RedrivePolicy, serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 100}).to_string())
        .send()
        .await?;
    Ok(queue.queue_url().context("no queue URL")?.to_owned())
}

/// The send queue as template.yaml makes it (FIFO; here without its dead-letter queue), for
/// moto: returns its URL.
pub async fn create_send_queue(clients: &Clients, name: &str) -> anyhow::Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let queue = clients
        .sqs()
        .create_queue()
        .queue_name(format!("{name}-sends.fifo"))
        .attributes(A::FifoQueue, "true")
        .attributes(A::VisibilityTimeout, "60")
        .send()
        .await?;
    Ok(queue.queue_url().context("no queue URL")?.to_owned())
}
