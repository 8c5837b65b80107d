//! A central registry: the images of another account's ECR, which deckhand reads there (is the
//! pushed digest real, what did its scan find) only as the repository's policy allows. The
//! policy is read as ECR reads it for these actions: an Allow that names the stack's account
//! (its ID, its root, one of its principals, or anyone), with the action or a wildcard of it,
//! and no Deny of the same.

use serde_json::Value;

/// What deckhand reads in a registry of another account.
pub const REGISTRY_READS: [&str; 3] = [
    "ecr:DescribeImages",
    "ecr:BatchGetImage",
    "ecr:DescribeImageScanFindings",
];

fn as_list(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether a policy's action pattern (`ecr:Describe*`, `ecr:*`, `*`) covers `action`.
fn covers(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

fn names_account(statement: &Value, account: &str) -> bool {
    let principal = &statement["Principal"];
    if principal.as_str() == Some("*") {
        return true;
    }
    as_list(&principal["AWS"]).into_iter().any(|p| {
        p == "*"
            || p == account
            || p.split(':').nth(4).is_some_and(|a| a == account) && p.starts_with("arn:")
    })
}

/// The reads the repository policy does not allow `account`; all of them without a policy.
pub fn registry_policy_gaps(
    policy: Option<&str>,
    account: &str,
) -> Result<Vec<&'static str>, String> {
    let Some(policy) = policy else {
        return Ok(REGISTRY_READS.to_vec());
    };
    let policy: Value = serde_json::from_str(policy)
        .map_err(|e| format!("the repository policy does not parse: {e}"))?;
    let statements: Vec<&Value> = match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        single @ Value::Object(_) => vec![single],
        _ => Vec::new(),
    };
    let allows = |effect: &str, action: &str| {
        statements.iter().any(|s| {
            s["Effect"].as_str() == Some(effect)
                && names_account(s, account)
                && as_list(&s["Action"]).into_iter().any(|p| covers(p, action))
        })
    };
    Ok(REGISTRY_READS
        .into_iter()
        .filter(|action| !allows("Allow", action) || allows("Deny", action))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: &str = "222222222222";

    #[test]
    fn the_documented_policy_allows_every_read() {
        let policy = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Sid": "deckhand", "Effect": "Allow",
            "Principal": {{"AWS": "arn:aws:iam::{PROD}:root"}},
            "Action": ["ecr:DescribeImages", "ecr:BatchGetImage", "ecr:DescribeImageScanFindings",
                       "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer"]}}]}}"#
        );
        assert_eq!(registry_policy_gaps(Some(&policy), PROD), Ok(vec![]));
        // Wildcards, a bare account ID, anyone.
        let wide = r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": ["222222222222"]}, "Action": "ecr:*"}}"#;
        assert_eq!(registry_policy_gaps(Some(wide), PROD), Ok(vec![]));
        let anyone = r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["ecr:Describe*", "ecr:BatchGetImage"]}]}"#;
        assert_eq!(registry_policy_gaps(Some(anyone), PROD), Ok(vec![]));
    }

    #[test]
    fn what_the_policy_lacks_or_denies_is_named() {
        assert_eq!(
            registry_policy_gaps(None, PROD),
            Ok(REGISTRY_READS.to_vec())
        );
        let pulls_only = r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}"#;
        assert_eq!(
            registry_policy_gaps(Some(pulls_only), PROD),
            Ok(vec!["ecr:DescribeImages", "ecr:DescribeImageScanFindings"])
        );
        let other = r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "ecr:*"}]}"#;
        assert_eq!(
            registry_policy_gaps(Some(other), PROD),
            Ok(REGISTRY_READS.to_vec())
        );
        let denied = r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:*"},
            {"Effect": "Deny", "Principal": {"AWS": "222222222222"}, "Action": "ecr:DescribeImageScanFindings"}]}"#;
        assert_eq!(
            registry_policy_gaps(Some(denied), PROD),
            Ok(vec!["ecr:DescribeImageScanFindings"])
        );
        assert!(registry_policy_gaps(Some("{"), PROD).is_err());
    }
}
