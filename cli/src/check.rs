//! `deckhand check`: every opted-in service's tags said in words, the alarms that guard it and
//! why, and the scaling alarms whose metric names it but which never roll it back.

use std::io::Write;

use deckhand::app::Ports;
use deckhand::app::scheduler::scheduled_scaling_words;
use deckhand::config::Config;
use deckhand::domain::pair::{DESIGNATED, TAG_PAIR, TAG_TRAFFIC};
use deckhand::domain::rollback::{
    ALARM_TAG_SERVICE, Alarm, AlarmMeaning, RollbackSettings, alarm_meaning,
};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deckhand::domain::image::Repository;
use deckhand::domain::keep::KeptImage;
use deckhand::domain::lifecycle::{ListedImage, Policy, fates};
use deckhand::domain::service::{ServiceKey, revision_name};
use deckhand::domain::settings::{DeploySettings, ScheduleSettings, TAG_AWAKE, TAG_DEPLOY};
use deckhand::domain::state::ServiceState;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

use crate::print::print_json;
use crate::status::tag_problems;
use crate::{CliError, opted_in};

/// How many alarms' tags are read at once.
const TAG_READS: usize = 8;

/// Every alarm of the account with the service its `deckhand:service` tag names; what could not
/// be read is said on standard error, and the rest still counts.
async fn alarms_with_tags(ports: &Ports) -> Vec<(Alarm, Option<ServiceKey>)> {
    let alarms = match ports.alarms.all_alarms().await {
        Ok(alarms) => alarms,
        Err(e) => {
            eprintln!("deckhand: could not list the alarms, so none is shown: {e}");
            return Vec::new();
        }
    };
    stream::iter(alarms)
        .map(|alarm| async move {
            let tag = match &alarm.arn {
                None => None,
                Some(arn) => match ports.alarms.alarm_tags(arn).await {
                    Ok(tags) => tags
                        .get(ALARM_TAG_SERVICE)
                        .and_then(|v| v.trim().parse::<ServiceKey>().ok()),
                    Err(e) => {
                        eprintln!(
                            "deckhand: could not read the tags of alarm {}: {e}",
                            alarm.name
                        );
                        None
                    }
                },
            };
            (alarm, tag)
        })
        .buffered(TAG_READS)
        .collect()
        .await
}

/// What the alarms mean for a service whose rollback settings are `settings`.
fn alarm_rows(
    key: &ServiceKey,
    settings: &RollbackSettings,
    alarms: &[(Alarm, Option<ServiceKey>)],
) -> (Vec<Value>, Vec<String>) {
    let mut rows = Vec::new();
    let mut words = Vec::new();
    for (alarm, tag) in alarms {
        match alarm_meaning(alarm, key, settings, tag.as_ref()) {
            Some(AlarmMeaning::Guards(guard)) => {
                rows.push(json!({"alarm": alarm.name, "guards": true, "why": guard.describe()}));
                words.push(format!(
                    "guarded by alarm {}: {}",
                    alarm.name,
                    guard.describe()
                ));
            }
            Some(AlarmMeaning::IgnoredScaling(why)) => {
                rows.push(json!({"alarm": alarm.name, "guards": false, "why": why}));
                words.push(format!(
                    "ignores alarm {}: {why}, which goes into ALARM whenever the service scales; list it in deckhand:alarms to make it count",
                    alarm.name
                ));
            }
            None => {}
        }
    }
    for listed in &settings.alarms {
        if !alarms.iter().any(|(a, _)| &a.name == listed) {
            words.push(format!(
                "deckhand:alarms names {listed}, which CloudWatch does not have here"
            ));
        }
    }
    let guarded = rows.iter().any(|r| r["guards"] == true);
    if settings.enabled && !guarded {
        words.push(
            "no alarm guards it: nothing rolls it back (tag an alarm deckhand:service, or list one in deckhand:alarms)"
                .into(),
        );
    }
    (rows, words)
}

/// Why a pair's listener or rule cannot be moved by deckhand, if it cannot: the template lets
/// its roles change only the listeners and rules tagged `deckhand:traffic` = `managed`.
async fn undesignated_traffic(
    ports: &Ports,
    tags: &deckhand::domain::settings::Tags,
) -> Option<String> {
    if !tags.contains_key(TAG_PAIR) {
        return None;
    }
    let arn = tags.get(TAG_TRAFFIC)?;
    match ports.traffic.designated(arn).await {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "{TAG_TRAFFIC}: {arn} is not designated for deckhand; tag it {TAG_TRAFFIC} = {DESIGNATED}, or deckhand may not move its traffic"
        )),
        Err(e) => Some(format!(
            "{TAG_TRAFFIC}: could not read the tags of {arn}: {e}"
        )),
    }
}

/// The known-good revision, when it names image tags: the digests deckhand deploys for it.
fn pinned_words(state: &ServiceState, now: DateTime<Utc>) -> Option<String> {
    let known_good = state.known_good_at(now)?;
    let pinned = state.pinned.get(known_good)?;
    if pinned.images.is_empty() {
        return Some(format!(
            "known-good {} names image tags and deckhand does not know the digests it ran: a rollback to it is skipped",
            revision_name(known_good)
        ));
    }
    let images: Vec<String> = pinned
        .images
        .iter()
        .map(|(c, i)| format!("{c}={i}"))
        .collect();
    Some(format!(
        "known-good {} names image tags; a rollback to it runs {} (from {})",
        revision_name(known_good),
        images.join(" "),
        pinned.by.describe()
    ))
}

/// A repository's lifecycle policy and images, if it has a policy, or why they could not be read.
type PolicyRead = Result<Option<(Policy, Vec<ListedImage>)>, String>;

/// The lifecycle policies of the repositories whose images deckhand keeps, each read once.
#[derive(Default)]
struct Lifecycles {
    read: BTreeMap<Repository, PolicyRead>,
}

impl Lifecycles {
    /// What the policy of each repository would do to the images the service needs kept.
    async fn problems(
        &mut self,
        ports: &Ports,
        state: &ServiceState,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let mut by_repository: BTreeMap<Repository, Vec<String>> = BTreeMap::new();
        for image in state
            .kept
            .values()
            .flatten()
            .filter_map(|i| KeptImage::of(i))
        {
            by_repository
                .entry(image.repository)
                .or_default()
                .push(image.digest.to_string());
        }
        let mut problems = Vec::new();
        for (repository, digests) in by_repository {
            if !self.read.contains_key(&repository) {
                let read = read_lifecycle(ports, &repository).await;
                self.read.insert(repository.clone(), read);
            }
            match &self.read[&repository] {
                Err(e) => problems.push(format!(
                    "could not read the lifecycle policy of ECR repository {}: {e}",
                    repository.name
                )),
                Ok(None) => {}
                Ok(Some((policy, images))) => {
                    let kept: Vec<&str> = digests.iter().map(String::as_str).collect();
                    for (digest, fate) in fates(policy, images, &kept, now) {
                        if let Some(why) = fate.describe() {
                            problems.push(format!(
                                "ECR repository {}: image {} may be needed again (what the service runs or goes back to), and {why}",
                                repository.name,
                                digest.get(..19).unwrap_or(&digest)
                            ));
                        }
                    }
                }
            }
        }
        problems
    }
}

async fn read_lifecycle(ports: &Ports, repository: &Repository) -> PolicyRead {
    let Some(text) = ports
        .ecr
        .lifecycle_policy(repository)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let policy: Policy = serde_json::from_str(&text)
        .map_err(|e| format!("its lifecycle policy does not parse: {e}"))?;
    let images = ports
        .ecr
        .images(repository)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some((policy, images)))
}

/// Every opted-in service's tags, checked and said in words.
pub(crate) async fn check(
    ports: &Ports,
    config: &Config,
    account: &str,
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let services = opted_in(ports, config).await?;
    let now = ports.clock.now();
    let scheduled_keys: Vec<ServiceKey> = services
        .iter()
        .filter(|s| s.tags.contains_key(TAG_AWAKE))
        .map(|s| s.key.clone())
        .collect();
    let scheduled = if scheduled_keys.is_empty() {
        Default::default()
    } else {
        ports.autoscaling.scheduled_actions(&scheduled_keys).await?
    };
    let deployed = services.iter().any(|s| s.tags.contains_key(TAG_DEPLOY));
    let alarms = if deployed {
        alarms_with_tags(ports).await
    } else {
        Vec::new()
    };
    let deployed_keys: Vec<ServiceKey> = services
        .iter()
        .filter(|s| s.tags.contains_key(TAG_DEPLOY))
        .map(|s| s.key.clone())
        .collect();
    let states = if deployed_keys.is_empty() {
        Default::default()
    } else {
        ports.store.load_many(&deployed_keys).await?
    };
    let mut lifecycle = Lifecycles::default();
    let mut registries = crate::check_registry::RegistryPolicies::default();
    let mut rows = Vec::new();
    let mut invalid = 0;
    for s in &services {
        let mut words = Vec::new();
        let problems = tag_problems(&s.tags, config);
        if let Ok(Some(d)) = DeploySettings::from_tags(&s.tags, config.guard) {
            words.push(format!(
                "deploys pushes matching {} (guard {})",
                d.policy,
                deckhand::domain::duration::format_duration(d.guard)
            ));
        }
        let mut alarm_list = Vec::new();
        if let Ok(settings) = RollbackSettings::from_tags(&s.tags)
            && s.tags.contains_key(TAG_DEPLOY)
        {
            let (listed, said) = alarm_rows(&s.key, &settings, &alarms);
            alarm_list = listed;
            words.extend(said);
        }
        if let Ok(Some(sched)) = ScheduleSettings::from_tags(&s.tags, config.timezone) {
            let schedule = &sched.schedule;
            let next = schedule.next_change(now).map_or_else(
                || "no change within a year".to_owned(),
                |t| {
                    let minutes = (t - now).num_minutes();
                    let what = if schedule.is_awake(now) {
                        "sleep"
                    } else {
                        "wake-up"
                    };
                    format!("next {what} in {} h {} min", minutes / 60, minutes % 60)
                },
            );
            words.push(format!(
                "awake {} {}; {next}",
                schedule.awake, schedule.timezone
            ));
            if let Some(actions) = scheduled.get(&s.key) {
                words.push(scheduled_scaling_words(actions));
            }
        }
        let mut problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        if let Some(problem) = undesignated_traffic(ports, &s.tags).await {
            problems.push(problem);
        }
        match crate::check_pair::pair_words(ports, s, &services).await {
            Some(Ok(said)) => words.extend(said),
            Some(Err(problem)) => problems.push(problem),
            None => {}
        }
        if let Some(state) = states.get(&s.key) {
            words.extend(pinned_words(state, now));
            problems.extend(lifecycle.problems(ports, state, now).await);
        }
        if s.tags.contains_key(TAG_DEPLOY) {
            problems.extend(registries.problems(ports, s, account).await);
        }
        if !problems.is_empty() {
            invalid += 1;
        }
        rows.push(json!({
            "service": s.key.to_string(),
            "valid": problems.is_empty(),
            "means": words,
            "alarms": alarm_list,
            "problems": problems,
        }));
    }
    if json_output {
        print_json(out, &rows)?;
    } else {
        for row in &rows {
            let service = row["service"].as_str().unwrap_or("?");
            for problem in row["problems"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{service}  INVALID {}",
                    problem.as_str().unwrap_or("?")
                )?;
            }
            for means in row["means"].as_array().into_iter().flatten() {
                writeln!(out, "{service}  {}", means.as_str().unwrap_or("?"))?;
            }
        }
    }
    if invalid > 0 {
        return Err(CliError::Setup(format!(
            "{invalid} service(s) have deckhand tags that do not parse or that deckhand may not act on"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use deckhand::domain::rollback::AlarmState;

    use super::*;

    fn alarm(name: &str, service: Option<&str>, description: Option<&str>) -> Alarm {
        Alarm {
            event_id: String::new(),
            name: name.into(),
            arn: Some(format!("arn:aws:cloudwatch:eu-west-1:1:alarm:{name}")),
            state: AlarmState::Ok,
            previous: None,
            reason: String::new(),
            at: Utc::now(),
            dimensions: service
                .map(|s| {
                    vec![BTreeMap::from([
                        ("ClusterName".to_owned(), "prod".to_owned()),
                        ("ServiceName".to_owned(), s.to_owned()),
                    ])]
                })
                .unwrap_or_default(),
            rule: None,
            description: description.map(str::to_owned),
            actions: Some(Vec::new()),
        }
    }

    #[test]
    fn says_which_alarms_guard_a_service_and_which_it_ignores() {
        let web: ServiceKey = "prod/web".parse().unwrap();
        let settings = RollbackSettings {
            enabled: true,
            alarms: vec!["web-latency".into(), "gone".into()],
            dry_run: None,
        };
        let alarms = vec![
            (alarm("web-5xx-alb", None, None), Some(web.clone())),
            (alarm("web-latency", None, None), None),
            (alarm("web-cpu", Some("web"), None), None),
            (
                alarm(
                    "TargetTracking-service/prod/web-AlarmHigh-1",
                    Some("web"),
                    None,
                ),
                None,
            ),
            (alarm("api-5xx", Some("api"), None), None),
        ];
        let (rows, words) = alarm_rows(&web, &settings, &alarms);
        let named: Vec<(&str, bool)> = rows
            .iter()
            .map(|r| (r["alarm"].as_str().unwrap(), r["guards"] == true))
            .collect();
        assert_eq!(
            named,
            [
                ("web-5xx-alb", true),
                ("web-latency", true),
                ("web-cpu", true),
                ("TargetTracking-service/prod/web-AlarmHigh-1", false)
            ]
        );
        assert!(
            words[0].ends_with("the alarm's deckhand:service tag names it"),
            "{words:?}"
        );
        assert!(
            words[3].contains("a target tracking alarm of Application Auto Scaling"),
            "{words:?}"
        );
        assert!(
            words
                .iter()
                .any(|w| w.contains("deckhand:alarms names gone")),
            "{words:?}"
        );
        assert!(!words.iter().any(|w| w.starts_with("no alarm guards it")));
        let (_, unguarded) = alarm_rows(
            &"prod/db".parse().unwrap(),
            &RollbackSettings {
                enabled: true,
                alarms: vec![],
                dry_run: None,
            },
            &alarms,
        );
        assert_eq!(unguarded.len(), 1);
        assert!(
            unguarded[0].starts_with("no alarm guards it"),
            "{unguarded:?}"
        );
    }
}
