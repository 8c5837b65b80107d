//! Where an event says it comes from. Only events of the stack's own account and region count:
//! a rule of another account that targets the function, or a message put in front of it by
//! hand, names another account or region somewhere, and is ignored with the reason.

use serde_json::Value;

/// The stack's own account and region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    pub account: String,
    pub region: String,
    /// Other accounts whose events count for this kind of event.
    pub also: Vec<String>,
}

impl Home {
    /// The account and region of an ARN of the stack's own (its topic's), when it is one.
    pub fn of_arn(arn: &str) -> Option<Self> {
        let fields: Vec<&str> = arn.splitn(6, ':').collect();
        match fields.as_slice() {
            ["arn", _, _, region, account, _] if is_account(account) && !region.is_empty() => {
                Some(Self {
                    account: (*account).to_owned(),
                    region: (*region).to_owned(),
                    also: Vec::new(),
                })
            }
            _ => None,
        }
    }
}

impl Home {
    fn counts(&self, account: &str) -> bool {
        account == self.account || self.also.iter().any(|a| a == account)
    }
}

fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Why the event is not of the stack's own account and region, if it is not. Looks at what
/// each shape says of its origin: EventBridge's `account`, `region` and `resources`, the
/// alarm action's `accountId`, `region` and `alarmArn`, SNS's topic and the alarm it carries.
pub fn foreign(event: &Value, home: &Home) -> Option<String> {
    foreign_but(event, home, &[])
}

/// The same, with the events of the accounts in `also` counting too (a central registry's
/// pushes, an upstream stack's announcements).
pub fn foreign_but(event: &Value, home: &Home, also: &[String]) -> Option<String> {
    let home = &Home {
        account: home.account.clone(),
        region: home.region.clone(),
        also: also.to_vec(),
    };
    for field in ["account", "accountId"] {
        if let Some(account) = event[field].as_str()
            && !home.counts(account)
        {
            return Some(other_account(field, account, home));
        }
    }
    if let Some(region) = event["region"].as_str()
        && region != home.region
    {
        return Some(format!(
            "the event's region is {region}, not the stack's own ({}): deckhand acts only on events of its own account and region",
            home.region
        ));
    }
    let mut arns: Vec<(&str, &str)> = Vec::new();
    for resource in event["resources"].as_array().into_iter().flatten() {
        arns.extend(resource.as_str().map(|a| ("resources", a)));
    }
    arns.extend(event["alarmArn"].as_str().map(|a| ("alarmArn", a)));
    // Inspector names the repository by its ARN.
    arns.extend(
        event["detail"]["repository-name"]
            .as_str()
            .map(|a| ("detail.repository-name", a)),
    );
    let messages: Vec<Value> = event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            arns.extend(r["Sns"]["TopicArn"].as_str().map(|a| ("Sns.TopicArn", a)));
            serde_json::from_str(r["Sns"]["Message"].as_str()?).ok()
        })
        .collect();
    for message in &messages {
        if let Some(account) = message["AWSAccountId"].as_str()
            && !home.counts(account)
        {
            return Some(other_account("Sns.Message.AWSAccountId", account, home));
        }
        arns.extend(
            message["AlarmArn"]
                .as_str()
                .map(|a| ("Sns.Message.AlarmArn", a)),
        );
    }
    arns.into_iter()
        .find_map(|(field, arn)| foreign_arn(field, arn, home))
}

fn other_account(field: &str, account: &str, home: &Home) -> String {
    format!(
        "{field} names account {account}, not the stack's own ({}): deckhand acts only on events of its own account and region",
        home.account
    )
}

/// An ARN of another account or region. Fields an ARN leaves empty (a global service's
/// region) say nothing.
fn foreign_arn(field: &str, arn: &str, home: &Home) -> Option<String> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _, _, region, account, _] = fields.as_slice() else {
        return None;
    };
    if !account.is_empty() && !home.counts(account) {
        return Some(format!(
            "{field} names {arn}, of account {account}, not the stack's own ({}): deckhand acts only on events of its own account and region",
            home.account
        ));
    }
    if !region.is_empty() && *region != home.region {
        return Some(format!(
            "{field} names {arn}, of region {region}, not the stack's own ({}): deckhand acts only on events of its own account and region",
            home.region
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures;

    fn home(region: &str) -> Home {
        Home {
            account: "123456789012".into(),
            region: region.into(),
            also: Vec::new(),
        }
    }

    #[test]
    fn the_home_is_the_topics_account_and_region() {
        assert_eq!(
            Home::of_arn("arn:aws:sns:eu-west-1:123456789012:deckhand"),
            Some(home("eu-west-1"))
        );
        assert_eq!(Home::of_arn("arn"), None);
        assert_eq!(Home::of_arn("arn:aws:sns:eu-west-1:me:deckhand"), None);
    }

    /// The corpus comes from one account and region, as AWS sent it.
    #[test]
    fn every_documented_payload_of_the_home_account_and_region_counts() {
        for (name, _) in fixtures::ALL {
            assert_eq!(
                foreign(&fixtures::aws(name), &home("us-east-1")),
                None,
                "{name}"
            );
        }
    }

    #[test]
    fn another_account_or_region_anywhere_is_foreign() {
        let push = fixtures::aws("ecr-push-image");
        let region = "us-east-1";
        let mut other = push.clone();
        other["account"] = json!("210987654321");
        let why = foreign(&other, &home(region)).unwrap();
        assert!(
            why.starts_with(
                "account names account 210987654321, not the stack's own (123456789012)"
            ),
            "{why}"
        );

        let mut resource = push.clone();
        resource["resources"] = json!(["arn:aws:ecr:eu-north-1:123456789012:repository/web"]);
        let why = foreign(&resource, &home(region)).unwrap();
        assert!(why.contains("of region eu-north-1"), "{why}");

        let why = foreign(&push, &home("ap-south-1")).unwrap();
        assert!(
            why.starts_with(&format!("the event's region is {region}")),
            "{why}"
        );

        let mut sns = fixtures::aws("alarm-metric-sns");
        let text = sns["Records"][0]["Sns"]["Message"].as_str().unwrap();
        let mut message: Value = serde_json::from_str(text).unwrap();
        message["AWSAccountId"] = json!("210987654321");
        sns["Records"][0]["Sns"]["Message"] = json!(message.to_string());
        let why = foreign(&sns, &home(region)).unwrap();
        assert!(
            why.starts_with("Sns.Message.AWSAccountId names account 210987654321"),
            "{why}"
        );
    }
}
