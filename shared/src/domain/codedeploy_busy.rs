//! A CodeDeploy deployment group runs one deployment at a time. When deckhand needs the group
//! (to roll the service back, or to deploy a push) and a deployment it did not start runs there
//! (a pipeline's, or CodeDeploy's own rollback deployment), what to do depends on what that
//! deployment deploys. Decided here, from what `GetDeployment` says of it.

use super::service::revision_name;

/// `GetDeployment`'s creator of CodeDeploy's automatic rollback deployments.
pub const ROLLBACK_CREATOR: &str = "codeDeployRollback";

/// A deployment running in the group, as CodeDeploy describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningDeployment {
    pub id: String,
    /// The task definition its AppSpec names, when CodeDeploy shows the AppSpec (an
    /// `AppSpecContent` revision; one in S3 is not read).
    pub task_definition: Option<String>,
    /// The deployment it rolls back (`rollbackInfo.rollbackTriggeringDeploymentId`), when it
    /// is CodeDeploy's own rollback.
    pub rolls_back: Option<String>,
    /// Who started it (`creator`: `user`, `codeDeployRollback`, `CloudFormation`, ...).
    pub creator: Option<String>,
}

impl RunningDeployment {
    fn named(&self) -> String {
        match (&self.rolls_back, self.creator.as_deref()) {
            (Some(of), _) => format!("CodeDeploy's own rollback deployment {} (of {of})", self.id),
            (None, Some(creator)) => format!("CodeDeploy deployment {} (by {creator})", self.id),
            (None, None) => format!("CodeDeploy deployment {}", self.id),
        }
    }
}

/// What a rollback does about a deployment that is not deckhand's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// It deploys the bad revision: CodeDeploy's own rollback of it (`StopDeployment` with
    /// auto-rollback) takes the service back to what ran before it.
    StopIt,
    /// Rolling back is moot while it runs: it takes the service away from the bad revision
    /// itself. Nothing is retried.
    Moot(String),
    /// What it deploys cannot be told: the rollback waits, and is retried while it runs and the
    /// bad revision still does.
    Wait(String),
}

/// The rollback's choice while `running` holds the group. `ours`: the id of deckhand's own
/// deployment of the bad revision, if it made one through CodeDeploy; `bad`: the revision the
/// alarm rolls back from; `pins_bad_digest`: the running deployment's task definition pins the
/// bad digest (another revision of the same image).
pub fn rollback_while_busy(
    running: &RunningDeployment,
    ours: Option<&str>,
    bad: &str,
    pins_bad_digest: bool,
) -> Blocked {
    let named = running.named();
    if running.rolls_back.is_some() && running.rolls_back.as_deref() == ours {
        return Blocked::Moot(format!(
            "{named} takes the service back from {} already",
            revision_name(bad)
        ));
    }
    match &running.task_definition {
        Some(td) if td == bad || pins_bad_digest => Blocked::StopIt,
        Some(td) => Blocked::Moot(format!(
            "{named} runs in the deployment group and deploys {}, which replaces {}; rolling back would undo it",
            revision_name(td),
            revision_name(bad)
        )),
        None => Blocked::Wait(format!(
            "{named} runs in the deployment group, which takes one deployment at a time, and CodeDeploy does not show what it deploys; the rollback is retried while it runs and {} still does",
            revision_name(bad)
        )),
    }
}

/// The task definition an AppSpec names (`TaskDefinition`), in JSON or YAML, quoted or not.
pub fn appspec_task_definition(content: &str) -> Option<String> {
    let at = content.find("TaskDefinition")?;
    let rest = &content[at + "TaskDefinition".len()..];
    let rest = rest.trim_start_matches(['"', '\'']).trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.trim_start_matches(['"', '\'']);
    let value: String = rest
        .chars()
        .take_while(|c| !matches!(c, '"' | '\'' | ',' | '}' | '\n' | '\r' | ' ' | '#'))
        .collect();
    (!value.is_empty()).then_some(value)
}

/// The deployment a refused `CreateDeployment` met: CodeDeploy's message names it ("... already
/// has an active Deployment 'd-...'").
pub fn active_deployment_in(message: &str) -> Option<String> {
    // CodeDeploy's ids are `d-` and upper-case letters and digits, after a quote or a space.
    message.match_indices("d-").find_map(|(at, _)| {
        let before = message[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let rest: String = message[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            .collect();
        (!rest.is_empty()).then(|| format!("d-{rest}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:8";

    fn running(td: Option<&str>, rolls_back: Option<&str>, creator: &str) -> RunningDeployment {
        RunningDeployment {
            id: "d-OTHER1234".into(),
            task_definition: td.map(str::to_owned),
            rolls_back: rolls_back.map(str::to_owned),
            creator: Some(creator.into()),
        }
    }

    #[test]
    fn a_deployment_of_the_bad_revision_is_stopped() {
        assert_eq!(
            rollback_while_busy(
                &running(Some(BAD), None, "user"),
                Some("d-OURS"),
                BAD,
                false
            ),
            Blocked::StopIt
        );
        // Another revision of the same image.
        let other = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web-pipeline:3";
        assert_eq!(
            rollback_while_busy(&running(Some(other), None, "user"), None, BAD, true),
            Blocked::StopIt
        );
    }

    #[test]
    fn codedeploys_rollback_of_our_deployment_makes_ours_moot() {
        let rollback = running(
            Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7"),
            Some("d-OURS"),
            ROLLBACK_CREATOR,
        );
        match rollback_while_busy(&rollback, Some("d-OURS"), BAD, false) {
            Blocked::Moot(reason) => assert_eq!(
                reason,
                "CodeDeploy's own rollback deployment d-OTHER1234 (of d-OURS) takes the service back from web:8 already"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_revision_is_moot_and_an_unknown_one_waits() {
        let other = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:9";
        match rollback_while_busy(&running(Some(other), None, "user"), None, BAD, false) {
            Blocked::Moot(reason) => assert!(
                reason.starts_with("CodeDeploy deployment d-OTHER1234 (by user) runs in the deployment group and deploys web:9, which replaces web:8"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        // CodeDeploy's rollback of someone else's deployment, whose AppSpec is in S3.
        match rollback_while_busy(
            &running(None, Some("d-THEIRS"), ROLLBACK_CREATOR),
            Some("d-OURS"),
            BAD,
            false,
        ) {
            Blocked::Wait(reason) => {
                assert!(reason.contains("(of d-THEIRS)"), "{reason}");
                assert!(
                    reason.ends_with("while it runs and web:8 still does"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_task_definition_is_read_from_json_and_yaml_appspecs() {
        let json = r#"{"version":0.0,"Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"arn:aws:ecs:r:1:task-definition/web:9","LoadBalancerInfo":{}}}}]}"#;
        assert_eq!(
            appspec_task_definition(json).as_deref(),
            Some("arn:aws:ecs:r:1:task-definition/web:9")
        );
        let yaml = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: arn:aws:ecs:r:1:task-definition/web:10\n        LoadBalancerInfo:\n";
        assert_eq!(
            appspec_task_definition(yaml).as_deref(),
            Some("arn:aws:ecs:r:1:task-definition/web:10")
        );
        let quoted =
            "        TaskDefinition: \"arn:aws:ecs:r:1:task-definition/web:11\" # pinned\n";
        assert_eq!(
            appspec_task_definition(quoted).as_deref(),
            Some("arn:aws:ecs:r:1:task-definition/web:11")
        );
        assert_eq!(appspec_task_definition("TaskDefinition:"), None);
        assert_eq!(appspec_task_definition(""), None);
    }

    #[test]
    fn the_refusal_names_the_active_deployment() {
        assert_eq!(
            active_deployment_in(
                "DeploymentLimitExceededException: The Deployment Group 'shared-d-api' already has an active Deployment 'd-A1B2C3D4E'"
            )
            .as_deref(),
            Some("d-A1B2C3D4E")
        );
        assert_eq!(active_deployment_in("ThrottlingException: slow down"), None);
    }
}
