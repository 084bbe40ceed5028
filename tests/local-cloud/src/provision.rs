//! Creates the template's tables, queues (with their redrive policies) and
//! buckets on the emulator, and resolves `Ref`/`GetAtt`/`Sub` against them.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::Template;
use crate::CloudError;

/// What a logical id became on the emulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Physical {
    Table { name: String, arn: String },
    Queue { url: String, arn: String, name: String },
    Bucket { name: String, arn: String },
    Key { id: String, arn: String },
    Api { url: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resources {
    pub by_logical_id: BTreeMap<String, Physical>,
    pub parameters: BTreeMap<String, String>,
    pub region: String,
    /// The template's `Conditions`, for `Fn::If`.
    #[serde(default)]
    pub conditions: serde_json::Map<String, Value>,
}

fn err(what: &str, e: impl std::fmt::Display) -> CloudError {
    CloudError::Provision(format!("{what}: {e}"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

impl Resources {
    /// The value of `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If` or a literal, as a string.
    pub fn resolve(&self, value: &Value) -> Result<String, CloudError> {
        match value {
            Value::Object(o) if o.contains_key("Fn::If") => {
                let parts = o["Fn::If"].as_array().map(Vec::as_slice).unwrap_or_default();
                let [condition, then, otherwise] = parts else {
                    return Err(err("Fn::If", "takes a condition and two values"));
                };
                let name = condition.as_str().unwrap_or_default();
                self.resolve(if self.condition(name)? { then } else { otherwise })
            }
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Object(o) if o.contains_key("Ref") => {
                let name = o["Ref"].as_str().unwrap_or_default();
                self.reference(name, None)
            }
            Value::Object(o) if o.contains_key("Fn::GetAtt") => {
                let parts = o["Fn::GetAtt"].as_array().cloned().unwrap_or_default();
                let name = parts.first().and_then(Value::as_str).unwrap_or_default();
                let att = parts.get(1).and_then(Value::as_str).unwrap_or_default();
                self.reference(name, Some(att))
            }
            Value::Object(o) if o.contains_key("Fn::Sub") => {
                let text = o["Fn::Sub"]
                    .as_str()
                    .ok_or_else(|| err("Fn::Sub", "only the string form is supported"))?;
                let mut out = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').ok_or_else(|| err("Fn::Sub", "unclosed ${"))? + start;
                    let name = &rest[start + 2..end];
                    let (res, att) = match name.split_once('.') {
                        Some((r, a)) if !r.starts_with("AWS::") => (r, Some(a)),
                        _ => (name, None),
                    };
                    out.push_str(&self.reference(res, att)?);
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Ok(out)
            }
            other => Err(err("unsupported value", other)),
        }
    }

    /// Whether the template's condition `name` holds for the stack's parameters.
    pub fn condition(&self, name: &str) -> Result<bool, CloudError> {
        let definition =
            self.conditions.get(name).ok_or_else(|| err("Condition", format!("{name} is not defined")))?;
        self.holds(definition)
    }

    /// `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`, as CloudFormation evaluates them.
    fn holds(&self, definition: &Value) -> Result<bool, CloudError> {
        let args = |f: &str| definition[f].as_array().cloned().unwrap_or_default();
        let Some((function, _)) = definition.as_object().and_then(|o| o.iter().next()) else {
            return Err(err("condition", definition));
        };
        match function.as_str() {
            "Fn::Equals" => match args("Fn::Equals").as_slice() {
                [a, b] => Ok(self.resolve(a)? == self.resolve(b)?),
                _ => Err(err("Fn::Equals", "takes two values")),
            },
            "Fn::Not" => Ok(!self.holds(args("Fn::Not").first().unwrap_or(&Value::Null))?),
            "Fn::And" => args("Fn::And").iter().try_fold(true, |all, c| Ok(all && self.holds(c)?)),
            "Fn::Or" => args("Fn::Or").iter().try_fold(false, |any, c| Ok(any || self.holds(c)?)),
            "Condition" => self.condition(definition["Condition"].as_str().unwrap_or_default()),
            other => Err(err("condition", format!("{other} is not supported"))),
        }
    }

    fn reference(&self, name: &str, att: Option<&str>) -> Result<String, CloudError> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::AccountId" => return Ok("123456789012".into()),
            _ => {}
        }
        if let Some(p) = self.parameters.get(name) {
            return Ok(p.clone());
        }
        let physical = self
            .by_logical_id
            .get(name)
            .ok_or_else(|| err("reference", format!("{name} is neither a parameter nor a resource")))?;
        Ok(match (physical, att) {
            (Physical::Table { name, .. }, None) => name.clone(),
            (Physical::Table { arn, .. }, Some("Arn")) => arn.clone(),
            (Physical::Queue { url, .. }, None | Some("QueueUrl")) => url.clone(),
            (Physical::Queue { arn, .. }, Some("Arn")) => arn.clone(),
            (Physical::Queue { name, .. }, Some("QueueName")) => name.clone(),
            (Physical::Bucket { name, .. }, None) => name.clone(),
            (Physical::Bucket { arn, .. }, Some("Arn")) => arn.clone(),
            (Physical::Key { id, .. }, None | Some("KeyId")) => id.clone(),
            (Physical::Key { arn, .. }, Some("Arn")) => arn.clone(),
            (Physical::Api { url }, _) => url.clone(),
            (_, Some(att)) => return Err(err("GetAtt", format!("{name}.{att} is not supported"))),
        })
    }
}

pub struct Provisioner<'a> {
    pub sdk: &'a aws_config::SdkConfig,
    pub stack: &'a str,
}

impl Provisioner<'_> {
    pub async fn create(
        &self,
        template: &Template,
        parameters: BTreeMap<String, String>,
        api_url: &str,
    ) -> Result<Resources, CloudError> {
        let mut params = BTreeMap::new();
        for (name, default) in &template.parameters {
            let value = parameters.get(name).cloned().or_else(|| default.clone());
            let value =
                value.ok_or_else(|| err("parameter", format!("{name} has no default and no value given")))?;
            params.insert(name.clone(), value);
        }
        let region = self.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let mut res = Resources {
            by_logical_id: BTreeMap::new(),
            parameters: params,
            region,
            conditions: template.conditions.clone(),
        };
        let apis =
            template.of_type("AWS::Serverless::HttpApi").chain(template.of_type("AWS::ApiGatewayV2::Api"));
        for (id, _) in apis {
            res.by_logical_id.insert(id.clone(), Physical::Api { url: api_url.to_owned() });
        }
        // Every key, also those a condition would leave out when the bank passes its own: the
        // emulator's keys cost nothing, and the functions that seal tokens need theirs.
        for (id, _) in template.of_type("AWS::KMS::Key") {
            let physical = self.key(id).await?;
            res.by_logical_id.insert(id.clone(), physical);
        }
        for (id, def) in template.of_type("AWS::DynamoDB::Table") {
            let physical = self.table(id, def).await?;
            res.by_logical_id.insert(id.clone(), physical);
        }
        for (id, def) in template.of_type("AWS::S3::Bucket") {
            let physical = self.bucket(id, def).await?;
            res.by_logical_id.insert(id.clone(), physical);
        }
        // Queues first without redrive (dead-letter queues must exist), then their policies.
        let queues: Vec<(&String, &Value)> = template.of_type("AWS::SQS::Queue").collect();
        for (id, def) in &queues {
            let physical = self.queue(id, def, &res).await?;
            res.by_logical_id.insert((*id).clone(), physical);
        }
        let sqs = aws_sdk_sqs::Client::new(self.sdk);
        for (id, def) in &queues {
            if let Some(redrive) = def.pointer("/Properties/RedrivePolicy") {
                let target = res.resolve(&redrive["deadLetterTargetArn"])?;
                let max = res.resolve(&redrive["maxReceiveCount"])?;
                let policy =
                    serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": max}).to_string();
                sqs.set_queue_attributes()
                    .queue_url(res.resolve(&serde_json::json!({"Ref": id}))?)
                    .attributes(QueueAttributeName::RedrivePolicy, policy)
                    .send()
                    .await
                    .map_err(|e| err("SetQueueAttributes", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            }
        }
        Ok(res)
    }

    fn physical_name(&self, id: &str) -> String {
        format!("{}-{id}", self.stack)
    }

    async fn table(&self, id: &str, def: &Value) -> Result<Physical, CloudError> {
        let client = aws_sdk_dynamodb::Client::new(self.sdk);
        let name = self.physical_name(id);
        let props = &def["Properties"];
        let key_schema = |v: &Value| -> Result<Vec<KeySchemaElement>, CloudError> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(str_at(k, "/AttributeName").unwrap_or_default())
                        .key_type(KeyType::from(str_at(k, "/KeyType").unwrap_or_default()))
                        .build()
                        .map_err(|e| err("KeySchema", e))
                })
                .collect()
        };
        let mut req = client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&props["KeySchema"])?));
        for a in props["AttributeDefinitions"].as_array().into_iter().flatten() {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(str_at(a, "/AttributeName").unwrap_or_default())
                    .attribute_type(ScalarAttributeType::from(
                        str_at(a, "/AttributeType").unwrap_or_default(),
                    ))
                    .build()
                    .map_err(|e| err("AttributeDefinitions", e))?,
            );
        }
        for g in props["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
            let projection_type =
                ProjectionType::from(str_at(g, "/Projection/ProjectionType").unwrap_or("ALL"));
            let included = g
                .pointer("/Projection/NonKeyAttributes")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>());
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(str_at(g, "/IndexName").unwrap_or_default())
                    .set_key_schema(Some(key_schema(&g["KeySchema"])?))
                    .projection(
                        Projection::builder()
                            .projection_type(projection_type)
                            .set_non_key_attributes(included)
                            .build(),
                    )
                    .build()
                    .map_err(|e| err("GlobalSecondaryIndexes", e))?,
            );
        }
        let arn = match req.send().await {
            Ok(out) => out.table_description().and_then(|d| d.table_arn()).unwrap_or_default().to_owned(),
            // Already there from an earlier run against the same emulator: reuse it.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => client
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .map_err(|e| err("DescribeTable", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?
                .table()
                .and_then(|t| t.table_arn())
                .unwrap_or_default()
                .to_owned(),
            Err(e) => return Err(err("CreateTable", aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        };
        if let Some(ttl) = str_at(props, "/TimeToLiveSpecification/AttributeName") {
            client
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build()
                        .map_err(|e| err("TimeToLive", e))?,
                )
                .send()
                .await
                .map_err(|e| err("UpdateTimeToLive", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        }
        Ok(Physical::Table { name, arn })
    }

    async fn queue(&self, id: &str, def: &Value, res: &Resources) -> Result<Physical, CloudError> {
        let client = aws_sdk_sqs::Client::new(self.sdk);
        let props = &def["Properties"];
        let fifo = props.get("FifoQueue").and_then(Value::as_bool).unwrap_or(false);
        let name = format!("{}{}", self.physical_name(id), if fifo { ".fifo" } else { "" });
        // Every property the template sets is a queue attribute of the same name (the
        // redrive policy is set once every queue exists).
        let mut attributes: HashMap<QueueAttributeName, String> = HashMap::new();
        for (prop, value) in props.as_object().into_iter().flatten() {
            // The emulator does not encrypt: a queue's key and how long it reuses a data key are the
            // real cloud's concern (the translated-template rehearsal checks which key each queue uses).
            if matches!(
                prop.as_str(),
                "RedrivePolicy" | "QueueName" | "Tags" | "KmsMasterKeyId" | "KmsDataKeyReusePeriodSeconds"
            ) {
                continue;
            }
            attributes.insert(QueueAttributeName::from(prop.as_str()), res.resolve(value)?);
        }
        let out = client
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| err("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let url = out.queue_url().unwrap_or_default().to_owned();
        let attrs = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| err("GetQueueAttributes", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        Ok(Physical::Queue { url, arn, name })
    }

    async fn key(&self, id: &str) -> Result<Physical, CloudError> {
        let out = aws_sdk_kms::Client::new(self.sdk)
            .create_key()
            .description(format!("{} {id}", self.stack))
            .send()
            .await
            .map_err(|e| err("CreateKey", aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let meta = out.key_metadata().ok_or_else(|| err("CreateKey", "no key metadata"))?;
        Ok(Physical::Key { id: meta.key_id().to_owned(), arn: meta.arn().unwrap_or_default().to_owned() })
    }

    async fn bucket(&self, id: &str, def: &Value) -> Result<Physical, CloudError> {
        let client = polis::adapters::config::s3(self.sdk);
        let name = self.physical_name(id).to_lowercase();
        match client.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(err("CreateBucket", aws_sdk_s3::error::DisplayErrorContext(e))),
        }
        if str_at(def, "/Properties/VersioningConfiguration/Status") == Some("Enabled") {
            client
                .put_bucket_versioning()
                .bucket(&name)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err("PutBucketVersioning", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        }
        Ok(Physical::Bucket { arn: format!("arn:aws:s3:::{name}"), name })
    }
}
