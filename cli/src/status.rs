//! `deckhand status`: what each opted-in service runs, its known-good revision and deployment,
//! its sleep and its holds, from ECS and the table, as text or JSON.

use std::io::Write;

use crate::print::{print_json, progress, rfc3339};
use crate::{CliError, opted_in};
use deckhand::app::Ports;
use deckhand::config::Config;
use deckhand::domain::promotion::promote_from_of;
use deckhand::domain::service::{ServiceKey, revision_name};
use deckhand::domain::settings::{
    DeploySettings, ScheduleSettings, TAG_AWAKE, TAG_DEPLOY, TagProblem,
};
use serde_json::{Value, json};

pub(crate) async fn status(
    ports: &Ports,
    config: &Config,
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let services = opted_in(ports, config).await?;
    let keys: Vec<ServiceKey> = services.iter().map(|s| s.key.clone()).collect();
    let states = ports.store.load_many(&keys).await?;
    // The images each service runs, one DescribeTaskDefinition per distinct revision.
    let mut images: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut full_images: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (i, s) in services.iter().enumerate() {
        progress(i, services.len());
        if !images.contains_key(&s.task_definition) {
            let td = ports
                .ecs
                .describe_task_definition(&s.task_definition)
                .await?;
            let list = td
                .containers
                .iter()
                .map(|c| format!("{}={}", c.name, short_image(&c.image)))
                .collect();
            images.insert(s.task_definition.clone(), list);
            full_images.insert(
                s.task_definition.clone(),
                td.containers.iter().map(|c| c.image.clone()).collect(),
            );
        }
    }
    let promotions = promotions(ports, config, &services, &full_images).await?;
    let now = ports.clock.now();
    let rows: Vec<Value> = services
        .iter()
        .map(|s| {
            let state = states.get(&s.key).cloned().unwrap_or_default();
            let problems = tag_problems(&s.tags, config);
            json!({
                "service": s.key.to_string(),
                "policy": s.tags.get(TAG_DEPLOY),
                "schedule": s.tags.get(TAG_AWAKE),
                "running": revision_name(&s.task_definition),
                "images": images.get(&s.task_definition),
                "desiredCount": s.desired_count,
                "knownGood": state.known_good_at(now).map(revision_name),
                // A known-good revision that names image tags, and the digests that stand for it.
                "knownGoodPinned": state.known_good_at(now)
                    .and_then(|k| state.pinned.get(k))
                    .map(|p| json!({
                        "by": p.by,
                        "images": p.images.iter()
                            .map(|(c, i)| format!("{c}={}", short_image(i)))
                            .collect::<Vec<_>>(),
                    })),
                "deployment": state.deployment.as_ref().map(|d| json!({
                    "from": revision_name(&d.from),
                    "to": revision_name(&d.to),
                    "digest": d.digest,
                    "tag": d.tag,
                    "status": d.status,
                    "startedAt": rfc3339(d.started_at),
                    "dryRun": d.dry_run,
                })),
                // A pair's move, on its new side.
                "pair": state.pair.as_ref().map(|m| json!({
                    "live": if m.percent() >= 50 { m.to.to_string() } else { m.from.to_string() },
                    "from": m.from.to_string(),
                    "to": m.to.to_string(),
                    "phase": m.phase,
                    "percent": m.percent(),
                    "step": m.step.map(|i| i + 1),
                    "steps": m.steps,
                    "weights": m.weights,
                })),
                // The latest deployment someone else made, followed for known-good.
                "seen": state.seen.as_ref().map(|s| json!({
                    "ecsDeploymentId": s.ecs_deployment_id,
                    "revision": revision_name(&s.task_definition),
                    "status": s.status,
                    "guardUntil": s.guard_until.map(rfc3339),
                    "alarm": s.alarmed.as_ref().map(|a| &a.alarm),
                })),
                "asleep": state.sleep.as_ref().map(|z| json!({"since": rfc3339(z.since), "desiredCount": z.desired_count})),
                "override": state.operator_override.as_ref().filter(|o| o.until > now)
                    .map(|o| json!({"awake": o.awake, "until": rfc3339(o.until)})),
                "paused": state.paused.is_some(),
                "quarantined": state.quarantine.keys().collect::<Vec<_>>(),
                "olderQuarantinesArchived": state.quarantine_archived,
                "tagProblems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "promotion": promotions.get(&s.key),
            })
        })
        .collect();
    if json_output {
        return print_json(out, &rows);
    }
    if rows.is_empty() {
        writeln!(out, "no service carries a deckhand tag")?;
    }
    for row in &rows {
        let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let deployment = match &row["deployment"] {
            Value::Null => "-".to_owned(),
            d => format!(
                "{} -> {} {}{}",
                text(&d["from"]),
                text(&d["to"]),
                text(&d["status"]),
                if d["dryRun"] == true {
                    " (dry run)"
                } else {
                    ""
                }
            ),
        };
        let pair = match &row["pair"] {
            Value::Null => String::new(),
            m => format!(
                ", pair live {} ({} -> {} {} {}% on {}{})",
                text(&m["live"]),
                text(&m["from"]),
                text(&m["to"]),
                text(&m["phase"]),
                m["percent"],
                text(&m["to"]),
                match (&m["step"], m["steps"].as_array().map(Vec::len)) {
                    (Value::Number(step), Some(n)) => format!(" (step {step} of {n})"),
                    _ => String::new(),
                }
            ),
        };
        let seen = match &row["seen"] {
            Value::Null => String::new(),
            s => format!(
                ", deployed outside deckhand {} {}{}",
                text(&s["revision"]),
                text(&s["status"]),
                match &s["alarm"] {
                    Value::Null => String::new(),
                    a => format!(" (alarm {} in its window)", text(a)),
                }
            ),
        };
        let sleep = match (&row["asleep"], &row["override"]) {
            (Value::Null, Value::Null) => "awake".to_owned(),
            (Value::Null, o) => format!(
                "kept {} until {}",
                if o["awake"] == true {
                    "awake"
                } else {
                    "asleep"
                },
                text(&o["until"])
            ),
            (a, _) => format!("asleep since {}", text(&a["since"])),
        };
        let running_images = row["images"]
            .as_array()
            .map(|i| i.iter().map(text).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        writeln!(
            out,
            "{}  runs {} [{running_images}] ({} tasks), known-good {}, deployment {}{pair}{seen}, {}{}{}{}{}",
            text(&row["service"]),
            text(&row["running"]),
            row["desiredCount"],
            match row["knownGoodPinned"]["images"].as_array() {
                Some(images) => format!(
                    "{} (names tags; runs {})",
                    text(&row["knownGood"]),
                    images.iter().map(text).collect::<Vec<_>>().join(" ")
                ),
                None => text(&row["knownGood"]),
            },
            deployment,
            sleep,
            if row["paused"] == true {
                ", deploys paused"
            } else {
                ""
            },
            match (
                row["quarantined"].as_array().map(Vec::len),
                row["olderQuarantinesArchived"].as_bool() == Some(true),
            ) {
                (Some(n), true) => format!(", {n} quarantined digest(s) and older ones archived"),
                (Some(n), false) if n > 0 => format!(", {n} quarantined digest(s)"),
                _ => String::new(),
            },
            match &row["promotion"] {
                Value::Null => String::new(),
                p => format!(
                    ", promoted from {}: {}",
                    text(&p["from"]),
                    match (&p["announced"], p["running"] == true) {
                        (Value::Null, _) => "no known-good announced yet".to_owned(),
                        (a, true) => format!("runs its known-good {}", text(a)),
                        (a, false) => format!(
                            "its known-good {} (proven {}) waits: see deckhand history",
                            text(a),
                            text(&p["provenAt"])
                        ),
                    }
                ),
            },
            match row["tagProblems"].as_array() {
                Some(p) if !p.is_empty() => format!(
                    ", INVALID TAGS: {}",
                    p.iter().map(text).collect::<Vec<_>>().join("; ")
                ),
                _ => String::new(),
            },
        )?;
    }
    Ok(())
}

/// For each service tagged `deckhand:promote-from`: its upstream, the known-good revision the
/// upstream last announced (kept by the stack), and whether the service runs its digests.
async fn promotions(
    ports: &Ports,
    config: &Config,
    services: &[deckhand::domain::fleet::ServiceView],
    images: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<std::collections::BTreeMap<ServiceKey, Value>, CliError> {
    let home = config.home().map(|h| h.account).unwrap_or_default();
    let mut kept: std::collections::BTreeMap<String, Option<Value>> = Default::default();
    let mut found = std::collections::BTreeMap::new();
    for s in services {
        let Ok(Some(upstream)) = promote_from_of(&s.tags) else {
            continue;
        };
        let name = format!(
            "{}/{}",
            upstream.account.as_deref().unwrap_or(&home),
            upstream.service
        );
        if !kept.contains_key(&name) {
            kept.insert(name.clone(), ports.store.announcement(&name).await?);
        }
        let event = kept.get(&name).cloned().flatten();
        let detail = event.as_ref().map(|e| &e["detail"]);
        let running = images.get(&s.task_definition).is_some_and(|run| {
            detail
                .and_then(|d| d["images"].as_array())
                .is_some_and(|announced| {
                    announced.iter().all(|i| {
                        let digest = i["image"]
                            .as_str()
                            .and_then(|i| i.split_once('@'))
                            .map(|(_, d)| d);
                        digest.is_some_and(|d| run.iter().any(|r| r.ends_with(d)))
                    })
                })
        });
        found.insert(
            s.key.clone(),
            json!({
                "from": name,
                "announced": detail.map(|d| &d["revision"]),
                "provenAt": detail.map(|d| &d["at"]),
                "images": detail.map(|d| &d["images"]),
                "running": running,
            }),
        );
    }
    Ok(found)
}

/// `REPOSITORY:TAG` or `REPOSITORY@sha256:abbreviated`, without the registry host.
pub(crate) fn short_image(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.split_once("@sha256:") {
        Some((repository, hex)) => {
            let short: String = hex.chars().take(12).collect();
            format!("{repository}@sha256:{short}")
        }
        None => name.to_owned(),
    }
}

pub(crate) fn tag_problems(
    tags: &deckhand::domain::settings::Tags,
    config: &Config,
) -> Vec<TagProblem> {
    let mut problems = Vec::new();
    if let Err(p) = deckhand::domain::pair::PairSettings::from_tags(tags) {
        problems.extend(p);
    }
    if let Err(p) = DeploySettings::from_tags(tags, config.guard) {
        problems.extend(p);
    }
    if let Err(p) = ScheduleSettings::from_tags(tags, config.timezone) {
        problems.extend(p);
    }
    problems
}
