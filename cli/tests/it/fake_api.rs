//! Tests of the fake Kubernetes API server (`crate::common::fake_api`), driven
//! through the real kube-rs client the way the installer talks to a cluster.
//!
//! Each test starts the fake first (it runs its own runtime on its own
//! thread) and only then a runtime for the client.

use std::collections::BTreeMap;
use std::future::Future;

use crate::common::fake_api::FakeApi;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// Runs `test` with a client configured from a kubeconfig the fake wrote.
fn with_client<F, Fut>(fake: &FakeApi, test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = fake.kubeconfig(&dir.path().join("kubeconfig"), "fake-context");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("the kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client config from the kubeconfig");
        let client = Client::try_from(config).expect("a client");
        test(client).await;
    });
}

/// The API error of `result`, which must have failed with one.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("a Namespace")
}

fn config_map(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("a ConfigMap")
}

fn resource_version(object: &impl kube::Resource) -> String {
    object
        .meta()
        .resource_version
        .clone()
        .expect("a resourceVersion")
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    }))
    .expect("a CustomResourceDefinition")
}

#[test]
fn reports_its_version() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let info = client.apiserver_version().await.expect("/version answers");
        assert_eq!(info.git_version, "v1.33.2");
        assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
        assert_eq!(info.platform, "linux/amd64");
    });

    let old = FakeApi::with_version("v1.24.0");
    with_client(&old, |client| async move {
        let info = client.apiserver_version().await.expect("/version answers");
        assert_eq!(info.git_version, "v1.24.0");
        assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "24"));
    });
}

#[test]
fn discovery_serves_built_in_types() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
        let (ar, caps) = discovery::pinned_kind(&client, &gvk)
            .await
            .expect("apps/v1 Deployment");
        assert_eq!(ar.plural, "deployments");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(
            caps.subresources
                .iter()
                .any(|(sub, _)| sub.plural == "status")
        );

        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery runs");
        for (group, version, kind, namespaced) in [
            ("", "v1", "Namespace", false),
            ("", "v1", "ConfigMap", true),
            ("", "v1", "PersistentVolume", false),
            ("coordination.k8s.io", "v1", "Lease", true),
            ("storage.k8s.io", "v1", "StorageClass", false),
            ("rbac.authorization.k8s.io", "v1", "ClusterRole", false),
            (
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                false,
            ),
        ] {
            let (_, caps) = discovery
                .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
                .unwrap_or_else(|| panic!("{kind} is discoverable"));
            assert_eq!(caps.scope == Scope::Namespaced, namespaced, "{kind}");
        }

        let aggregated = Discovery::new(client.clone())
            .run_aggregated()
            .await
            .expect("aggregated discovery runs");
        assert!(
            aggregated
                .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
                .is_some()
        );
        assert!(
            aggregated
                .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "StatefulSet"))
                .is_some()
        );

        let unknown = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Prometheus");
        let error = api_error(discovery::pinned_kind(&client, &unknown).await);
        assert_eq!(error.code, 404);
    });
}

#[test]
fn namespaced_create_needs_the_namespace() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "monitoring");
        let settings = config_map("settings", json!({"a": "1"}));
        let error = api_error(maps.create(&PostParams::default(), &settings).await);
        assert_eq!(error.code, 404);
        assert_eq!(error.reason, "NotFound");
        assert_eq!(error.message, "namespaces \"monitoring\" not found");

        let namespaces: Api<Namespace> = Api::all(client.clone());
        let created = namespaces
            .create(&PostParams::default(), &namespace("monitoring"))
            .await
            .expect("the namespace is created");
        assert_eq!(
            created
                .labels()
                .get("kubernetes.io/metadata.name")
                .map(String::as_str),
            Some("monitoring")
        );
        assert_eq!(
            created.status.and_then(|s| s.phase).as_deref(),
            Some("Active")
        );

        let stored = maps
            .create(&PostParams::default(), &settings)
            .await
            .expect("the config map is created");
        assert!(stored.metadata.uid.is_some());
        assert!(stored.metadata.creation_timestamp.is_some());
        assert_eq!(stored.metadata.namespace.as_deref(), Some("monitoring"));

        let error = api_error(maps.get("missing").await);
        assert_eq!((error.code, error.reason.as_str()), (404, "NotFound"));
        assert_eq!(error.message, "configmaps \"missing\" not found");
    });
    let seen = fake
        .get("v1", "ConfigMap", Some("monitoring"), "settings")
        .expect("the fake stored it");
    assert_eq!(seen["data"]["a"], "1");
    assert_eq!(seen["metadata"]["generation"], 1);
}

#[test]
fn server_side_apply_creates_updates_and_skips_no_ops() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
        let (ar, _) = discovery::pinned_kind(&client, &gvk)
            .await
            .expect("ConfigMap");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let params = PatchParams::apply("telltale").force();
        let object = |data: Value, labels: Value| {
            let mut o = DynamicObject::new("rules", &ar).data(json!({"data": data}));
            o.metadata.labels = serde_json::from_value(labels).expect("labels");
            o
        };

        let first = object(
            json!({"a": "1", "b": "2"}),
            json!({"app": "telltale", "tier": "x"}),
        );
        let created = api
            .patch("rules", &params, &Patch::Apply(&first))
            .await
            .expect("apply creates");
        let rv1 = resource_version(&created);
        let managed = created.metadata.managed_fields.clone().unwrap_or_default();
        assert_eq!(managed.len(), 1);
        assert_eq!(managed[0].manager.as_deref(), Some("telltale"));
        assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

        let again = api
            .patch("rules", &params, &Patch::Apply(&first))
            .await
            .expect("identical re-apply");
        assert_eq!(
            resource_version(&again),
            rv1,
            "a no-op apply keeps the resourceVersion"
        );

        // Changes b, drops the `tier` label and key `a`: the fields this
        // manager no longer applies go away, as on a real server.
        let second = object(json!({"b": "3"}), json!({"app": "telltale"}));
        let updated = api
            .patch("rules", &params, &Patch::Apply(&second))
            .await
            .expect("apply updates");
        assert_ne!(resource_version(&updated), rv1);
        assert_eq!(updated.data["data"], json!({"b": "3"}));
        assert_eq!(
            updated.labels(),
            &BTreeMap::from([("app".to_string(), "telltale".to_string())])
        );
        assert_eq!(updated.metadata.uid, created.metadata.uid);

        let missing_manager = api
            .patch("rules", &PatchParams::default(), &Patch::Apply(&second))
            .await;
        assert_eq!(api_error(missing_manager).code, 400);
    });
    let created = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("the first apply was recorded");
    assert_eq!(created.status, 201, "apply answers 201 when it creates");
    assert_eq!(
        created.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        created.query.contains("fieldManager=telltale"),
        "{}",
        created.query
    );
}

#[test]
fn dry_run_apply_stores_nothing() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let before = maps.list(&ListParams::default()).await.expect("list");
        let params = PatchParams::apply("telltale").force().dry_run();
        let answer = maps
            .patch(
                "preview",
                &params,
                &Patch::Apply(&config_map("preview", json!({"k": "v"}))),
            )
            .await
            .expect("a dry-run apply answers");
        assert_eq!(
            answer
                .data
                .as_ref()
                .and_then(|d| d.get("k"))
                .map(String::as_str),
            Some("v")
        );
        let error = api_error(maps.get("preview").await);
        assert_eq!(error.code, 404);
        let after = maps.list(&ListParams::default()).await.expect("list");
        assert_eq!(
            before.metadata.resource_version, after.metadata.resource_version,
            "a dry run does not advance the resourceVersion"
        );
    });
    assert!(
        fake.get("v1", "ConfigMap", Some("default"), "preview")
            .is_none()
    );
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[test]
fn an_applied_crd_is_established_and_serves_its_kind() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let params = PatchParams::apply("telltale").force();
        let crd = crds
            .patch("widgets.example.com", &params, &Patch::Apply(&widget_crd()))
            .await
            .expect("the CRD applies");
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{conditions:?}"
        );

        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery");
        assert!(discovery.has_group("example.com"));
        let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
        let (ar, caps) = discovery.resolve_gvk(&gvk).expect("Widget is discoverable");
        assert_eq!(ar.plural, "widgets");
        assert_eq!(caps.scope, Scope::Namespaced);

        let (pinned, _) = discovery::pinned_kind(&client, &gvk)
            .await
            .expect("pinned Widget");
        let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &pinned);
        let widget = DynamicObject::new("w1", &pinned).data(json!({"spec": {"size": 3}}));
        widgets
            .create(&PostParams::default(), &widget)
            .await
            .expect("a Widget is created");
        let listed = widgets
            .list(&ListParams::default())
            .await
            .expect("Widgets list");
        assert_eq!(listed.items.len(), 1);
        assert_eq!(listed.items[0].data["spec"]["size"], 3);

        // Custom resources take no strategic merge patch, as on a real server.
        let strategic = widgets
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 4}})),
            )
            .await;
        assert_eq!(api_error(strategic).code, 415);
        let merged = widgets
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 4}})),
            )
            .await
            .expect("a merge patch");
        assert_eq!(merged.data["spec"]["size"], 4);
        assert_eq!(merged.metadata.generation, Some(2));

        crds.delete("widgets.example.com", &DeleteParams::default())
            .await
            .expect("the CRD is deleted");
        let gone = discovery::pinned_kind(&client, &gvk).await;
        assert_eq!(api_error(gone).code, 404);
    });
    assert!(fake.list("example.com/v1", "Widget").is_empty());
}

#[test]
fn seeded_types_and_objects_are_served() {
    let fake = FakeApi::start();
    fake.register(
        "monitoring.coreos.com",
        "v1",
        "Prometheus",
        "prometheuses",
        true,
    );
    fake.insert(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "k8s", "namespace": "default", "labels": {"app": "prom"}},
        "spec": {"replicas": 2},
        "status": {"availableReplicas": 2},
    }));
    let seeded = fake
        .get(
            "monitoring.coreos.com/v1",
            "Prometheus",
            Some("default"),
            "k8s",
        )
        .expect("seeded");
    let rv = seeded["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let seeded_rv = rv.clone();
    with_client(&fake, |client| async move {
        let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Prometheus");
        let (ar, _) = discovery::pinned_kind(&client, &gvk)
            .await
            .expect("registered kind");
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let all = api
            .list(&ListParams::default())
            .await
            .expect("list in all namespaces");
        assert_eq!(all.items.len(), 1);
        assert_eq!(all.items[0].data["status"]["availableReplicas"], 2);
        assert_eq!(resource_version(&all.items[0]), seeded_rv);
    });
    fake.edit(
        "monitoring.coreos.com/v1",
        "Prometheus",
        Some("default"),
        "k8s",
        json!({"spec": {"replicas": 3}}),
    );
    let edited = fake
        .get(
            "monitoring.coreos.com/v1",
            "Prometheus",
            Some("default"),
            "k8s",
        )
        .expect("edited");
    assert_ne!(edited["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(edited["metadata"]["generation"], 2);
    assert_eq!(edited["spec"]["replicas"], 3);
    assert!(
        fake.writes().is_empty(),
        "seeding and editing are not requests"
    );
}

#[test]
fn creating_an_existing_lease_conflicts() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "telltale-install"},
            "spec": {"holderIdentity": "first", "leaseDurationSeconds": 30},
        }))
        .expect("a Lease");
        let held = leases
            .create(&PostParams::default(), &lease)
            .await
            .expect("the first create wins");
        let error = api_error(leases.create(&PostParams::default(), &lease).await);
        assert_eq!((error.code, error.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(
            error.message,
            "leases.coordination.k8s.io \"telltale-install\" already exists"
        );

        // An update from a stale read conflicts too.
        let mut renewed = held.clone();
        renewed.spec.as_mut().expect("spec").holder_identity = Some("second".into());
        leases
            .replace("telltale-install", &PostParams::default(), &renewed)
            .await
            .expect("an update from the latest read succeeds");
        let stale = leases
            .replace("telltale-install", &PostParams::default(), &renewed)
            .await;
        let error = api_error(stale);
        assert_eq!((error.code, error.reason.as_str()), (409, "Conflict"));
    });
}

#[test]
fn access_reviews_follow_the_deny_list() {
    let fake = FakeApi::start();
    fake.deny(
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
    );
    fake.deny("*", "", "secrets", "monitoring");
    with_client(&fake, |client| async move {
        let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let ask = |verb: &str, group: &str, resource: &str, namespace: Option<&str>| {
            SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.into()),
                        group: Some(group.into()),
                        resource: Some(resource.into()),
                        namespace: namespace.map(str::to_string),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }
        };
        for (review, allowed) in [
            (
                ask(
                    "create",
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    None,
                ),
                false,
            ),
            (
                ask(
                    "get",
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    None,
                ),
                true,
            ),
            (ask("get", "", "secrets", Some("monitoring")), false),
            (ask("get", "", "secrets", Some("default")), true),
            (
                ask("patch", "apps", "deployments", Some("monitoring")),
                true,
            ),
        ] {
            let answer = reviews
                .create(&PostParams::default(), &review)
                .await
                .expect("the review is answered");
            let status = answer.status.expect("a status");
            assert_eq!(
                status.allowed, allowed,
                "{:?}",
                review.spec.resource_attributes
            );
            if !allowed {
                assert_eq!(status.reason.as_deref(), Some("denied by fake"));
            }
        }

        // The denial holds for the request itself too.
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let error = api_error(crds.create(&PostParams::default(), &widget_crd()).await);
        assert_eq!((error.code, error.reason.as_str()), (403, "Forbidden"));
    });
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "reviews are not writes: {writes:?}");
    assert_eq!(writes[0].status, 403);
}

#[test]
fn lists_filter_by_label_selector() {
    let fake = FakeApi::start();
    fake.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}}),
    );
    for (ns, name, labels) in [
        ("default", "a", json!({"app": "telltale", "tier": "core"})),
        ("default", "b", json!({"app": "telltale"})),
        ("monitoring", "c", json!({"app": "other", "tier": "core"})),
        ("monitoring", "d", json!({})),
    ] {
        fake.insert(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
        }));
    }
    with_client(&fake, |client| async move {
        let names = |list: kube::core::ObjectList<ConfigMap>| {
            list.items.iter().map(|m| m.name_any()).collect::<Vec<_>>()
        };
        let all: Api<ConfigMap> = Api::all(client.clone());
        let default: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let select = |s: &str| ListParams::default().labels(s);
        assert_eq!(
            names(all.list(&ListParams::default()).await.expect("all")),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            names(all.list(&select("app=telltale")).await.expect("eq")),
            ["a", "b"]
        );
        assert_eq!(
            names(all.list(&select("app!=telltale")).await.expect("ne")),
            ["c", "d"]
        );
        assert_eq!(
            names(all.list(&select("tier")).await.expect("exists")),
            ["a", "c"]
        );
        assert_eq!(
            names(all.list(&select("app=telltale,tier")).await.expect("and")),
            ["a"]
        );
        assert_eq!(
            names(default.list(&select("tier=core")).await.expect("ns")),
            ["a"]
        );
        let list = all.list(&select("app=telltale")).await.expect("list");
        assert!(list.metadata.resource_version.is_some());
        let error = api_error(all.list(&select("a b")).await);
        assert_eq!(error.code, 400);
        let by_name = ListParams::default().fields("metadata.name=c");
        assert_eq!(names(all.list(&by_name).await.expect("fields")), ["c"]);

        let deleted = default
            .delete_collection(&DeleteParams::default(), &select("tier=core"))
            .await
            .expect("delete collection")
            .left()
            .expect("the deleted objects");
        assert_eq!(names(deleted), ["a"]);
        assert_eq!(
            names(all.list(&ListParams::default()).await.expect("all")),
            ["b", "c", "d"]
        );
    });
    assert!(fake.get("v1", "ConfigMap", Some("default"), "a").is_none());
}

#[test]
fn injected_failures_are_answered_then_used_up() {
    let fake = FakeApi::start();
    fake.fail(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        500,
        "etcd is taking a nap",
        2,
    );
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        for _ in 0..2 {
            let error = api_error(maps.get("anything").await);
            assert_eq!(error.code, 500);
            assert_eq!(error.reason, "InternalError");
            assert_eq!(error.message, "etcd is taking a nap");
        }
        let error = api_error(maps.get("anything").await);
        assert_eq!(error.code, 404, "the failure was used up");
    });
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/configmaps/anything"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 500, 404]);
}

/// kube-rs retries 429, 503 and 504 by itself (with backoff), so a test
/// that injects those sees them in `requests()` but not from the client,
/// unless it injects more of them than the client retries.
#[test]
fn kube_rs_retries_unavailable_by_itself() {
    let fake = FakeApi::start();
    fake.fail("GET", "/configmaps/anything", 503, "try again", 1);
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let error = api_error(maps.get("anything").await);
        assert_eq!(error.code, 404, "the 503 was retried");
    });
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 404]);
}

#[test]
fn writes_are_only_real_changes() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        maps.list(&ListParams::default()).await.expect("a read");
        maps.create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &config_map("x", json!({})),
        )
        .await
        .expect("a dry-run create");
        maps.create(&PostParams::default(), &config_map("x", json!({})))
            .await
            .expect("a create");
        maps.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .expect("a merge patch");
        maps.delete(
            "x",
            &DeleteParams {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .expect("a dry-run delete");
        maps.get("x")
            .await
            .expect("still there after a dry-run delete");
        maps.delete("x", &DeleteParams::default())
            .await
            .expect("a delete");
        let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        reviews
            .create(&PostParams::default(), &SelfSubjectAccessReview::default())
            .await
            .expect_err("an empty review is invalid");
    });
    let writes: Vec<(String, u16)> = fake
        .writes()
        .into_iter()
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        writes,
        [
            ("POST".to_string(), 201),
            ("PATCH".to_string(), 200),
            ("DELETE".to_string(), 200),
        ]
    );
    assert!(fake.requests().len() > writes.len());
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[test]
fn deleting_a_namespace_removes_its_objects() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(&PostParams::default(), &namespace("monitoring"))
            .await
            .expect("namespace");
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "monitoring");
        maps.create(&PostParams::default(), &config_map("doomed", json!({})))
            .await
            .expect("config map");
        let kept: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        kept.create(&PostParams::default(), &config_map("kept", json!({})))
            .await
            .expect("config map elsewhere");

        let answer = namespaces
            .delete("monitoring", &DeleteParams::default())
            .await
            .expect("the namespace is deleted");
        let deleted = answer.left().expect("the namespace object is returned");
        assert_eq!(
            deleted.status.and_then(|s| s.phase).as_deref(),
            Some("Terminating")
        );

        assert_eq!(api_error(maps.get("doomed").await).code, 404);
        assert_eq!(api_error(namespaces.get("monitoring").await).code, 404);
        kept.get("kept")
            .await
            .expect("other namespaces are untouched");

        let error = api_error(namespaces.delete("default", &DeleteParams::default()).await);
        assert_eq!((error.code, error.reason.as_str()), (403, "Forbidden"));
    });
    assert!(
        fake.get("v1", "ConfigMap", Some("monitoring"), "doomed")
            .is_none()
    );
    assert!(
        fake.get("v1", "ConfigMap", Some("default"), "kept")
            .is_some()
    );
}

#[test]
fn a_wrong_token_is_refused() {
    let fake = FakeApi::start();
    let namespaces: Value = ureq::get(&format!("{}/api/v1/namespaces", fake.url))
        .call()
        .expect("no token is accepted, as client-go sends none over http")
        .body_mut()
        .read_json()
        .expect("JSON");
    assert_eq!(namespaces["kind"], "NamespaceList");
    let wrong = ureq::get(&format!("{}/api/v1/namespaces", fake.url))
        .header("Authorization", "Bearer wrong")
        .call();
    assert!(
        matches!(wrong, Err(ureq::Error::StatusCode(401))),
        "{wrong:?}"
    );
    let version: Value = ureq::get(&format!("{}/version", fake.url))
        .call()
        .expect("/version answers")
        .body_mut()
        .read_json()
        .expect("JSON");
    assert_eq!(version["gitVersion"], "v1.33.2");
    let recorded: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(recorded, [200, 401, 200]);
}

#[test]
fn status_is_a_subresource() {
    use k8s_openapi::api::apps::v1::Deployment;
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                },
            },
            "status": {"readyReplicas": 1},
        }))
        .expect("a Deployment");
        let params = PatchParams::apply("telltale").force();
        let applied = deployments
            .patch("web", &params, &Patch::Apply(&deployment))
            .await
            .expect("apply");
        assert!(applied.status.is_none(), "the main resource ignores status");
        deployments
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"readyReplicas": 1, "replicas": 1}})),
            )
            .await
            .expect("the status subresource takes a merge patch");
        let read = deployments.get("web").await.expect("get");
        assert_eq!(read.status.and_then(|s| s.ready_replicas), Some(1));
        assert_eq!(
            read.metadata.generation,
            Some(1),
            "status does not bump the generation"
        );
    });
    fake.edit(
        "apps/v1",
        "Deployment",
        Some("default"),
        "web",
        json!({"status": {"readyReplicas": 0}}),
    );
    let edited = fake
        .get("apps/v1", "Deployment", Some("default"), "web")
        .expect("stored");
    assert_eq!(edited["status"]["readyReplicas"], 0);
    assert_eq!(edited["spec"]["replicas"], 1);
}

#[test]
fn apply_keeps_fields_another_manager_applies() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let apply = |manager: &'static str, data: Value| {
            let maps = maps.clone();
            async move {
                maps.patch(
                    "shared",
                    &PatchParams::apply(manager).force(),
                    &Patch::Apply(&config_map("shared", data)),
                )
                .await
                .expect("apply")
            }
        };
        apply("telltale", json!({"a": "1", "b": "1"})).await;
        let shared = apply("someone-else", json!({"b": "1"})).await;
        assert_eq!(
            shared.metadata.managed_fields.as_ref().map(Vec::len),
            Some(2)
        );
        let after = apply("telltale", json!({"a": "2"})).await;
        let data = after.data.expect("data");
        assert_eq!(data.get("a").map(String::as_str), Some("2"));
        assert_eq!(
            data.get("b").map(String::as_str),
            Some("1"),
            "someone-else still applies b"
        );
        let last = apply("someone-else", json!({})).await;
        let data = last.data.unwrap_or_default();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a"]);
    });
}

#[test]
fn lists_page_and_names_are_generated() {
    let fake = FakeApi::start();
    with_client(&fake, |client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut generated: ConfigMap =
            serde_json::from_value(json!({"metadata": {"generateName": "run-"}})).expect("cm");
        generated.metadata.name = None;
        let mut names = Vec::new();
        for _ in 0..3 {
            let created = maps
                .create(&PostParams::default(), &generated)
                .await
                .expect("created with a generated name");
            let name = created.name_any();
            assert!(name.starts_with("run-") && name.len() == 9, "{name}");
            names.push(name);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 3);

        let first = maps
            .list(&ListParams::default().limit(2))
            .await
            .expect("page 1");
        assert_eq!(first.items.len(), 2);
        let token = first.metadata.continue_.clone().expect("a continue token");
        let second = maps
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .expect("page 2");
        assert_eq!(second.items.len(), 1);
        assert!(
            second
                .metadata
                .continue_
                .as_deref()
                .unwrap_or("")
                .is_empty()
        );
    });
}

/// The fake runs its own runtime on its own thread, so it can also be
/// started from inside an async test.
#[tokio::test(flavor = "multi_thread")]
async fn works_from_an_async_test() {
    let fake = FakeApi::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = fake.kubeconfig(&dir.path().join("kubeconfig"), "async");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("the kubeconfig parses");
    assert_eq!(kubeconfig.current_context.as_deref(), Some("async"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}
