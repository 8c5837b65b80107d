use super::*;
use crate::domain::strategy::DeploymentController;

const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
const RULE: &str = "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";

fn tg(name: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/{name}/73e2d6bc24d8a067"
    )
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn side(name: &str, partner: &str, extra: &[(&str, &str)]) -> ServiceView {
    let mut all = tags(&[(TAG_PAIR, partner), (TAG_TRAFFIC, LISTENER)]);
    all.extend(tags(extra));
    ServiceView {
        key: ServiceKey::new("prod", name),
        arn: format!("arn:aws:ecs:eu-west-1:123456789012:service/prod/{name}"),
        task_definition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7".into(),
        desired_count: 3,
        running_count: 3,
        tags: all,
        deployments: Vec::new(),
        controller: DeploymentController::Ecs,
        target_groups: vec![tg(name)],
        strategy: Default::default(),
        load_balanced: None,
        task_sets: Vec::new(),
        placement: Default::default(),
        early_success: None,
        service_revisions: Vec::new(),
    }
}

fn forward(weights: &[(&str, i32)]) -> Forward {
    Forward {
        arn: LISTENER.into(),
        weights: weights.iter().map(|(n, w)| (tg(n), *w)).collect(),
        source: Source::default(),
    }
}

#[test]
fn the_tags_of_a_pair_parse_with_their_defaults() {
    let s = PairSettings::from_tags(&tags(&[(TAG_PAIR, "web-green"), (TAG_TRAFFIC, RULE)]))
        .unwrap()
        .unwrap();
    assert_eq!(s.partner, "web-green");
    assert_eq!(s.traffic, RULE);
    assert_eq!(s.steps, [100]);
    assert_eq!(s.step_wait, DEFAULT_STEP_WAIT);
    assert_eq!(s.standby, Standby::ScaleDown);
    let s = PairSettings::from_tags(&tags(&[
        (TAG_PAIR, "web-green"),
        (TAG_TRAFFIC, LISTENER),
        (TAG_TRAFFIC_STEPS, "10 50 100"),
        (TAG_STEP_WAIT, "10m"),
        (TAG_STANDBY, "keep"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(s.steps, [10, 50, 100]);
    assert_eq!(s.step_wait, TimeDelta::minutes(10));
    assert_eq!(s.standby, Standby::Keep);
    assert_eq!(PairSettings::from_tags(&tags(&[])), Ok(None));
}

#[test]
fn every_bad_pair_tag_is_named() {
    let bad = PairSettings::from_tags(&tags(&[
        (TAG_PAIR, "prod/web-green"),
        (
            TAG_TRAFFIC,
            "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/web/1",
        ),
        (TAG_TRAFFIC_STEPS, "10 5 100"),
        (TAG_STEP_WAIT, "soon"),
        (TAG_STANDBY, "warm"),
    ]))
    .unwrap_err();
    let named: Vec<&str> = bad.iter().map(|p| p.tag.as_str()).collect();
    assert_eq!(
        named,
        [
            TAG_PAIR,
            TAG_TRAFFIC,
            TAG_TRAFFIC_STEPS,
            TAG_STEP_WAIT,
            TAG_STANDBY
        ]
    );
    let missing = PairSettings::from_tags(&tags(&[(TAG_PAIR, "web-green")])).unwrap_err();
    assert!(missing[0].message.starts_with("missing"), "{missing:?}");
    assert!(
        parse_steps("10 50")
            .unwrap_err()
            .contains("last step must be 100")
    );
    assert!(parse_steps("0 100").is_err());
    assert!(parse_steps("").is_err());
    assert!(parse_steps("50 50 100").is_err());
}

#[test]
fn the_side_with_the_weight_is_live() {
    let blue = side("web-blue", "web-green", &[(TAG_TRAFFIC_STEPS, "10 100")]);
    let green = side("web-green", "web-blue", &[]);
    let pair = resolve_pair(
        &green,
        Some(&blue),
        &forward(&[("web-blue", 1), ("web-green", 0)]),
    )
    .unwrap();
    assert_eq!(pair.live.service, blue.key);
    assert_eq!(pair.idle.service, green.key);
    assert_eq!(pair.idle.target_group, tg("web-green"));
    // The live side's steps rule.
    assert_eq!(pair.settings.steps, [10, 100]);
    // Mid-shift, the larger share is live.
    let pair = resolve_pair(
        &blue,
        Some(&green),
        &forward(&[("web-blue", 10), ("web-green", 90)]),
    )
    .unwrap();
    assert_eq!(pair.live.service, green.key);
}

#[test]
fn a_forward_to_the_live_target_group_alone_is_a_pair_whose_other_side_is_idle() {
    let blue = side("web-blue", "web-green", &[]);
    let green = side("web-green", "web-blue", &[]);
    for plain in [
        forward(&[("web-blue", 1)]),
        forward(&[("web-blue", 1), ("web-other", 0)]),
    ] {
        for (one, other) in [(&blue, &green), (&green, &blue)] {
            let pair = resolve_pair(one, Some(other), &plain).unwrap();
            assert_eq!(pair.live.service, blue.key);
            assert_eq!(pair.idle.target_group, tg("web-green"));
        }
    }
    // After the first move the forward names both; a flip may leave the old side at 0.
    let flipped = forward(&[("web-blue", 0), ("web-green", 1)]);
    assert_eq!(
        resolve_pair(&blue, Some(&green), &flipped)
            .unwrap()
            .live
            .service,
        green.key
    );
}

#[test]
fn the_test_traffic_rule_is_a_listener_rule_other_than_the_production_one() {
    let with = |value: &str| {
        PairSettings::from_tags(&tags(&[
            (TAG_PAIR, "web-green"),
            (TAG_TRAFFIC, LISTENER),
            (TAG_TEST_TRAFFIC, value),
        ]))
    };
    assert_eq!(
        with(RULE).unwrap().unwrap().test_traffic.as_deref(),
        Some(RULE)
    );
    let same = with(LISTENER).unwrap_err();
    assert_eq!(same[0].tag, TAG_TEST_TRAFFIC);
    assert!(same[0].message.contains("production traffic"), "{same:?}");
    let target_group = with(&tg("web-green")).unwrap_err();
    assert!(
        target_group[0].message.contains("is not the ARN"),
        "{target_group:?}"
    );
    assert_eq!(
        PairSettings::from_tags(&tags(&[(TAG_PAIR, "web-green"), (TAG_TRAFFIC, LISTENER)]))
            .unwrap()
            .unwrap()
            .test_traffic,
        None
    );
}

#[test]
fn a_broken_pair_is_a_tag_problem_naming_what_is_wrong() {
    let blue = side("web-blue", "web-green", &[]);
    let green = side("web-green", "web-blue", &[]);
    let split = forward(&[("web-blue", 1), ("web-green", 0)]);
    let why = |one: &ServiceView, other: Option<&ServiceView>, f: &Forward| {
        resolve_pair(one, other, f).unwrap_err().message
    };
    assert!(why(&blue, None, &split).contains("prod/web-green does not exist"));
    let mut elsewhere = green.clone();
    elsewhere.tags.insert(TAG_PAIR.into(), "web-red".into());
    assert!(why(&blue, Some(&elsewhere), &split).contains("names web-red as its pair"));
    let mut other_listener = green.clone();
    other_listener
        .tags
        .insert(TAG_TRAFFIC.into(), LISTENER.replace("f2f7", "aaaa"));
    assert!(why(&blue, Some(&other_listener), &split).contains("names another listener"));
    let mut two = green.clone();
    two.target_groups.push(tg("web-extra"));
    assert!(why(&blue, Some(&two), &split).contains("has 2 target groups"));
    let mut none = green.clone();
    none.target_groups.clear();
    assert!(why(&blue, Some(&none), &split).contains("has no load balancer target group"));
    let elsewhere_only = forward(&[("web-other", 1)]);
    assert!(
        why(&blue, Some(&green), &elsewhere_only)
            .contains("sends traffic to neither prod/web-blue's target group")
    );
    let shared = forward(&[("web-blue", 1), ("web-other", 1)]);
    assert!(why(&blue, Some(&green), &shared).contains("which is neither side's"));
    let even = forward(&[("web-blue", 1), ("web-green", 1)]);
    assert!(why(&blue, Some(&green), &even).contains("cannot tell the live side"));
    let mut untagged = green.clone();
    untagged.tags.clear();
    assert!(why(&blue, Some(&untagged), &split).contains("has no deckhand:pair tag"));
}

#[test]
fn shares_are_whole_percentages_of_the_weights() {
    let f = forward(&[("web-blue", 1), ("web-green", 3)]);
    assert_eq!(f.percent_of(&tg("web-blue")), 25);
    assert_eq!(f.percent_of(&tg("web-green")), 75);
    assert_eq!(f.percent_of(&tg("nobody")), 0);
    assert_eq!(
        forward(&[("web-blue", 0), ("web-green", 0)]).percent_of(&tg("web-blue")),
        0
    );
}
