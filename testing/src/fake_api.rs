//! A **fake** Kubernetes API server for the installer's integration tests.
//!
//! This is a stand-in for the Kubernetes API server, because the machines
//! these tests run on have no cluster. It speaks the same REST dialect over
//! plain HTTP on `127.0.0.1` so that the real `kube` client (in-process, or
//! inside the `telltale` binary run as a subprocess through a kubeconfig that
//! [`FakeApi::kubeconfig`] writes) can talk to it unchanged: discovery
//! (legacy and aggregated), the generic object REST verbs, server-side apply,
//! merge patches, dry runs, `Status` error bodies with the reasons the real
//! server uses, and SelfSubjectAccessReviews.
//!
//! What is simplified, so that a passing test is not mistaken for proof of
//! behaviour the fake does not have:
//! - **No watch.** A `watch=true` request is refused with 405; a client that
//!   waits through a watcher cannot be tested against this fake.
//! - **No field-ownership conflicts.** Server-side apply always wins, as if
//!   `force=true` had been given. Field *ownership* is only approximated:
//!   each apply manager's field set is kept in `metadata.managedFields`
//!   (lists are atomic) so that a field a manager stops applying is removed,
//!   unless another managedFields entry also lists it. Create/update/merge
//!   patch requests (and [`FakeApi::edit`]) add no managedFields entries.
//!   As on the real server, a write that changes nothing keeps the
//!   resourceVersion; managedFields timestamps do not count as a change,
//!   but a new manager entry or a changed field set does (so the first apply
//!   by a manager to an object it did not apply before bumps it, even with
//!   identical values).
//! - **Namespace deletion is immediate.** The real server moves the Namespace
//!   to `Terminating` and lets the namespace controller delete its content;
//!   the fake deletes every object in it at once (the DELETE answer still
//!   carries `deletionTimestamp` and phase `Terminating`, as the real one
//!   does). Finalizers are ignored everywhere: DELETE removes immediately.
//! - **No admission, no defaulting, no schema validation**, apart from what
//!   clients observably rely on: Namespaces get their
//!   `kubernetes.io/metadata.name` label, `spec.finalizers` and phase
//!   `Active`; CRDs are checked for the fields the fake needs and become
//!   `Established` at once; `status` sent to the main resource of a type with
//!   a status subresource is ignored, as on the real server (seed readiness
//!   with [`FakeApi::insert`] or [`FakeApi::edit`], the way a controller
//!   would write it).
//! - Authentication: a request with a bearer token other than the
//!   kubeconfig's is refused (401); one without a token is accepted (client-go
//!   does not send tokens over plain http). Authorization: everything is
//!   allowed except what [`FakeApi::deny`] lists, and a denial applies both
//!   to SelfSubjectAccessReviews and to the real request (403 Forbidden), as
//!   RBAC would.
//! - Bodies are decoded as JSON only: protobuf or YAML bodies get 415 (so
//!   kubectl, which creates with protobuf, is not a supported client; kube-rs
//!   sends JSON). Responses are always JSON.
//! - Not served: subresources other than `status`, JSON patch
//!   (`application/json-patch+json`, 415), tables, OpenAPI, field selectors
//!   other than `metadata.name`/`metadata.namespace`, conversion webhooks
//!   (a custom resource read at another served version just gets that
//!   `apiVersion`).
//! - DELETE answers with the deleted object for every kind (the real server
//!   answers some kinds with a `Status` of `Success`; kube-rs accepts both).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State as Shared};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

/// The Kubernetes version [`FakeApi::start`] reports.
pub const DEFAULT_GIT_VERSION: &str = "v1.33.2";
/// The bearer token of the kubeconfig's user; requests must carry it.
pub const FAKE_TOKEN: &str = "fake-token";
/// The user that token authenticates as (it appears in 403 messages).
pub const FAKE_USER: &str = "fake-user";

/// The API server's request body limit.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Namespaces a fresh cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-node-lease", "kube-public", "kube-system"];
/// Namespaces the real server refuses to delete.
const UNDELETABLE_NAMESPACES: [&str; 3] = ["default", "kube-public", "kube-system"];
const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];
const APPLY_PATCH: &str = "application/apply-patch+yaml";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// One request the fake received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The path without the query, as sent (not percent-decoded).
    pub path: String,
    /// The raw query string, `""` when there is none.
    pub query: String,
    pub content_type: Option<String>,
    /// The status the fake answered with (including injected failures).
    pub status: u16,
    /// A dry run: `dryRun=All` in the query, or in the DeleteOptions body of
    /// a DELETE (where kube-rs puts it).
    pub dry_run: bool,
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        write!(f, " -> {}", self.status)
    }
}

/// A running fake API server; it stops when this is dropped.
pub struct FakeApi {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// A fake reporting Kubernetes [`DEFAULT_GIT_VERSION`], with the
    /// namespaces a fresh cluster has (default, kube-node-lease, kube-public,
    /// kube-system) and nothing else.
    pub fn start() -> FakeApi {
        FakeApi::with_version(DEFAULT_GIT_VERSION)
    }

    /// A fake reporting `git_version` (e.g. `"v1.24.0"`) from `/version`.
    pub fn with_version(git_version: &str) -> FakeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("the fake API server binds 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("the fake API server's socket is non-blocking");
        let port = listener.local_addr().expect("a bound address").port();
        let state = Arc::new(Mutex::new(State::new(git_version, port)));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        // The listener is bound before the thread starts, so connections made
        // right after `start` returns wait in the backlog instead of failing.
        let thread = std::thread::Builder::new()
            .name("fake-kube-api".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("the fake API server's runtime starts");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("the fake API server's listener");
                    let app = Router::new().fallback(serve).with_state(shared);
                    tokio::select! {
                        served = axum::serve(listener, app) => {
                            if let Err(e) = served {
                                eprintln!("fake API server stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("the fake API server's thread starts");
        FakeApi {
            url: format!("http://127.0.0.1:{port}"),
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Writes a kubeconfig at `path` (creating its directory) with one
    /// cluster (server = [`FakeApi::url`]), one user (token
    /// [`FAKE_TOKEN`]) and one context named `context`, which is the
    /// current context. Returns `path`.
    pub fn kubeconfig(&self, path: &Path, context: &str) -> PathBuf {
        let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake-cluster\n  cluster:\n    server: {server}\n\
             users:\n\
             - name: {user}\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: {context}\n  context:\n    cluster: fake-cluster\n    user: {user}\n\
             current-context: {context}\n\
             preferences: {{}}\n",
            server = quote(&self.url),
            user = quote(FAKE_USER),
            token = quote(FAKE_TOKEN),
            context = quote(context),
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path.to_path_buf()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// The requests that (try to) change state: POST, PUT, PATCH and DELETE,
    /// whatever their answer, except SelfSubjectAccessReview POSTs and dry
    /// runs.
    pub fn writes(&self) -> Vec<Recorded> {
        self.state()
            .requests
            .iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
            .filter(|r| !r.dry_run)
            .filter(|r| !(r.method == "POST" && r.path.ends_with("/selfsubjectaccessreviews")))
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Stores `object` as the API server would, bypassing the REST layer
    /// (no request is recorded, status is kept): sets `metadata.uid`,
    /// `creationTimestamp` and `generation` unless given, and a new
    /// `resourceVersion`. Replaces an existing object of the same name.
    ///
    /// The apiVersion/kind must be known (built in, from a stored CRD, or
    /// [`FakeApi::register`]ed); a namespaced object needs
    /// `metadata.namespace`, and that Namespace must exist. A CRD gets the
    /// status of an established one (unless it has a status) and serves its
    /// kind at once.
    pub fn insert(&self, object: Value) {
        self.state().seed(object);
    }

    /// The stored object, with `apiVersion` as asked, or `None` (also when
    /// the kind is not served, e.g. its CRD was never applied).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.state();
        let ty = st.type_of(api_version, kind)?;
        st.objects
            .get(&Key::new(&ty, namespace, name))
            .map(|o| present_as(o, api_version, kind))
    }

    /// Every stored object of that kind, in every namespace, ordered by
    /// namespace then name (empty when the kind is not served).
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let st = self.state();
        let Some(ty) = st.type_of(api_version, kind) else {
            return Vec::new();
        };
        st.objects
            .iter()
            .filter(|(k, _)| k.is(&ty))
            .map(|(_, o)| present_as(o, api_version, kind))
            .collect()
    }

    /// Changes the object like `kubectl edit` (or a controller) would, with
    /// JSON merge patch (RFC 7386) semantics; `status` may be changed too.
    /// Bumps the resourceVersion (and the generation, if anything outside
    /// metadata and status changed) unless nothing changed. Panics if the
    /// object does not exist.
    pub fn edit(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        merge_patch: Value,
    ) {
        let mut st = self.state();
        let ty = st.known_kind(api_version, kind);
        let key = Key::new(&ty, namespace, name);
        let old = st
            .objects
            .get(&key)
            .cloned()
            .unwrap_or_else(|| panic!("edit: no {kind} {namespace:?}/{name} in the fake"));
        let mut new = old.clone();
        merge_patch_into(&mut new, &merge_patch);
        if let Err(e) = st.update_object(&ty, &key, &old, new, false, false) {
            panic!("edit of {kind} {name} refused: {}", e.text());
        }
    }

    /// Deletes the object as a DELETE would (a Namespace takes its objects
    /// along, a CRD its custom resources). Panics if it does not exist.
    pub fn remove(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) {
        let mut st = self.state();
        let ty = st.known_kind(api_version, kind);
        let key = Key::new(&ty, namespace, name);
        if !st.objects.contains_key(&key) {
            panic!("remove: no {kind} {namespace:?}/{name} in the fake");
        }
        st.delete_object(&ty, &key);
    }

    /// From now on, a SelfSubjectAccessReview for this (verb, group,
    /// resource, namespace) answers `allowed: false`, and the matching
    /// request itself is refused with 403 Forbidden. `""` as namespace is the
    /// cluster scope (and an all-namespaces list); `"*"` in any position
    /// matches anything.
    pub fn deny(&self, verb: &str, group: &str, resource: &str, namespace: &str) {
        self.state().denied.push([
            verb.to_string(),
            group.to_string(),
            resource.to_string(),
            namespace.to_string(),
        ]);
    }

    /// Failure injection: the next `times` requests whose method is `method`
    /// (case-insensitive; `"*"` for any) and whose path contains
    /// `path_contains` are answered with `status` and a `Status` body with
    /// `message` (and the reason the real server gives that code), before
    /// anything else is checked. They are recorded like any other request.
    ///
    /// kube-rs retries 429, 503 and 504 by itself (with backoff), so one
    /// injected 503 is invisible to the client: inject more, or use 500.
    pub fn fail(
        &self,
        method: &str,
        path_contains: &str,
        status: u16,
        message: &str,
        times: usize,
    ) {
        if times == 0 {
            return;
        }
        self.state().failures.push(Failure {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            status,
            message: message.to_string(),
            remaining: times,
        });
    }

    /// Registers a resource type as if its CRD existed (without storing a
    /// CRD object), so it is discoverable and objects of it can be seeded
    /// and served. Registering another version of a registered type adds
    /// that version.
    pub fn register(&self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) {
        let mut st = self.state();
        if let Some(ty) = st
            .types
            .iter_mut()
            .find(|t| t.group == group && t.plural == plural && t.origin == Origin::Registered)
        {
            if !ty.versions.iter().any(|v| v == version) {
                ty.versions.push(version.to_string());
                sort_versions(&mut ty.versions);
            }
            return;
        }
        st.types
            .retain(|t| !(t.group == group && t.plural == plural));
        st.types.push(ResourceType {
            group: group.to_string(),
            versions: vec![version.to_string()],
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            status: false,
            short_names: Vec::new(),
            origin: Origin::Registered,
        });
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not turn every later request into a
    // second, confusing panic.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// HTTP plumbing

struct Req {
    method: Method,
    path: String,
    raw_query: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    accept: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    /// `dryRun=All` in the query, or in a DELETE's DeleteOptions body.
    fn dry_run(&self) -> bool {
        if self.query.iter().any(|(k, v)| k == "dryRun" && v == "All") {
            return true;
        }
        self.method == Method::DELETE
            && serde_json::from_slice::<Value>(&self.body).is_ok_and(|b| {
                b.get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All"))
            })
    }

    fn media_type(&self) -> String {
        self.content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

struct Resp {
    code: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Resp {
    fn json(code: u16, value: &Value) -> Resp {
        Resp {
            code,
            content_type: "application/json",
            body: serde_json::to_vec(value).expect("JSON serialises"),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Answer<T = Resp> = Result<T, Resp>;

async fn serve(
    Shared(state): Shared<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header_value = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, MAX_BODY).await;
    let req = Req {
        method,
        path: uri.path().to_string(),
        raw_query: uri.query().unwrap_or("").to_string(),
        query,
        content_type: header_value(header::CONTENT_TYPE),
        accept: header_value(header::ACCEPT).unwrap_or_default(),
        authorization: header_value(header::AUTHORIZATION),
        body: body.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
    };
    let resp = {
        let mut st = lock(&state);
        let resp = match body {
            Ok(_) => st.dispatch(&req),
            Err(_) => status(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_BODY}"),
            ),
        };
        st.requests.push(Recorded {
            method: req.method.to_string(),
            path: req.path.clone(),
            query: req.raw_query.clone(),
            content_type: req.content_type.clone(),
            status: resp.code,
            dry_run: req.dry_run(),
        });
        resp
    };
    Response::builder()
        .status(resp.code)
        .header(header::CONTENT_TYPE, resp.content_type)
        .body(Body::from(resp.body))
        .expect("a valid response")
}

// ---------------------------------------------------------------------------
// Status bodies

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn status_with(
    code: u16,
    reason: &str,
    message: impl Into<String>,
    details: Option<Value>,
) -> Resp {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    Resp::json(code, &body)
}

fn status(code: u16, reason: &str, message: impl Into<String>) -> Resp {
    status_with(code, reason, message, None)
}

fn details(ty: &ResourceType, name: &str) -> Value {
    let mut d = json!({"kind": ty.plural});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !ty.group.is_empty() {
        d["group"] = json!(ty.group);
    }
    d
}

fn bad_request(message: impl Into<String>) -> Resp {
    status(400, "BadRequest", message)
}

fn no_such_path() -> Resp {
    status_with(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn method_not_allowed() -> Resp {
    status_with(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

fn not_found(ty: &ResourceType, name: &str) -> Resp {
    status_with(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", ty.qualified()),
        Some(details(ty, name)),
    )
}

fn namespace_not_found(ns: &str) -> Resp {
    status_with(
        404,
        "NotFound",
        format!("namespaces \"{ns}\" not found"),
        Some(json!({"name": ns, "kind": "namespaces"})),
    )
}

fn conflict(ty: &ResourceType, name: &str) -> Resp {
    status_with(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            ty.qualified()
        ),
        Some(details(ty, name)),
    )
}

fn invalid(ty: &ResourceType, name: &str, cause: &str) -> Resp {
    let group_kind = if ty.group.is_empty() {
        ty.kind.clone()
    } else {
        format!("{}.{}", ty.kind, ty.group)
    };
    let mut d = details(ty, name);
    d["kind"] = json!(ty.kind);
    status_with(
        422,
        "Invalid",
        format!("{group_kind} \"{name}\" is invalid: {cause}"),
        Some(d),
    )
}

// ---------------------------------------------------------------------------
// Types and storage

#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    BuiltIn,
    /// Served because the CRD of this name is stored.
    Crd(String),
    /// Served because a test called [`FakeApi::register`].
    Registered,
}

#[derive(Clone, Debug)]
struct ResourceType {
    group: String,
    /// Served versions, highest priority first.
    versions: Vec<String>,
    kind: String,
    plural: String,
    singular: String,
    namespaced: bool,
    verbs: Vec<String>,
    /// Has a `status` subresource.
    status: bool,
    short_names: Vec<String>,
    origin: Origin,
}

impl ResourceType {
    fn custom(&self) -> bool {
        self.origin != Origin::BuiltIn
    }

    fn is_core(&self, plural: &str) -> bool {
        self.group.is_empty() && self.plural == plural
    }

    fn is_namespace(&self) -> bool {
        self.is_core("namespaces")
    }

    fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }

    fn is_access_review(&self) -> bool {
        self.group == "authorization.k8s.io" && self.plural == "selfsubjectaccessreviews"
    }

    /// `configmaps`, `deployments.apps`: how the real server names a
    /// resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn scope(&self) -> &'static str {
        if self.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }
    }
}

struct BuiltIn {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    status: bool,
    short_names: &'static [&'static str],
}

const fn builtin(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    status: bool,
    short_names: &'static [&'static str],
) -> BuiltIn {
    BuiltIn {
        group,
        kind,
        plural,
        namespaced,
        status,
        short_names,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// The built-in types the fake serves, all at version v1.
const BUILT_INS: [BuiltIn; 21] = [
    builtin("", "Namespace", "namespaces", false, true, &["ns"]),
    builtin("", "ConfigMap", "configmaps", true, false, &["cm"]),
    builtin("", "Secret", "secrets", true, false, &[]),
    builtin("", "Service", "services", true, true, &["svc"]),
    builtin(
        "",
        "ServiceAccount",
        "serviceaccounts",
        true,
        false,
        &["sa"],
    ),
    builtin("", "Pod", "pods", true, true, &["po"]),
    builtin(
        "",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        true,
        &["pvc"],
    ),
    builtin("", "Event", "events", true, false, &["ev"]),
    builtin("", "Node", "nodes", false, true, &["no"]),
    builtin(
        "",
        "PersistentVolume",
        "persistentvolumes",
        false,
        true,
        &["pv"],
    ),
    builtin("apps", "Deployment", "deployments", true, true, &["deploy"]),
    builtin("apps", "StatefulSet", "statefulsets", true, true, &["sts"]),
    builtin("apps", "DaemonSet", "daemonsets", true, true, &["ds"]),
    builtin("coordination.k8s.io", "Lease", "leases", true, false, &[]),
    builtin(
        "storage.k8s.io",
        "StorageClass",
        "storageclasses",
        false,
        false,
        &["sc"],
    ),
    builtin(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        true,
        &["crd", "crds"],
    ),
    builtin(RBAC, "ClusterRole", "clusterroles", false, false, &[]),
    builtin(
        RBAC,
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        false,
        &[],
    ),
    builtin(RBAC, "Role", "roles", true, false, &[]),
    builtin(RBAC, "RoleBinding", "rolebindings", true, false, &[]),
    builtin(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        false,
        &[],
    ),
];

/// Where an object lives: version-insensitive, like etcd's keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: String,
    plural: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(ty: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
        Key {
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: if ty.namespaced {
                namespace.unwrap_or("").to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    fn is(&self, ty: &ResourceType) -> bool {
        self.group == ty.group && self.plural == ty.plural
    }
}

struct Failure {
    method: String,
    path_contains: String,
    status: u16,
    message: String,
    remaining: usize,
}

enum Target {
    /// `None`: a cluster-scoped type, or every namespace.
    Collection(Option<String>),
    Item {
        namespace: Option<String>,
        name: String,
        status: bool,
    },
}

struct State {
    git_version: String,
    port: u16,
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    /// The last resourceVersion handed out; global, like etcd's revision.
    revision: u64,
    uids: u64,
    generated_names: u64,
    requests: Vec<Recorded>,
    denied: Vec<[String; 4]>,
    failures: Vec<Failure>,
}

impl State {
    fn new(git_version: &str, port: u16) -> State {
        let types = BUILT_INS
            .iter()
            .map(|b| ResourceType {
                group: b.group.to_string(),
                versions: vec!["v1".to_string()],
                kind: b.kind.to_string(),
                plural: b.plural.to_string(),
                singular: b.kind.to_lowercase(),
                namespaced: b.namespaced,
                verbs: if b.plural == "selfsubjectaccessreviews" {
                    vec!["create".to_string()]
                } else if b.plural == "namespaces" {
                    ALL_VERBS
                        .iter()
                        .filter(|v| **v != "deletecollection")
                        .map(|v| v.to_string())
                        .collect()
                } else {
                    ALL_VERBS.iter().map(|v| v.to_string()).collect()
                },
                status: b.status,
                short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                origin: Origin::BuiltIn,
            })
            .collect();
        let mut st = State {
            git_version: git_version.to_string(),
            port,
            types,
            objects: BTreeMap::new(),
            revision: 0,
            uids: 0,
            generated_names: 0,
            requests: Vec::new(),
            denied: Vec::new(),
            failures: Vec::new(),
        };
        for ns in INITIAL_NAMESPACES {
            st.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        st
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!(
            "{:08x}-fa4e-4a91-8000-{:012x}",
            u32::from(self.port),
            self.uids
        )
    }

    fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// The type of `kind` in the group of `api_version` (any version).
    fn type_of(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        let (group, _) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }

    fn known_kind(&self, api_version: &str, kind: &str) -> ResourceType {
        self.type_of(api_version, kind).unwrap_or_else(|| {
            panic!(
                "the fake API server does not know {api_version} {kind}: \
                 apply its CRD or call FakeApi::register first"
            )
        })
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects.contains_key(&Key {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.to_string(),
        })
    }

    fn is_denied(&self, verb: &str, group: &str, resource: &str, namespace: &str) -> bool {
        let asked = [verb, group, resource, namespace];
        self.denied.iter().any(|d| {
            d.iter()
                .zip(asked)
                .all(|(rule, value)| rule == "*" || rule == value)
        })
    }

    fn authorize(
        &self,
        verb: &str,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Answer<()> {
        let ns = namespace.unwrap_or("");
        if !self.is_denied(verb, &ty.group, &ty.plural, ns) {
            return Ok(());
        }
        let what = match name {
            Some(name) => format!("{} \"{name}\"", ty.qualified()),
            None => ty.qualified(),
        };
        let scope = if ns.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{ns}\"")
        };
        Err(status_with(
            403,
            "Forbidden",
            format!(
                "{what} is forbidden: User \"{FAKE_USER}\" cannot {verb} resource \"{}\" \
                 in API group \"{}\" {scope}",
                ty.plural, ty.group
            ),
            Some(details(ty, name.unwrap_or(""))),
        ))
    }

    // -- dispatch ----------------------------------------------------------

    fn dispatch(&mut self, req: &Req) -> Resp {
        if let Some(injected) = self.injected(req) {
            return injected;
        }
        self.route(req).unwrap_or_else(|e| e)
    }

    fn injected(&mut self, req: &Req) -> Option<Resp> {
        let index = self.failures.iter().position(|f| {
            (f.method == "*" || f.method.eq_ignore_ascii_case(req.method.as_str()))
                && req.path.contains(&f.path_contains)
        })?;
        let failure = &mut self.failures[index];
        failure.remaining -= 1;
        let resp = status(
            failure.status,
            reason_for(failure.status),
            failure.message.clone(),
        );
        if failure.remaining == 0 {
            self.failures.remove(index);
        }
        Some(resp)
    }

    /// A wrong bearer token is refused (401). No token at all is accepted:
    /// client-go (kubectl) does not send tokens over plain http, and the
    /// fake only speaks http.
    fn authenticate(&self, req: &Req) -> Answer<()> {
        match req.authorization.as_deref() {
            Some(value) if value != format!("Bearer {FAKE_TOKEN}") => {
                Err(status(401, "Unauthorized", "Unauthorized"))
            }
            _ => Ok(()),
        }
    }

    fn route(&mut self, req: &Req) -> Answer {
        let decoded: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        self.authenticate(req)?;
        let get = req.method == Method::GET;
        match segments.as_slice() {
            ["version"] if get => Ok(self.version()),
            ["healthz" | "livez" | "readyz"] if get => Ok(Resp {
                code: 200,
                content_type: "text/plain; charset=utf-8",
                body: b"ok".to_vec(),
            }),
            ["api"] if get => Ok(self.core_versions(req)),
            ["apis"] if get => Ok(self.group_list(req)),
            ["apis", group] if get => self.api_group(group),
            ["api", "v1"] if get => self.resource_list("", "v1"),
            ["apis", group, version] if get => self.resource_list(group, version),
            ["api", "v1", rest @ ..] => self.rest(req, "", "v1", rest),
            ["apis", group, version, rest @ ..] => self.rest(req, group, version, rest),
            _ => Err(no_such_path()),
        }
    }

    // -- discovery ---------------------------------------------------------

    fn version(&self) -> Resp {
        let bare = self.git_version.trim_start_matches('v');
        let mut parts = bare.split('.');
        let major: String = parts
            .next()
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let minor: String = parts
            .next()
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Resp::json(
            200,
            &json!({
                "major": major,
                "minor": minor,
                "gitVersion": self.git_version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2025-06-17T18:31:53Z",
                "goVersion": "go1.24.4",
                "compiler": "gc",
                "platform": "linux/amd64",
            }),
        )
    }

    fn wants_aggregated(req: &Req) -> bool {
        req.accept.contains("as=APIGroupDiscoveryList") && req.accept.contains("v=v2")
    }

    /// Non-core groups in serving order, each with its versions (preferred
    /// first).
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for ty in self.types.iter().filter(|t| !t.group.is_empty()) {
            let entry = match groups.iter_mut().position(|(g, _)| *g == ty.group) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push((ty.group.clone(), Vec::new()));
                    groups.last_mut().expect("just pushed")
                }
            };
            for v in &ty.versions {
                if !entry.1.contains(v) {
                    entry.1.push(v.clone());
                }
            }
        }
        for (_, versions) in &mut groups {
            sort_versions(versions);
        }
        groups
    }

    fn core_versions(&self, req: &Req) -> Resp {
        if State::wants_aggregated(req) {
            let body = json!({
                "kind": "APIGroupDiscoveryList",
                "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {},
                "items": [self.aggregated_group("", &["v1".to_string()])],
            });
            let mut resp = Resp::json(200, &body);
            resp.content_type = AGGREGATED_DISCOVERY;
            return resp;
        }
        Resp::json(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{
                    "clientCIDR": "0.0.0.0/0",
                    "serverAddress": format!("127.0.0.1:{}", self.port),
                }],
            }),
        )
    }

    fn group_json(group: &str, versions: &[String]) -> Value {
        let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
        json!({
            "name": group,
            "versions": versions.iter().map(gv).collect::<Vec<_>>(),
            "preferredVersion": gv(&versions[0]),
        })
    }

    fn group_list(&self, req: &Req) -> Resp {
        let groups = self.groups();
        if State::wants_aggregated(req) {
            let items: Vec<Value> = groups
                .iter()
                .map(|(g, versions)| self.aggregated_group(g, versions))
                .collect();
            let mut resp = Resp::json(
                200,
                &json!({
                    "kind": "APIGroupDiscoveryList",
                    "apiVersion": "apidiscovery.k8s.io/v2",
                    "metadata": {},
                    "items": items,
                }),
            );
            resp.content_type = AGGREGATED_DISCOVERY;
            return resp;
        }
        let groups: Vec<Value> = groups
            .iter()
            .map(|(g, versions)| State::group_json(g, versions))
            .collect();
        Resp::json(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        )
    }

    fn api_group(&self, group: &str) -> Answer {
        let (name, versions) = self
            .groups()
            .into_iter()
            .find(|(g, _)| g == group)
            .ok_or_else(no_such_path)?;
        let mut body = State::group_json(&name, &versions);
        body["kind"] = json!("APIGroup");
        body["apiVersion"] = json!("v1");
        Ok(Resp::json(200, &body))
    }

    fn served(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
            .collect()
    }

    fn resource_list(&self, group: &str, version: &str) -> Answer {
        let types = self.served(group, version);
        if types.is_empty() {
            return Err(no_such_path());
        }
        let mut resources = Vec::new();
        for ty in types {
            let mut entry = json!({
                "name": ty.plural,
                "singularName": ty.singular,
                "namespaced": ty.namespaced,
                "kind": ty.kind,
                "verbs": ty.verbs,
            });
            if !ty.short_names.is_empty() {
                entry["shortNames"] = json!(ty.short_names);
            }
            resources.push(entry);
            if ty.status {
                resources.push(json!({
                    "name": format!("{}/status", ty.plural),
                    "singularName": "",
                    "namespaced": ty.namespaced,
                    "kind": ty.kind,
                    "verbs": STATUS_VERBS,
                }));
            }
        }
        Ok(Resp::json(
            200,
            &json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": api_version_of(group, version),
                "resources": resources,
            }),
        ))
    }

    fn aggregated_group(&self, group: &str, versions: &[String]) -> Value {
        let versions: Vec<Value> = versions
            .iter()
            .map(|version| {
                let resources: Vec<Value> = self
                    .served(group, version)
                    .into_iter()
                    .map(|ty| {
                        let kind = json!({"group": group, "version": version, "kind": ty.kind});
                        let mut r = json!({
                            "resource": ty.plural,
                            "responseKind": kind,
                            "scope": ty.scope(),
                            "singularResource": ty.singular,
                            "verbs": ty.verbs,
                        });
                        if !ty.short_names.is_empty() {
                            r["shortNames"] = json!(ty.short_names);
                        }
                        if ty.status {
                            r["subresources"] = json!([{
                                "subresource": "status",
                                "responseKind": kind,
                                "verbs": STATUS_VERBS,
                            }]);
                        }
                        r
                    })
                    .collect();
                json!({"version": version, "resources": resources, "freshness": "Current"})
            })
            .collect();
        let metadata = if group.is_empty() {
            json!({"creationTimestamp": null})
        } else {
            json!({"name": group, "creationTimestamp": null})
        };
        json!({"metadata": metadata, "versions": versions})
    }

    // -- REST ----------------------------------------------------------------

    fn resolve(&self, group: &str, version: &str, rest: &[&str]) -> Answer<(ResourceType, Target)> {
        if let ["namespaces", ns, plural, tail @ ..] = rest
            && let Some(ty) = self
                .find_type(group, version, plural)
                .filter(|t| t.namespaced)
        {
            let namespace = Some(ns.to_string());
            let target = match tail {
                [] => Target::Collection(namespace),
                [name] => Target::Item {
                    namespace,
                    name: name.to_string(),
                    status: false,
                },
                [name, "status"] if ty.status => Target::Item {
                    namespace,
                    name: name.to_string(),
                    status: true,
                },
                _ => return Err(no_such_path()),
            };
            return Ok((ty, target));
        }
        let [plural, tail @ ..] = rest else {
            return Err(no_such_path());
        };
        let ty = self
            .find_type(group, version, plural)
            .ok_or_else(no_such_path)?;
        let target = match tail {
            [] => Target::Collection(None),
            [name] if !ty.namespaced => Target::Item {
                namespace: None,
                name: name.to_string(),
                status: false,
            },
            [name, "status"] if !ty.namespaced && ty.status => Target::Item {
                namespace: None,
                name: name.to_string(),
                status: true,
            },
            _ => return Err(no_such_path()),
        };
        Ok((ty, target))
    }

    fn rest(&mut self, req: &Req, group: &str, version: &str, rest: &[&str]) -> Answer {
        let (ty, target) = self.resolve(group, version, rest)?;
        if ty.is_access_review() {
            return match (&req.method, target) {
                (&Method::POST, Target::Collection(None)) => self.access_review(req, &ty, version),
                _ => Err(method_not_allowed()),
            };
        }
        if req.flag("watch") {
            return Err(status(
                405,
                "MethodNotAllowed",
                "watch is not supported by the fake API server (tests/it/common/fake_api.rs)",
            ));
        }
        match target {
            Target::Collection(ns) => match req.method {
                Method::GET => self.list(req, &ty, version, ns.as_deref()),
                Method::POST if ns.is_some() || !ty.namespaced => {
                    self.create(req, &ty, version, ns.as_deref())
                }
                Method::DELETE
                    if (ns.is_some() || !ty.namespaced)
                        && ty.verbs.iter().any(|v| v == "deletecollection") =>
                {
                    self.delete_collection(req, &ty, version, ns.as_deref())
                }
                _ => Err(method_not_allowed()),
            },
            Target::Item {
                namespace,
                name,
                status,
            } => {
                let ns = namespace.as_deref();
                match req.method {
                    Method::GET => {
                        self.authorize("get", &ty, ns, Some(&name))?;
                        let key = Key::new(&ty, ns, &name);
                        let object = self
                            .objects
                            .get(&key)
                            .ok_or_else(|| not_found(&ty, &name))?;
                        Ok(Resp::json(200, &present(object, &ty, version)))
                    }
                    Method::PUT => self.replace(req, &ty, version, ns, &name, status),
                    Method::PATCH => self.patch(req, &ty, version, ns, &name, status),
                    Method::DELETE if !status => self.delete(req, &ty, version, ns, &name),
                    _ => Err(method_not_allowed()),
                }
            }
        }
    }

    fn list(&self, req: &Req, ty: &ResourceType, version: &str, ns: Option<&str>) -> Answer {
        self.authorize("list", ty, ns, None)?;
        let labels = parse_label_selector(req.param("labelSelector").unwrap_or(""))
            .map_err(|e| bad_request(format!("unable to parse requirement: {e}")))?;
        let fields =
            parse_field_selector(req.param("fieldSelector").unwrap_or("")).map_err(bad_request)?;
        let matching: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| k.is(ty) && ns.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, o)| labels.iter().all(|r| r.matches(o)))
            .filter(|(_, o)| fields.iter().all(|r| r.matches(o)))
            .map(|(_, o)| present(o, ty, version))
            .collect();
        let start = match req.param("continue").filter(|c| !c.is_empty()) {
            None => 0,
            Some(token) => token
                .strip_prefix("fake-continue-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| bad_request(format!("invalid continue token {token:?}")))?,
        };
        let limit = req
            .param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let mut metadata = json!({"resourceVersion": self.revision.to_string()});
        let page: Vec<Value> = match limit {
            Some(limit) => {
                let end = (start + limit).min(matching.len());
                if end < matching.len() {
                    metadata["continue"] = json!(format!("fake-continue-{end}"));
                    metadata["remainingItemCount"] = json!(matching.len() - end);
                }
                matching.get(start..end).unwrap_or_default().to_vec()
            }
            None => matching.into_iter().skip(start).collect(),
        };
        Ok(Resp::json(200, &list_json(ty, version, metadata, page)))
    }

    fn create(&mut self, req: &Req, ty: &ResourceType, version: &str, ns: Option<&str>) -> Answer {
        let object = body_object(req)?;
        self.authorize("create", ty, ns, None)?;
        let stored = self.create_object(ty, version, ns, object, req.dry_run(), None)?;
        Ok(Resp::json(201, &present(&stored, ty, version)))
    }

    /// The create path shared by POST and apply.
    fn create_object(
        &mut self,
        ty: &ResourceType,
        version: &str,
        ns: Option<&str>,
        mut object: Value,
        dry_run: bool,
        managed: Option<Value>,
    ) -> Answer<Value> {
        check_type_meta(ty, version, &object)?;
        let meta = metadata_mut(&mut object);
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_string(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    self.generated_names += 1;
                    format!("{prefix}{}", name_suffix(self.generated_names))
                }
                _ => {
                    return Err(invalid(
                        ty,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        meta.insert("name".into(), json!(name));
        let ns = namespace_for(ty, ns, meta)?;
        if let Some(ns) = &ns
            && !self.namespace_exists(ns)
        {
            return Err(namespace_not_found(ns));
        }
        let key = Key::new(ty, ns.as_deref(), &name);
        if self.objects.contains_key(&key) {
            return Err(status_with(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", ty.qualified()),
                Some(details(ty, &name)),
            ));
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(status(
                500,
                "InternalError",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        let uid = self.new_uid();
        let meta = metadata_mut(&mut object);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        if let Some(entry) = managed {
            meta.insert("managedFields".into(), json!([entry]));
        }
        if let Value::Object(map) = &mut object
            && ty.status
        {
            map.remove("status");
        }
        self.default_object(ty, &mut object, None)?;
        if !dry_run {
            let rv = self.next_revision();
            metadata_mut(&mut object).insert("resourceVersion".into(), json!(rv));
            self.store(ty, key, object.clone());
        }
        Ok(object)
    }

    fn store(&mut self, ty: &ResourceType, key: Key, object: Value) {
        self.objects.insert(key, object.clone());
        if ty.is_crd() {
            self.register_crd(&object);
        }
    }

    /// What the real server sets on its own: Namespace labels, finalizers
    /// and phase; an established CRD's status.
    fn default_object(
        &self,
        ty: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Answer<()> {
        if ty.is_namespace() {
            default_namespace(object);
        }
        if ty.is_crd() {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let crd = Crd::parse(object).map_err(|cause| invalid(ty, &name, &cause))?;
            object["status"] = crd.status(old);
        }
        Ok(())
    }

    /// The update path shared by PUT, merge patch, apply and `edit`.
    /// `api`: a request to the main resource (defaulting applies).
    fn update_object(
        &mut self,
        ty: &ResourceType,
        key: &Key,
        old: &Value,
        mut new: Value,
        dry_run: bool,
        api: bool,
    ) -> Answer<Value> {
        if !new.is_object() {
            return Err(bad_request("the object must be a JSON object"));
        }
        for field in ["apiVersion", "kind"] {
            new[field] = old[field].clone();
        }
        let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
        let meta = metadata_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(field) {
                Some(value) => meta.insert(field.into(), value.clone()),
                None => meta.remove(field),
            };
        }
        if api {
            self.default_object(ty, &mut new, Some(old))?;
        }
        if comparable(old) == comparable(&new) {
            return Ok(old.clone());
        }
        if without_meta_and_status(old) != without_meta_and_status(&new) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        if !dry_run {
            let rv = self.next_revision();
            metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv));
            self.store(ty, key.clone(), new.clone());
        }
        Ok(new)
    }

    fn existing(&self, ty: &ResourceType, key: &Key) -> Answer<Value> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(ty, &key.name))
    }

    fn replace(
        &mut self,
        req: &Req,
        ty: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        status_only: bool,
    ) -> Answer {
        let mut body = body_object(req)?;
        self.authorize("update", ty, ns, Some(name))?;
        check_type_meta(ty, version, &body)?;
        check_identity(&mut body, ty, ns, name)?;
        let key = Key::new(ty, ns, name);
        let old = self.existing(ty, &key)?;
        check_precondition(ty, &old, &body)?;
        let new = if status_only {
            with_status_of(&old, &body)
        } else {
            if ty.status {
                body = with_status_of(&body, &old);
            }
            if body.pointer("/metadata/managedFields").is_none()
                && let Some(managed) = old.pointer("/metadata/managedFields")
            {
                metadata_mut(&mut body).insert("managedFields".into(), managed.clone());
            }
            body
        };
        let stored = self.update_object(ty, &key, &old, new, req.dry_run(), !status_only)?;
        Ok(Resp::json(200, &present(&stored, ty, version)))
    }

    fn patch(
        &mut self,
        req: &Req,
        ty: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        status_only: bool,
    ) -> Answer {
        let media_type = req.media_type();
        let apply = match media_type.as_str() {
            APPLY_PATCH => true,
            MERGE_PATCH => false,
            STRATEGIC_PATCH if !ty.custom() => false,
            JSON_PATCH => {
                return Err(status(
                    415,
                    "UnsupportedMediaType",
                    "application/json-patch+json is not implemented by the fake API server \
                     (tests/it/common/fake_api.rs)",
                ));
            }
            _ => {
                return Err(status(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types \
                         include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}{}",
                        if ty.custom() {
                            ""
                        } else {
                            ", application/strategic-merge-patch+json"
                        }
                    ),
                ));
            }
        };
        let patch = body_object(req)?;
        self.authorize("patch", ty, ns, Some(name))?;
        if apply {
            self.apply(req, ty, version, ns, name, status_only, patch)
        } else {
            let key = Key::new(ty, ns, name);
            let old = self.existing(ty, &key)?;
            check_precondition(ty, &old, &patch)?;
            let mut new = old.clone();
            merge_patch_into(&mut new, &patch);
            let new = if status_only {
                with_status_of(&old, &new)
            } else if ty.status {
                with_status_of(&new, &old)
            } else {
                new
            };
            let stored = self.update_object(ty, &key, &old, new, req.dry_run(), !status_only)?;
            Ok(Resp::json(200, &present(&stored, ty, version)))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        req: &Req,
        ty: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        status_only: bool,
        mut applied: Value,
    ) -> Answer {
        let manager = req
            .param("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            })?
            .to_string();
        check_type_meta(ty, version, &applied)?;
        check_identity(&mut applied, ty, ns, name)?;
        if ty.status && !status_only {
            // The main resource of a type with a status subresource ignores
            // status, and so does its field set.
            if let Value::Object(map) = &mut applied {
                map.remove("status");
            }
        }
        let fields = if status_only {
            fieldset(&json!({"status": applied.get("status").cloned().unwrap_or(json!({}))}))
        } else {
            applied_fields(&applied)
        };
        let mut entry = json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version_of(&ty.group, version),
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        });
        if status_only {
            entry["subresource"] = json!("status");
        }
        let key = Key::new(ty, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            if status_only {
                return Err(not_found(ty, name));
            }
            let created =
                self.create_object(ty, version, ns, applied, req.dry_run(), Some(entry))?;
            return Ok(Resp::json(201, &present(&created, ty, version)));
        };
        check_precondition(ty, &old, &applied)?;
        let subresource = if status_only { Some("status") } else { None };
        let entries: Vec<Value> = old
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let is_mine = |e: &Value| {
            e["manager"] == manager.as_str()
                && e["operation"] == "Apply"
                && e.get("subresource").and_then(Value::as_str) == subresource
        };
        let mine = entries
            .iter()
            .find(|e| is_mine(e))
            .map(|e| e["fieldsV1"].clone());
        let others: Vec<&Value> = entries
            .iter()
            .filter(|e| !is_mine(e))
            .filter_map(|e| e.get("fieldsV1"))
            .collect();
        let mut merged = old.clone();
        if status_only {
            if let Some(status) = applied.get("status") {
                apply_merge(&mut merged["status"], status);
            }
        } else {
            apply_merge(&mut merged, &applied);
        }
        if let Some(mine) = &mine {
            prune(&mut merged, mine, &entry["fieldsV1"], &others);
        }
        if ty.status && !status_only {
            merged = with_status_of(&merged, &old);
        }
        let mut managed: Vec<Value> = Vec::with_capacity(entries.len() + 1);
        let mut replaced = false;
        for e in entries {
            if is_mine(&e) {
                managed.push(entry.clone());
                replaced = true;
            } else {
                managed.push(e);
            }
        }
        if !replaced {
            managed.push(entry);
        }
        metadata_mut(&mut merged).insert("managedFields".into(), Value::Array(managed));
        let stored = self.update_object(ty, &key, &old, merged, req.dry_run(), !status_only)?;
        Ok(Resp::json(200, &present(&stored, ty, version)))
    }

    fn delete(
        &mut self,
        req: &Req,
        ty: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Answer {
        let options: Value = if req.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&req.body)
                .map_err(|e| bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        self.authorize("delete", ty, ns, Some(name))?;
        let key = Key::new(ty, ns, name);
        let old = self.existing(ty, &key)?;
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(expected) = options
                .pointer(&format!("/preconditions/{field}"))
                .and_then(Value::as_str)
            {
                let actual = old
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if expected != actual {
                    return Err(status_with(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: \
                             {label} in precondition: {expected}, {label} in object meta: {actual}",
                            ty.qualified()
                        ),
                        Some(details(ty, name)),
                    ));
                }
            }
        }
        if ty.is_namespace() && UNDELETABLE_NAMESPACES.contains(&name) {
            return Err(status_with(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
                Some(details(ty, name)),
            ));
        }
        if !req.dry_run() {
            self.delete_object(ty, &key);
        }
        let mut answer = old;
        if ty.is_namespace() {
            // What the real server answers: the namespace, now terminating.
            metadata_mut(&mut answer).insert("deletionTimestamp".into(), json!(now()));
            answer["status"]["phase"] = json!("Terminating");
        }
        Ok(Resp::json(200, &present(&answer, ty, version)))
    }

    fn delete_collection(
        &mut self,
        req: &Req,
        ty: &ResourceType,
        version: &str,
        ns: Option<&str>,
    ) -> Answer {
        self.authorize("deletecollection", ty, ns, None)?;
        let labels = parse_label_selector(req.param("labelSelector").unwrap_or(""))
            .map_err(|e| bad_request(format!("unable to parse requirement: {e}")))?;
        let fields =
            parse_field_selector(req.param("fieldSelector").unwrap_or("")).map_err(bad_request)?;
        let doomed: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|(k, _)| k.is(ty) && ns.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, o)| labels.iter().all(|r| r.matches(o)))
            .filter(|(_, o)| fields.iter().all(|r| r.matches(o)))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        if !req.dry_run() {
            for (key, _) in &doomed {
                self.delete_object(ty, key);
            }
        }
        let items = doomed
            .iter()
            .map(|(_, o)| present(o, ty, version))
            .collect();
        let metadata = json!({"resourceVersion": self.revision.to_string()});
        Ok(Resp::json(200, &list_json(ty, version, metadata, items)))
    }

    /// Removes the object at once, with what depends on it: a Namespace's
    /// objects (the real server would take the Namespace through
    /// `Terminating` first), a CRD's custom resources and served type.
    fn delete_object(&mut self, ty: &ResourceType, key: &Key) {
        let Some(object) = self.objects.remove(key) else {
            return;
        };
        self.next_revision();
        if ty.is_namespace() {
            let namespaced: Vec<(String, String)> = self
                .types
                .iter()
                .filter(|t| t.namespaced)
                .map(|t| (t.group.clone(), t.plural.clone()))
                .collect();
            self.objects.retain(|k, _| {
                k.namespace != key.name
                    || !namespaced
                        .iter()
                        .any(|(g, p)| *g == k.group && *p == k.plural)
            });
        }
        if ty.is_crd() {
            let name = key.name.clone();
            if let Ok(crd) = Crd::parse(&object) {
                self.objects
                    .retain(|k, _| !(k.group == crd.group && k.plural == crd.plural));
            }
            self.types.retain(|t| t.origin != Origin::Crd(name.clone()));
        }
    }

    fn access_review(&mut self, req: &Req, ty: &ResourceType, version: &str) -> Answer {
        let mut review = body_object(req)?;
        check_type_meta(ty, version, &review)?;
        let spec = review.get("spec").cloned().unwrap_or(json!({}));
        let allowed = match spec.get("resourceAttributes") {
            Some(attributes) => {
                let attr = |name: &str| {
                    attributes
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                !self.is_denied(
                    &attr("verb"),
                    &attr("group"),
                    &attr("resource"),
                    &attr("namespace"),
                )
            }
            None if spec.get("nonResourceAttributes").is_some() => true,
            None => {
                return Err(invalid(
                    ty,
                    "",
                    "spec.resourceAttributes: Invalid value: \"null\": exactly one of \
                     nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
        };
        review["metadata"] = json!({"creationTimestamp": null});
        review["status"] = if allowed {
            json!({"allowed": true})
        } else {
            json!({"allowed": false, "reason": "denied by fake"})
        };
        Ok(Resp::json(201, &present(&review, ty, version)))
    }

    // -- seeding -------------------------------------------------------------

    fn seed(&mut self, mut object: Value) {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("insert: the object needs an apiVersion")
            .to_string();
        let kind = object["kind"]
            .as_str()
            .expect("insert: the object needs a kind")
            .to_string();
        let ty = self.known_kind(&api_version, &kind);
        let meta = metadata_mut(&mut object);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| panic!("insert: the {kind} needs metadata.name"))
            .to_string();
        let ns = if ty.namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| panic!("insert: the {kind} {name} needs metadata.namespace"))
                .to_string();
            Some(ns)
        } else {
            meta.remove("namespace");
            None
        };
        if let Some(ns) = &ns {
            assert!(
                self.namespace_exists(ns),
                "insert: namespace {ns:?} of {kind} {name} does not exist; insert the Namespace first"
            );
        }
        let key = Key::new(&ty, ns.as_deref(), &name);
        let old_uid = self
            .objects
            .get(&key)
            .and_then(|o| o.pointer("/metadata/uid"))
            .cloned();
        let uid = match old_uid {
            Some(uid) => uid,
            None => json!(self.new_uid()),
        };
        let meta = metadata_mut(&mut object);
        meta.entry("uid").or_insert(uid);
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(now()));
        meta.entry("generation").or_insert(json!(1));
        if ty.is_namespace() {
            default_namespace(&mut object);
        }
        if ty.is_crd() && object.get("status").is_none() {
            let crd =
                Crd::parse(&object).unwrap_or_else(|e| panic!("insert: invalid CRD {name}: {e}"));
            object["status"] = crd.status(None);
        }
        let rv = self.next_revision();
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(rv));
        self.store(&ty, key, object);
    }

    // -- CRDs ----------------------------------------------------------------

    fn register_crd(&mut self, object: &Value) {
        let Ok(crd) = Crd::parse(object) else {
            return;
        };
        let origin = Origin::Crd(crd.name.clone());
        self.types.retain(|t| {
            t.origin != origin
                && !(t.origin == Origin::Registered
                    && t.group == crd.group
                    && t.plural == crd.plural)
        });
        if crd.served.is_empty() {
            return;
        }
        self.types.push(ResourceType {
            group: crd.group,
            versions: crd.served,
            kind: crd.kind,
            plural: crd.plural,
            singular: crd.singular,
            namespaced: crd.namespaced,
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            status: crd.status_subresource,
            short_names: crd.short_names,
            origin,
        });
    }
}

/// What the fake reads from a CustomResourceDefinition.
struct Crd {
    name: String,
    group: String,
    kind: String,
    plural: String,
    singular: String,
    list_kind: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    namespaced: bool,
    /// Served versions, highest priority first.
    served: Vec<String>,
    storage: String,
    status_subresource: bool,
}

impl Crd {
    /// The CRD, or the field error the real server would report.
    fn parse(object: &Value) -> Result<Crd, String> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let strings = |pointer: &str| -> Vec<String> {
            object
                .pointer(pointer)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let name = text("/metadata/name");
        let group = text("/spec/group");
        let kind = text("/spec/names/kind");
        let plural = text("/spec/names/plural");
        for (value, field) in [
            (&group, "spec.group"),
            (&kind, "spec.names.kind"),
            (&plural, "spec.names.plural"),
        ] {
            if value.is_empty() {
                return Err(format!("{field}: Required value"));
            }
        }
        if name != format!("{plural}.{group}") {
            return Err(format!(
                "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ));
        }
        let namespaced = match text("/spec/scope").as_str() {
            "Namespaced" => true,
            "Cluster" => false,
            other => {
                return Err(format!(
                    "spec.scope: Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ));
            }
        };
        let versions = object
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if versions.is_empty() {
            return Err("spec.versions: Invalid value: must have exactly one version marked as storage version".into());
        }
        let storage: Vec<String> = versions
            .iter()
            .filter(|v| v["storage"] == true)
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        let [storage] = storage.as_slice() else {
            return Err("spec.versions: Invalid value: must have exactly one version marked as storage version".into());
        };
        let mut served: Vec<String> = versions
            .iter()
            .filter(|v| v["served"] == true)
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        sort_versions(&mut served);
        let singular = match text("/spec/names/singular") {
            s if s.is_empty() => kind.to_lowercase(),
            s => s,
        };
        let list_kind = match text("/spec/names/listKind") {
            s if s.is_empty() => format!("{kind}List"),
            s => s,
        };
        Ok(Crd {
            name,
            status_subresource: versions
                .iter()
                .any(|v| v.pointer("/subresources/status").is_some()),
            short_names: strings("/spec/names/shortNames"),
            categories: strings("/spec/names/categories"),
            group,
            kind,
            plural,
            singular,
            list_kind,
            namespaced,
            served,
            storage: storage.clone(),
        })
    }

    /// The status of an established CRD whose names were accepted; times of
    /// unchanged conditions are kept, so re-applying is a no-op.
    fn status(&self, old: Option<&Value>) -> Value {
        let since = |condition: &str| {
            old.and_then(|o| o.pointer("/status/conditions"))
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == condition && c["status"] == "True")
                })
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now()))
        };
        let mut accepted = json!({
            "plural": self.plural,
            "singular": self.singular,
            "kind": self.kind,
            "listKind": self.list_kind,
        });
        if !self.short_names.is_empty() {
            accepted["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            accepted["categories"] = json!(self.categories);
        }
        let mut stored: Vec<String> = old
            .and_then(|o| o.pointer("/status/storedVersions"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !stored.contains(&self.storage) {
            stored.push(self.storage.clone());
        }
        json!({
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "lastTransitionTime": since("NamesAccepted"),
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": since("Established"),
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "acceptedNames": accepted,
            "storedVersions": stored,
        })
    }
}

// ---------------------------------------------------------------------------
// Object helpers

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

fn api_version_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Stable before beta before alpha, higher numbers first, then the rest
/// alphabetically: Kubernetes' version priority.
fn sort_versions(versions: &mut [String]) {
    fn rank(v: &str) -> (u8, u64, u64, String) {
        let parse = || -> Option<(u8, u64, u64)> {
            let rest = v.strip_prefix('v')?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let major: u64 = digits.parse().ok()?;
            let rest = &rest[digits.len()..];
            if rest.is_empty() {
                return Some((3, major, 0));
            }
            let (level, minor) = if let Some(m) = rest.strip_prefix("beta") {
                (2, m)
            } else if let Some(m) = rest.strip_prefix("alpha") {
                (1, m)
            } else {
                return None;
            };
            Some((level, major, minor.parse().ok()?))
        };
        match parse() {
            Some((level, major, minor)) => (level, major, minor, String::new()),
            None => (0, 0, 0, v.to_string()),
        }
    }
    versions.sort_by(|a, b| {
        let (ra, rb) = (rank(a), rank(b));
        (rb.0, rb.1, rb.2)
            .cmp(&(ra.0, ra.1, ra.2))
            .then_with(|| ra.3.cmp(&rb.3))
    });
}

fn name_suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The object as served at `version`: with its apiVersion and kind.
fn present(object: &Value, ty: &ResourceType, version: &str) -> Value {
    present_as(object, &api_version_of(&ty.group, version), &ty.kind)
}

fn present_as(object: &Value, api_version: &str, kind: &str) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    object
}

fn list_json(ty: &ResourceType, version: &str, metadata: Value, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{}List", ty.kind),
        "apiVersion": api_version_of(&ty.group, version),
        "metadata": metadata,
        "items": items,
    })
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let map = object.as_object_mut().expect("an object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("metadata is an object")
}

fn body_object(req: &Req) -> Answer<Value> {
    let media_type = req.media_type();
    let json_like = media_type.is_empty()
        || media_type == "application/json"
        || (req.method == Method::PATCH
            && [APPLY_PATCH, MERGE_PATCH, STRATEGIC_PATCH].contains(&media_type.as_str()));
    if !json_like {
        // What a real server answers for a media type it does not decode;
        // the fake decodes JSON only (no protobuf, no YAML).
        return Err(status(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: application/json (the fake API server decodes JSON only, not \
                 {media_type})"
            ),
        ));
    }
    let value: Value = serde_json::from_slice(&req.body).map_err(|e| {
        bad_request(format!(
            "the body of the request could not be decoded as JSON (the fake API server reads JSON only): {e}"
        ))
    })?;
    if !value.is_object() {
        return Err(bad_request("the body of the request must be a JSON object"));
    }
    Ok(value)
}

/// The body's apiVersion and kind must name the resource of the URL.
fn check_type_meta(ty: &ResourceType, version: &str, object: &Value) -> Answer<()> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Err(bad_request(format!(
            "Object 'Kind' or 'apiVersion' is missing in the body sent to {}",
            ty.qualified()
        )));
    }
    let (group, body_version) = split_api_version(api_version);
    if group != ty.group || kind != ty.kind || !ty.versions.iter().any(|v| v == body_version) {
        return Err(bad_request(format!(
            "the API version in the data ({api_version}) or its kind ({kind}) does not match \
             the expected {} {}",
            api_version_of(&ty.group, version),
            ty.kind
        )));
    }
    Ok(())
}

/// The namespace of a new object: the URL's for a namespaced type (the
/// body's must agree), none for a cluster-scoped one.
fn namespace_for(
    ty: &ResourceType,
    ns: Option<&str>,
    meta: &mut Map<String, Value>,
) -> Answer<Option<String>> {
    if !ty.namespaced {
        meta.remove("namespace");
        return Ok(None);
    }
    let ns = ns.unwrap_or("");
    let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    if !body_ns.is_empty() && body_ns != ns {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    meta.insert("namespace".into(), json!(ns));
    Ok(Some(ns.to_string()))
}

/// For PUT and apply: the body's name and namespace must match the URL's;
/// missing ones are filled in.
fn check_identity(
    object: &mut Value,
    ty: &ResourceType,
    ns: Option<&str>,
    name: &str,
) -> Answer<()> {
    let meta = metadata_mut(object);
    match meta.get("name").and_then(Value::as_str) {
        Some(body_name) if !body_name.is_empty() && body_name != name => {
            return Err(bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        _ => {
            meta.insert("name".into(), json!(name));
        }
    }
    namespace_for(ty, ns, meta)?;
    Ok(())
}

/// A resourceVersion in the body is a precondition.
fn check_precondition(ty: &ResourceType, stored: &Value, body: &Value) -> Answer<()> {
    let wanted = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty());
    let actual = stored
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    match wanted {
        Some(wanted) if Some(wanted) != actual => {
            let name = stored
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            Err(conflict(ty, name))
        }
        _ => Ok(()),
    }
}

/// `object` with the status of `from` (or none, if `from` has none).
fn with_status_of(object: &Value, from: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        match from.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    object
}

fn default_namespace(object: &mut Value) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let meta = metadata_mut(object);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Value::Object(labels) = labels {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if object.pointer("/spec/finalizers").is_none() {
        object["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if object.pointer("/status/phase").is_none() {
        object["status"]["phase"] = json!("Active");
    }
}

/// The object without what changes on every write anyway: equality of
/// these means the write was a no-op (and keeps the resourceVersion).
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("generation");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
    }
    object
}

fn without_meta_and_status(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

/// RFC 7386 JSON merge patch.
fn merge_patch_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch_into(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Server-side apply's merge, simplified: maps merge recursively, lists and
/// scalars are replaced (every list is atomic), nulls are ignored.
fn apply_merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(target), Value::Object(applied)) => {
            for (key, value) in applied {
                if value.is_null() {
                    continue;
                }
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        apply_merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, applied) => *target = applied.clone(),
    }
}

/// A FieldsV1 set: `{"f:spec": {"f:replicas": {}}}`; lists are leaves.
fn fieldset(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (format!("f:{k}"), fieldset(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// The fields an applied configuration sets, without the identity fields
/// (as in the real server's managedFields).
fn applied_fields(applied: &Value) -> Value {
    let mut applied = applied.clone();
    if let Value::Object(map) = &mut applied {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
            ] {
                meta.remove(field);
            }
            if meta.is_empty() {
                map.remove("metadata");
            }
        }
    }
    fieldset(&applied)
}

/// Removes from `object` the fields a manager applied before (`old`) but
/// not now (`new`), unless another managedFields entry lists them.
fn prune(object: &mut Value, old: &Value, new: &Value, others: &[&Value]) {
    let (Some(object), Some(old)) = (object.as_object_mut(), old.as_object()) else {
        return;
    };
    let empty = json!({});
    for (field, old_sub) in old {
        let Some(key) = field.strip_prefix("f:") else {
            continue;
        };
        let new_sub = new.get(field);
        let other_subs: Vec<&Value> = others.iter().filter_map(|o| o.get(field)).collect();
        if new_sub.is_none() && other_subs.is_empty() {
            object.remove(key);
        } else if let Some(child) = object.get_mut(key) {
            prune(child, old_sub, new_sub.unwrap_or(&empty), &other_subs);
        }
    }
}

// ---------------------------------------------------------------------------
// Selectors

enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelRequirement {
    fn matches(&self, object: &Value) -> bool {
        let label = |key: &str| {
            object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
        };
        match self {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
        }
    }
}

fn parse_label_selector(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    let mut requirements = Vec::new();
    for term in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("{term:?}: expected a parenthesised set"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let requirement = if let Some(key) = term.strip_prefix('!') {
            LabelRequirement::NotExists(key.trim().to_string())
        } else if let Some((key, rest)) = term.split_once(" notin ") {
            LabelRequirement::NotIn(key.trim().to_string(), set(rest)?)
        } else if let Some((key, rest)) = term.split_once(" in ") {
            LabelRequirement::In(key.trim().to_string(), set(rest)?)
        } else if let Some((key, value)) = term.split_once("!=") {
            LabelRequirement::NotEquals(key.trim().to_string(), value.trim().to_string())
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
        } else {
            LabelRequirement::Exists(term.to_string())
        };
        let key = match &requirement {
            LabelRequirement::Equals(k, _)
            | LabelRequirement::NotEquals(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::NotExists(k)
            | LabelRequirement::In(k, _)
            | LabelRequirement::NotIn(k, _) => k,
        };
        if !valid_key(key) {
            return Err(format!("invalid label key {key:?} in {term:?}"));
        }
        requirements.push(requirement);
    }
    Ok(requirements)
}

struct FieldRequirement {
    pointer: &'static str,
    value: String,
    equal: bool,
}

impl FieldRequirement {
    fn matches(&self, object: &Value) -> bool {
        let actual = object
            .pointer(self.pointer)
            .and_then(Value::as_str)
            .unwrap_or("");
        (actual == self.value) == self.equal
    }
}

fn parse_field_selector(selector: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut requirements = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(format!("invalid field selector: {term:?}"));
        };
        let pointer = match field.trim() {
            "metadata.name" => "/metadata/name",
            "metadata.namespace" => "/metadata/namespace",
            "status.phase" => "/status/phase",
            // Events' field labels (the API server's event field selectors).
            "involvedObject.kind" => "/involvedObject/kind",
            "involvedObject.name" => "/involvedObject/name",
            "reason" => "/reason",
            other => {
                return Err(format!(
                    "field label not supported: {other} (the fake API server supports \
                     metadata.name, metadata.namespace, status.phase, involvedObject.kind, \
                     involvedObject.name and reason)"
                ));
            }
        };
        requirements.push(FieldRequirement {
            pointer,
            value: value.trim().to_string(),
            equal,
        });
    }
    Ok(requirements)
}
