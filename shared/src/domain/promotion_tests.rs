use chrono::TimeZone;

use super::*;

const HOME: &str = "222222222222";
const STAGING: &str = "111111111111";

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 10, minute, 0).unwrap()
}

fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn repository(name: &str) -> Repository {
    Repository {
        account: "999999999999".into(),
        region: "eu-west-1".into(),
        name: name.into(),
    }
}

fn known_good(account: &str, service_account: &str) -> KnownGood {
    KnownGood {
        event_id: "e1".into(),
        account: account.into(),
        time: at(31),
        service_account: service_account.into(),
        service: ServiceKey::new("staging", "web"),
        revision: "web:7".into(),
        images: vec![
            AnnouncedImage {
                container: "web".into(),
                repository: repository("web"),
                digest: digest('a'),
            },
            AnnouncedImage {
                container: "worker".into(),
                repository: repository("web"),
                digest: digest('a'),
            },
            AnnouncedImage {
                container: "proxy".into(),
                repository: repository("proxy"),
                digest: digest('b'),
            },
        ],
        deployment: Some("ecs-svc/1".into()),
        at: at(30),
    }
}

#[test]
fn upstream_names_a_service_of_this_account_or_another() {
    let here = Upstream::parse("staging/web").unwrap();
    assert_eq!(here.account, None);
    assert!(here.is(HOME, &ServiceKey::new("staging", "web"), HOME));
    assert!(!here.is(STAGING, &ServiceKey::new("staging", "web"), HOME));
    let there = Upstream::parse(" 111111111111/staging/web ").unwrap();
    assert!(there.is(STAGING, &ServiceKey::new("staging", "web"), HOME));
    assert!(!there.is(HOME, &ServiceKey::new("staging", "web"), HOME));
    assert!(!there.is(STAGING, &ServiceKey::new("staging", "api"), HOME));
    assert_eq!(there.to_string(), "111111111111/staging/web");
}

#[test]
fn an_upstream_that_does_not_parse_says_what_is_expected() {
    for bad in [
        "web",
        "a/b/c/d",
        "/web",
        "staging/",
        "12345/staging/web",
        "",
    ] {
        let e = Upstream::parse(bad).unwrap_err();
        assert!(e.contains("CLUSTER/SERVICE"), "{bad}: {e}");
    }
    let tags: Tags = [(TAG_PROMOTE_FROM.to_owned(), "nope".to_owned())].into();
    let problem = promote_from_of(&tags).unwrap_err();
    assert_eq!(problem.tag, TAG_PROMOTE_FROM);
    assert_eq!(problem.value, "nope");
    assert_eq!(promote_from_of(&Tags::new()), Ok(None));
}

#[test]
fn an_announcement_counts_from_this_account_or_a_trusted_one_about_its_own_service() {
    let trusted = vec![STAGING.to_owned()];
    assert_eq!(
        check_announcement(&known_good(STAGING, STAGING), HOME, &trusted),
        None
    );
    assert_eq!(check_announcement(&known_good(HOME, HOME), HOME, &[]), None);
    let stranger =
        check_announcement(&known_good("333333333333", "333333333333"), HOME, &trusted).unwrap();
    assert!(stranger.contains("333333333333"), "{stranger}");
    assert!(stranger.contains("PromoteFromAccounts"), "{stranger}");
    // Put in production, naming staging's service: a forgery of staging's word.
    let forged = check_announcement(&known_good(HOME, STAGING), HOME, &trusted).unwrap();
    assert!(forged.contains("only its own services"), "{forged}");
}

#[test]
fn an_announcement_is_one_promoted_push_per_image() {
    let pushes = promoted_pushes(&known_good(STAGING, STAGING));
    let seen: Vec<(&str, &Digest)> = pushes
        .iter()
        .map(|p| (p.repository.name.as_str(), &p.digest))
        .collect();
    assert_eq!(seen, vec![("web", &digest('a')), ("proxy", &digest('b'))]);
    assert!(pushes.iter().all(|p| p.tag.is_none() && p.at == at(31)));
    assert_eq!(pushes[0].event_id, "e1:web");
    let promotion = pushes[1].promoted.as_ref().unwrap();
    assert_eq!(promotion.upstream(), "111111111111/staging/web");
    assert_eq!(promotion.revision, "web:7");
    assert_eq!(promotion.proven_at, at(30));
}

#[test]
fn a_promoted_service_deploys_only_what_its_upstream_proved() {
    let upstream = Upstream::parse("111111111111/staging/web").unwrap();
    let push = &promoted_pushes(&known_good(STAGING, STAGING))[0];
    let promotion = push.promoted.as_deref();
    assert_eq!(
        promotion_verdict(None, None, HOME),
        PromotionVerdict::Policy
    );
    match promotion_verdict(Some(&upstream), promotion, HOME) {
        PromotionVerdict::Deploy(reason) => {
            assert!(
                reason.contains("111111111111/staging/web proved it with web:7"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let PromotionVerdict::Ignore(direct) = promotion_verdict(Some(&upstream), None, HOME) else {
        panic!("a direct push deploys a promoted service");
    };
    assert!(direct.contains("a push does not deploy it"), "{direct}");
    let PromotionVerdict::Ignore(untagged) = promotion_verdict(None, promotion, HOME) else {
        panic!("a promotion deploys a service without deckhand:promote-from");
    };
    assert!(untagged.contains("no deckhand:promote-from"), "{untagged}");
    let other = Upstream::parse("staging/web").unwrap();
    let PromotionVerdict::Ignore(elsewhere) = promotion_verdict(Some(&other), promotion, HOME)
    else {
        panic!("a promotion from another account deploys");
    };
    assert!(
        elsewhere.contains("takes promotions from staging/web"),
        "{elsewhere}"
    );
}

#[test]
fn a_proven_revision_is_announced_by_digest_what_ecs_resolved_included() {
    let host = "999999999999.dkr.ecr.eu-west-1.amazonaws.com";
    let proven = Proven {
        revision: "arn:aws:ecs:eu-west-1:111111111111:task-definition/web:8".into(),
        deployment: Some("ecs-svc/9".into()),
        at: at(30),
    };
    let containers = vec![
        Container {
            name: "web".into(),
            image: format!("{host}/web@{}", digest('a')),
        },
        Container {
            name: "proxy".into(),
            image: format!("{host}/proxy:1.2"),
        },
        Container {
            name: "agent".into(),
            image: "public.ecr.aws/datadog/agent:7".into(),
        },
    ];
    let pinned: BTreeMap<String, String> =
        [("proxy".to_owned(), format!("{host}/proxy@{}", digest('b')))].into();
    let arn = "arn:aws:ecs:eu-west-1:111111111111:service/staging/web";
    let a = announcement(arn, &proven, &containers, Some(&pinned)).unwrap();
    assert_eq!(a.revision, "web:8");
    assert_eq!(
        a.images,
        vec![
            ("web".to_owned(), format!("{host}/web@{}", digest('a'))),
            ("proxy".to_owned(), format!("{host}/proxy@{}", digest('b'))),
        ]
    );
    // What is put is what a downstream stack parses back.
    let event = serde_json::json!({"version": "0", "id": "x", "detail-type": KNOWN_GOOD_DETAIL_TYPE,
        "source": KNOWN_GOOD_SOURCE, "account": "111111111111", "time": "2026-12-05T10:31:00Z",
        "region": "eu-west-1", "resources": [arn], "detail": a.detail()});
    let crate::events::DeployEvent::KnownGood(parsed) =
        crate::events::parse_deploy_event(&event).unwrap()
    else {
        panic!("not an announcement")
    };
    assert_eq!(parsed.service, ServiceKey::new("staging", "web"));
    assert_eq!(parsed.revision, "web:8");
    assert_eq!(parsed.images.len(), 2);
    assert_eq!(parsed.deployment.as_deref(), Some("ecs-svc/9"));
    assert_eq!(parsed.at, at(30));
    // Tags only, and no pin: nothing a downstream could deploy.
    let e = announcement(arn, &proven, &containers[1..], None).unwrap_err();
    assert!(e.contains("web:8"), "{e}");
}
