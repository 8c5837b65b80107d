//! An ECR lifecycle policy read as ECR evaluates it (ECR User Guide, "Lifecycle policy
//! evaluation rules"), for `deckhand check`: would it expire or archive an image deckhand keeps?
//!
//! Rules apply by ascending `rulePriority`; an image is considered only by the first rule whose
//! tag selection matches it, and no rule of lower priority expires it. `tagged` with
//! `tagPrefixList` or `tagPatternList` (`*` wildcards) selects images that have a matching tag
//! for every entry. `imageCountMoreThan` keeps the newest `countNumber` of the images a rule
//! considers; `sinceImagePushed` (and `sinceImagePulled`) those pushed (pulled) within
//! `countNumber` days. Action `expire` deletes the rest, `transition` archives them.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::keep::KEEP_PREFIX;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub rule_priority: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub selection: Selection,
    #[serde(default)]
    pub action: Option<RuleAction>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    #[serde(default = "any")]
    pub tag_status: String,
    #[serde(default)]
    pub tag_prefix_list: Vec<String>,
    #[serde(default)]
    pub tag_pattern_list: Vec<String>,
    pub count_type: String,
    #[serde(default)]
    pub count_number: i64,
}

fn any() -> String {
    "any".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleAction {
    #[serde(rename = "type")]
    pub kind: String,
}

/// An image of the repository as `DescribeImages` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Option<DateTime<Utc>>,
    pub pulled_at: Option<DateTime<Utc>>,
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && wildcard(rest, &tail[i..]))
        }
    }
}

impl Selection {
    fn selects(&self, tags: &[String]) -> bool {
        match self.tag_status.as_str() {
            "untagged" => tags.is_empty(),
            "tagged" => {
                !tags.is_empty()
                    && self
                        .tag_prefix_list
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && self
                        .tag_pattern_list
                        .iter()
                        .all(|p| tags.iter().any(|t| wildcard(p, t)))
            }
            _ => true,
        }
    }

    /// It selects exactly the images deckhand keeps, whatever their other tags.
    fn is_keep_rule(&self) -> bool {
        let prefix = self.tag_prefix_list.as_slice() == [KEEP_PREFIX.to_owned()]
            && self.tag_pattern_list.is_empty();
        let pattern = self.tag_pattern_list.as_slice() == [format!("{KEEP_PREFIX}*")]
            && self.tag_prefix_list.is_empty();
        self.tag_status == "tagged" && (prefix || pattern)
    }
}

/// What the policy does to one image deckhand keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The first rule that considers it is a rule on `deckhand-keep-` that keeps it.
    Kept,
    /// No rule considers it.
    Untouched,
    /// ECR no longer has it.
    Gone,
    /// A rule would expire or archive it now.
    Removed { priority: i64, action: String },
    /// The first rule that considers it is not a keep rule: it keeps the image now, and may
    /// expire it later.
    Exposed { priority: i64 },
}

impl Fate {
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::Kept | Self::Untouched => None,
            Self::Gone => Some("ECR no longer has it".into()),
            Self::Removed { priority, action } => Some(format!(
                "its lifecycle rule of priority {priority} would {action} it now"
            )),
            Self::Exposed { priority } => Some(format!(
                "its lifecycle rule of priority {priority} considers it before any rule on tags {KEEP_PREFIX}*, and may expire it later: add a rule of the highest priority (lowest number) with tagStatus tagged and tagPatternList [\"{KEEP_PREFIX}*\"]"
            )),
        }
    }
}

/// The fate of each of `images` (by digest) under the policy at `now`, in their order.
pub fn fates(
    policy: &Policy,
    images: &[ListedImage],
    kept: &[&str],
    now: DateTime<Utc>,
) -> Vec<(String, Fate)> {
    let mut rules: Vec<&Rule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);
    let first_rule =
        |image: &ListedImage| rules.iter().position(|r| r.selection.selects(&image.tags));
    kept.iter()
        .map(|digest| {
            let Some(image) = images.iter().find(|i| i.digest == *digest) else {
                return ((*digest).to_owned(), Fate::Gone);
            };
            let Some(index) = first_rule(image) else {
                return ((*digest).to_owned(), Fate::Untouched);
            };
            let rule = rules[index];
            let considered: Vec<&ListedImage> = images
                .iter()
                .filter(|i| first_rule(i) == Some(index))
                .collect();
            let removed = removes(rule, &considered, image, now);
            let fate = match (removed, rule.selection.is_keep_rule()) {
                (true, _) => Fate::Removed {
                    priority: rule.rule_priority,
                    action: match rule.action.as_ref().map(|a| a.kind.as_str()) {
                        Some("transition") => "archive".into(),
                        _ => "expire".into(),
                    },
                },
                (false, true) => Fate::Kept,
                (false, false) => Fate::Exposed {
                    priority: rule.rule_priority,
                },
            };
            ((*digest).to_owned(), fate)
        })
        .collect()
}

/// Whether the rule removes `image` among the images it considers.
fn removes(
    rule: &Rule,
    considered: &[&ListedImage],
    image: &ListedImage,
    now: DateTime<Utc>,
) -> bool {
    let s = &rule.selection;
    match s.count_type.as_str() {
        "imageCountMoreThan" => {
            let mut newest: Vec<&&ListedImage> = considered.iter().collect();
            newest.sort_by_key(|i| std::cmp::Reverse(i.pushed_at));
            newest
                .iter()
                .position(|i| i.digest == image.digest)
                .is_some_and(|rank| rank as i64 >= s.count_number)
        }
        kind => {
            let at = match kind {
                "sinceImagePulled" => image.pulled_at.or(image.pushed_at),
                _ => image.pushed_at,
            };
            at.is_some_and(|at| at < now - TimeDelta::days(s.count_number))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn listed(digest: &str, tags: &[&str], pushed: &str) -> ListedImage {
        ListedImage {
            digest: digest.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at: Some(utc(pushed)),
            pulled_at: None,
        }
    }

    /// The rule of docs/rollback.md first, then a policy of the most common kind (AWS's example: keep the
    /// newest images, expire the rest).
    const PROTECTED: &str = r#"{"rules": [
        {"rulePriority": 1, "description": "deckhand keeps what it may deploy again",
         "selection": {"tagStatus": "tagged", "tagPatternList": ["deckhand-keep-*"], "countType": "imageCountMoreThan", "countNumber": 9999},
         "action": {"type": "expire"}},
        {"rulePriority": 10, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}}]}"#;

    const UNPROTECTED: &str = r#"{"rules": [
        {"rulePriority": 10, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}}]}"#;

    fn images() -> Vec<ListedImage> {
        vec![
            listed(
                "old",
                &["v1", "deckhand-keep-aaaaaaaaaaaa-0011aabb"],
                "2026-01-01T00:00:00Z",
            ),
            listed("new", &["v2"], "2026-02-01T00:00:00Z"),
        ]
    }

    #[test]
    fn the_keep_rule_of_the_highest_priority_spares_a_kept_image() {
        let policy: Policy = serde_json::from_str(PROTECTED).unwrap();
        let now = utc("2026-12-01T00:00:00Z");
        assert_eq!(
            fates(&policy, &images(), &["old"], now),
            vec![("old".into(), Fate::Kept)]
        );
    }

    #[test]
    fn a_count_rule_without_it_expires_the_kept_image() {
        let policy: Policy = serde_json::from_str(UNPROTECTED).unwrap();
        let now = utc("2026-12-01T00:00:00Z");
        let fate = &fates(&policy, &images(), &["old"], now)[0].1;
        assert_eq!(
            fate,
            &Fate::Removed {
                priority: 10,
                action: "expire".into()
            }
        );
        // The newest is kept now, and only by luck.
        let fate = &fates(&policy, &images(), &["new"], now)[0].1;
        assert_eq!(fate, &Fate::Exposed { priority: 10 });
        assert!(fate.describe().unwrap().contains("tagPatternList"));
    }

    #[test]
    fn a_keep_rule_below_another_rule_protects_nothing() {
        let policy: Policy = serde_json::from_str(
            r#"{"rules": [
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
             "action": {"type": "transition", "targetStorageClass": "archive"}},
            {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPrefixList": ["deckhand-keep-"], "countType": "imageCountMoreThan", "countNumber": 9999},
             "action": {"type": "expire"}}]}"#,
        )
        .unwrap();
        let fate = &fates(&policy, &images(), &["old"], utc("2026-12-01T00:00:00Z"))[0].1;
        assert_eq!(
            fate,
            &Fate::Removed {
                priority: 1,
                action: "archive".into()
            }
        );
    }

    #[test]
    fn wildcards_match_as_ecr_documents() {
        assert!(wildcard("deckhand-keep-*", "deckhand-keep-abc"));
        assert!(wildcard("prod*-v*", "prod-eu-v2"));
        assert!(!wildcard("deckhand-keep-*", "keep"));
        assert!(wildcard("*", ""));
    }
}
