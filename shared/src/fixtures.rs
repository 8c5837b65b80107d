//! The corpus of payloads as AWS sends them (tests/fixtures/aws, sources in its README), for
//! the tests of the parsers and the use cases.

use serde_json::Value;

macro_rules! corpus {
    ($($name:literal),* $(,)?) => {
        /// Every file of the corpus, by name.
        pub const ALL: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../tests/fixtures/aws/", $name, ".json")))),*
        ];
    };
}

corpus!(
    "alarm-metric-eventbridge",
    "alarm-metric-lambda",
    "alarm-metric-sns",
    "alarm-metric-math-eventbridge",
    "alarm-metric-math-lambda",
    "alarm-metric-math-sns",
    "alarm-anomaly-eventbridge",
    "alarm-anomaly-lambda",
    "alarm-anomaly-sns",
    "alarm-composite-eventbridge",
    "alarm-composite-lambda",
    "alarm-composite-sns",
    "ecr-push-image",
    "ecr-push-index",
    "ecr-push-untagged",
    "ecr-push-cosign-signature",
    "ecr-push-helm-chart",
    "ecr-image-index-manifest",
    "ecr-scan-image-manifest",
    "inspector2-scan-ecr-image",
    "inspector2-scan-ec2-instance",
    "ecs-deployment-in-progress",
    "ecs-deployment-completed",
    "ecs-deployment-failed-circuit-breaker",
    "ecs-deployment-rollback-in-progress",
    "ecs-hook-awaiting-action",
    "tag-change-on-resource",
    "ssm-calendar-state-change-open",
    "ssm-calendar-state-change-closed",
    "codedeploy-deployment-success",
    "codedeploy-deployment-failure",
    "lambda-on-failure-record",
    "eventbridge-rule-dead-letter",
    "scheduler-dead-letter",
    "scaling-target-tracking-eventbridge",
    "scaling-step-sns",
);

/// One file of the corpus, parsed.
pub fn aws(name: &str) -> Value {
    let Some((_, text)) = ALL.iter().find(|(n, _)| *n == name) else {
        panic!("no fixture {name}");
    };
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The names of the alarm payloads: every kind of alarm in every shape.
pub fn alarms() -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .map(|(name, _)| *name)
        .filter(|n| n.starts_with("alarm-"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// Every file in the folder is in the corpus and in the index of sources, and the other
    /// way round: a payload nobody parses, or one of unknown origin, is not kept.
    #[test]
    fn the_corpus_is_complete_and_every_file_has_its_source() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aws");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&folder)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        let listed: BTreeSet<String> = ALL.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(on_disk, listed);
        let index = std::fs::read_to_string(folder.join("README.md")).unwrap();
        for name in &listed {
            let row = index
                .lines()
                .find(|line| line.starts_with(&format!("| `{name}.json`")))
                .unwrap_or_else(|| panic!("{name}.json is not in the README's index"));
            assert!(row.contains("https://"), "{name}.json has no source: {row}");
        }
    }
}
