//! `certbind`: the server (`certbind serve`) and a CLI client for every operation.

mod serve_cmd;
mod table;

use certbind::client::{Client, ClientError};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use table::{cell, print_object, print_table, Column};

#[derive(Parser)]
#[command(name = "certbind", version, about = "A self-hosted TLS load balancer with a certificate control plane")]
struct Cli {
    /// API address of a running certbind (default from CERTBIND_API, else http://127.0.0.1:7480).
    #[arg(long, global = true)]
    api: Option<String>,
    /// Print raw JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: control plane, data plane and API.
    Serve(serve_cmd::ServeArgs),
    /// Your account and (operator only) new accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Access keys of your account.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Projects of your account.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Load balancers.
    #[command(subcommand)]
    Lb(LbCmd),
    /// Listeners.
    #[command(subcommand)]
    Listener(ListenerCmd),
    /// Backends of a listener.
    #[command(subcommand)]
    Backend(BackendCmd),
    /// Bind certificates to a listener (each change is a job).
    #[command(subcommand)]
    Bind(BindCmd),
    /// Replace one certificate with another wherever it is bound within a scope.
    Replace(ReplaceArgs),
    /// One-click update: move every listener bound to a certificate onto a new one.
    Update(UpdateArgs),
    /// Jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Users of your account and their access keys.
    #[command(subcommand)]
    User(UserCmd),
    /// Access policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// The audit log: every write and every refused request.
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
enum UserCmd {
    Create {
        name: String,
    },
    List,
    /// A user's access keys and attached policies.
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
    /// A new access key for the user (at most two active).
    KeyCreate {
        name: String,
    },
    KeyDisable {
        name: String,
        key_id: String,
    },
    KeyEnable {
        name: String,
        key_id: String,
    },
    KeyDelete {
        name: String,
        key_id: String,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Create or replace a policy from a JSON document file.
    Put {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    List,
    Delete {
        name: String,
    },
    Attach {
        #[arg(long)]
        user: String,
        policy: String,
    },
    Detach {
        #[arg(long)]
        user: String,
        policy: String,
    },
    /// Would USER be allowed ACTION on RESOURCE? Says which statement decided.
    Simulate {
        #[arg(long)]
        user: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        resource: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    Show,
    /// Create an account with its first access key (operator account only).
    Create {
        name: String,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    List,
    Create,
    Disable { key_id: String },
    Enable { key_id: String },
    Delete { key_id: String },
}

#[derive(Subcommand)]
enum ProjectCmd {
    List,
    Create { name: String },
}

#[derive(Subcommand)]
enum CertCmd {
    /// Upload a certificate (leaf, optionally followed by its chain) and its private key.
    Upload(UploadArgs),
    List {
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        expiring_within_days: Option<u32>,
        #[arg(long)]
        project: Option<String>,
    },
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Args)]
struct UploadArgs {
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    chain: Option<PathBuf>,
    #[arg(long, default_value = "")]
    name: String,
    #[arg(long)]
    project: Option<String>,
    /// Store it even if the same certificate is already stored.
    #[arg(long)]
    allow_duplicate: bool,
    /// Allow the private key to be downloaded later.
    #[arg(long)]
    allow_download: bool,
    /// Validate only.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    client_token: Option<String>,
}

#[derive(Subcommand)]
enum LbCmd {
    Create {
        #[arg(long = "type", default_value = "application")]
        lb_type: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        region: Option<String>,
        /// The load balancer's own address (an IP of this host).
        #[arg(long)]
        address: Option<IpAddr>,
        #[arg(long)]
        project: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum ListenerCmd {
    Create {
        #[arg(long)]
        lb: String,
        #[arg(long)]
        protocol: String,
        #[arg(long)]
        port: u16,
        /// Default certificate (required for HTTPS, QUIC, TCPSSL).
        #[arg(long)]
        cert: Option<String>,
        /// Additional (SNI) certificates.
        #[arg(long = "additional")]
        additional: Vec<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        wait: bool,
    },
    List {
        #[arg(long)]
        lb: Option<String>,
    },
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum BackendCmd {
    Add {
        #[arg(long)]
        listener: String,
        #[arg(long)]
        address: String,
        #[arg(long, default_value_t = 100)]
        weight: u32,
    },
    Remove {
        #[arg(long)]
        listener: String,
        id: String,
    },
}

#[derive(Args)]
struct JobFlags {
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    client_token: Option<String>,
    /// Wait for the job to finish, with a progress bar.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
enum BindCmd {
    /// Set a listener's default certificate.
    Default {
        #[arg(long)]
        listener: String,
        #[arg(long)]
        cert: String,
        #[command(flatten)]
        flags: JobFlags,
    },
    /// Associate additional (SNI) certificates.
    Associate {
        #[arg(long)]
        listener: String,
        #[arg(long = "cert", required = true)]
        certs: Vec<String>,
        #[command(flatten)]
        flags: JobFlags,
    },
    /// Dissociate additional certificates.
    Dissociate {
        #[arg(long)]
        listener: String,
        #[arg(long = "cert", required = true)]
        certs: Vec<String>,
        #[command(flatten)]
        flags: JobFlags,
    },
}

#[derive(Args)]
struct ReplaceArgs {
    #[arg(long)]
    old: String,
    #[arg(long)]
    new: String,
    #[arg(long)]
    project: Option<String>,
    #[arg(long)]
    lb: Option<String>,
    #[arg(long)]
    listener: Option<String>,
    #[command(flatten)]
    flags: JobFlags,
}

#[derive(Args)]
struct UpdateArgs {
    #[arg(long)]
    old: String,
    /// The new certificate by id...
    #[arg(long, conflicts_with_all = ["new_cert", "new_key"])]
    new: Option<String>,
    /// ...or uploaded with the request.
    #[arg(long, requires = "new_key")]
    new_cert: Option<PathBuf>,
    #[arg(long, requires = "new_cert")]
    new_key: Option<PathBuf>,
    /// Load balancer types to update (application, network); all when omitted.
    #[arg(long = "resource-type")]
    resource_types: Vec<String>,
    /// Regions to update; all when omitted.
    #[arg(long = "region")]
    regions: Vec<String>,
    #[command(flatten)]
    flags: JobFlags,
}

#[derive(Subcommand)]
enum JobCmd {
    List {
        #[arg(long)]
        state: Option<String>,
    },
    Show {
        id: String,
        /// Also list every target.
        #[arg(long)]
        targets: bool,
    },
    /// Wait for a job to finish, showing progress.
    Wait {
        id: String,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = cli.command {
        return serve_cmd::run(args);
    }
    // A client's output is often piped (`certbind --json audit list | head -1`): when the
    // reader goes away, end quietly as Unix tools do instead of panicking in println!.
    // SAFETY: restoring a signal's default disposition, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let client = match Client::from_env(cli.api.as_deref()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let out = Output { json: cli.json };
    match run_client(&client, &out, cli.command) {
        Ok(code) => code,
        Err(e) => {
            if out.json {
                if let ClientError::Api { status, code, message, request_id } = &e {
                    println!(
                        "{}",
                        json!({"error": {"status": status, "code": code, "message": message, "request_id": request_id}})
                    );
                    return ExitCode::FAILURE;
                }
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn object(&self, value: &Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            print_object(value);
        }
    }

    fn list(&self, value: &Value, columns: &[Column]) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            let items = value["items"].as_array().cloned().unwrap_or_default();
            print_table(&items, columns);
            if let Some(total) = value["total"].as_u64() {
                if total as usize > items.len() {
                    println!("({} of {total} shown)", items.len());
                }
            }
        }
    }
}

const CERT_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("COMMON NAME", "/common_name"),
    ("NOT AFTER", "/not_after"),
    ("VALIDITY", "/validity"),
    ("KEY", "/key_algorithm"),
];
const LB_COLUMNS: &[Column] =
    &[("ID", "/id"), ("NAME", "/name"), ("TYPE", "/lb_type"), ("REGION", "/region"), ("ADDRESS", "/address")];
const LISTENER_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("LB", "/load_balancer_id"),
    ("PROTOCOL", "/protocol"),
    ("PORT", "/port"),
    ("SOCKET", "/runtime/state"),
    ("NAME", "/name"),
];
const JOB_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("KIND", "/kind"),
    ("STATE", "/state"),
    ("TOTAL", "/counts/total"),
    ("SUCCEEDED", "/counts/succeeded"),
    ("FAILED", "/counts/failed"),
    ("OLD", "/old_cert_id"),
    ("NEW", "/new_cert_id"),
];
const TARGET_COLUMNS: &[Column] = &[
    ("LISTENER", "/listener_id"),
    ("LB", "/load_balancer_id"),
    ("TYPE", "/resource_type"),
    ("REGION", "/region"),
    ("ACTION", "/action"),
    ("OLD", "/old_cert_id"),
    ("NEW", "/new_cert_id"),
    ("STATUS", "/status"),
    ("ERROR", "/error"),
];
const BINDING_COLUMNS: &[Column] =
    &[("CERTIFICATE", "/cert_id"), ("ROLE", "/role"), ("STATUS", "/status"), ("REVISION", "/revision")];

fn read_file(path: &PathBuf) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|e| ClientError::Config(format!("cannot read {}: {e}", path.display())))
}

fn with_options(mut body: Value, flags: &JobFlags) -> Value {
    body["dry_run"] = json!(flags.dry_run);
    if let Some(token) = &flags.client_token {
        body["client_token"] = json!(token);
    }
    body
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let present: Vec<(&str, String)> = pairs.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
    if present.is_empty() {
        return String::new();
    }
    let encoded: Vec<String> = present.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
    format!("?{}", encoded.join("&"))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run_client(client: &Client, out: &Output, command: Command) -> Result<ExitCode, ClientError> {
    match command {
        Command::Serve(_) => unreachable!("handled in main"),
        Command::Account(AccountCmd::Show) => out.object(&client.get("/v1/account")?),
        Command::Account(AccountCmd::Create { name }) => {
            out.object(&client.post("/v1/accounts", &json!({"name": name}))?)
        }
        Command::Key(cmd) => match cmd {
            KeyCmd::List => {
                out.list(&client.get("/v1/access-keys")?, &[("KEY ID", "/key_id"), ("ENABLED", "/enabled")])
            }
            KeyCmd::Create => out.object(&client.post("/v1/access-keys", &json!({}))?),
            KeyCmd::Disable { key_id } => {
                out.object(&client.patch(&format!("/v1/access-keys/{key_id}"), &json!({"enabled": false}))?)
            }
            KeyCmd::Enable { key_id } => {
                out.object(&client.patch(&format!("/v1/access-keys/{key_id}"), &json!({"enabled": true}))?)
            }
            KeyCmd::Delete { key_id } => out.object(&client.delete(&format!("/v1/access-keys/{key_id}"))?),
        },
        Command::Project(ProjectCmd::List) => {
            out.list(&client.get("/v1/projects")?, &[("ID", "/id"), ("NAME", "/name"), ("DEFAULT", "/is_default")])
        }
        Command::Project(ProjectCmd::Create { name }) => {
            out.object(&client.post("/v1/projects", &json!({"name": name}))?)
        }
        Command::Cert(cmd) => match cmd {
            CertCmd::Upload(a) => {
                let mut body = json!({
                    "name": a.name,
                    "certificate_pem": read_file(&a.cert)?,
                    "private_key_pem": read_file(&a.key)?,
                    "allow_download": a.allow_download,
                    "on_duplicate": if a.allow_duplicate { "allow" } else { "refuse" },
                    "dry_run": a.dry_run,
                });
                if let Some(chain) = &a.chain {
                    body["chain_pem"] = json!(read_file(chain)?);
                }
                if let Some(project) = a.project {
                    body["project_id"] = json!(project);
                }
                if let Some(token) = a.client_token {
                    body["client_token"] = json!(token);
                }
                let answer = client.post("/v1/certificates", &body)?;
                if out.json || a.dry_run {
                    out.object(&answer);
                } else {
                    out.object(&answer["certificate"]);
                }
            }
            CertCmd::List { search, expiring_within_days, project } => {
                let q = query(&[
                    ("search", search),
                    ("expiring_within_days", expiring_within_days.map(|d| d.to_string())),
                    ("project_id", project),
                    ("limit", Some("1000".into())),
                ]);
                out.list(&client.get(&format!("/v1/certificates{q}"))?, CERT_COLUMNS)
            }
            CertCmd::Show { id } => {
                let answer = client.get(&format!("/v1/certificates/{id}"))?;
                if out.json {
                    out.object(&answer);
                } else {
                    print_object(&answer["certificate"]);
                    println!();
                    print_table(
                        answer["bindings"].as_array().map(Vec::as_slice).unwrap_or_default(),
                        &[
                            ("LISTENER", "/listener_id"),
                            ("LB", "/load_balancer_id"),
                            ("ROLE", "/role"),
                            ("STATUS", "/status"),
                        ],
                    );
                }
            }
            CertCmd::Delete { id } => out.object(&client.delete(&format!("/v1/certificates/{id}"))?),
        },
        Command::Lb(cmd) => match cmd {
            LbCmd::Create { lb_type, name, region, address, project } => {
                let body = json!({"lb_type": lb_type, "name": name, "region": region, "address": address, "project_id": project});
                out.object(&client.post("/v1/load-balancers", &body)?)
            }
            LbCmd::List => out.list(&client.get("/v1/load-balancers?limit=1000")?, LB_COLUMNS),
            LbCmd::Show { id } => {
                let answer = client.get(&format!("/v1/load-balancers/{id}"))?;
                if out.json {
                    out.object(&answer);
                } else {
                    print_object(&answer["load_balancer"]);
                    println!();
                    print_table(
                        answer["listeners"].as_array().map(Vec::as_slice).unwrap_or_default(),
                        LISTENER_COLUMNS,
                    );
                }
            }
            LbCmd::Delete { id } => out.object(&client.delete(&format!("/v1/load-balancers/{id}"))?),
        },
        Command::Listener(cmd) => match cmd {
            ListenerCmd::Create { lb, protocol, port, cert, additional, name, wait } => {
                let body = json!({
                    "load_balancer_id": lb, "protocol": protocol.to_ascii_uppercase(), "port": port,
                    "default_certificate_id": cert, "additional_certificate_ids": additional, "name": name,
                });
                let answer = client.post("/v1/listeners", &body)?;
                out.object(&answer);
                if wait {
                    if let Some(job) = answer["job_id"].as_str() {
                        return wait_job(client, out, job, Duration::from_secs(600));
                    }
                }
            }
            ListenerCmd::List { lb } => {
                let q = query(&[("load_balancer_id", lb), ("limit", Some("1000".into()))]);
                out.list(&client.get(&format!("/v1/listeners{q}"))?, LISTENER_COLUMNS)
            }
            ListenerCmd::Show { id } => {
                let answer = client.get(&format!("/v1/listeners/{id}"))?;
                out.object(&answer);
                if !out.json {
                    println!();
                    print_table(answer["bindings"].as_array().map(Vec::as_slice).unwrap_or_default(), BINDING_COLUMNS);
                }
            }
            ListenerCmd::Delete { id } => out.object(&client.delete(&format!("/v1/listeners/{id}"))?),
        },
        Command::Backend(cmd) => {
            match cmd {
                BackendCmd::Add { listener, address, weight } => out.object(&client.post(
                    &format!("/v1/listeners/{listener}/backends"),
                    &json!({"address": address, "weight": weight}),
                )?),
                BackendCmd::Remove { listener, id } => {
                    out.object(&client.delete(&format!("/v1/listeners/{listener}/backends/{id}"))?)
                }
            }
        }
        Command::Bind(cmd) => {
            let (path, body, flags) = match cmd {
                BindCmd::Default { listener, cert, flags } => {
                    (format!("/v1/listeners/{listener}/default-certificate"), json!({"certificate_id": cert}), flags)
                }
                BindCmd::Associate { listener, certs, flags } => {
                    (format!("/v1/listeners/{listener}/associate"), json!({"certificate_ids": certs}), flags)
                }
                BindCmd::Dissociate { listener, certs, flags } => {
                    (format!("/v1/listeners/{listener}/dissociate"), json!({"certificate_ids": certs}), flags)
                }
            };
            return submit(client, out, &path, with_options(body, &flags), &flags);
        }
        Command::Replace(a) => {
            let body = json!({
                "old_certificate_id": a.old, "new_certificate_id": a.new,
                "project_id": a.project, "load_balancer_id": a.lb, "listener_id": a.listener,
            });
            return submit(client, out, "/v1/replace", with_options(body, &a.flags), &a.flags);
        }
        Command::Update(a) => {
            let new_certificate = match (a.new, a.new_cert, a.new_key) {
                (Some(id), _, _) => json!({"id": id}),
                (None, Some(cert), Some(key)) => {
                    json!({"upload": {"certificate_pem": read_file(&cert)?, "private_key_pem": read_file(&key)?}})
                }
                _ => return Err(ClientError::Config("give --new ID, or --new-cert FILE with --new-key FILE".into())),
            };
            let body = json!({
                "old_certificate_id": a.old, "new_certificate": new_certificate,
                "resource_types": a.resource_types, "regions": a.regions,
            });
            return submit(client, out, "/v1/one-click-update", with_options(body, &a.flags), &a.flags);
        }
        Command::Job(cmd) => match cmd {
            JobCmd::List { state } => {
                let q = query(&[("state", state), ("limit", Some("1000".into()))]);
                out.list(&client.get(&format!("/v1/jobs{q}"))?, JOB_COLUMNS)
            }
            JobCmd::Show { id, targets } => {
                let job = client.get(&format!("/v1/jobs/{id}"))?;
                out.object(&job);
                if targets {
                    let list = client.get(&format!("/v1/jobs/{id}/targets?limit=1000"))?;
                    if !out.json {
                        println!();
                    }
                    out.list(&list, TARGET_COLUMNS);
                }
            }
            JobCmd::Wait { id, timeout_secs } => return wait_job(client, out, &id, Duration::from_secs(timeout_secs)),
        },
        Command::User(cmd) => {
            match cmd {
                UserCmd::Create { name } => out.object(&client.post("/v1/users", &json!({"name": name}))?),
                UserCmd::List => {
                    out.list(&client.get("/v1/users")?, &[("ID", "/id"), ("NAME", "/name"), ("CREATED", "/created_at")])
                }
                UserCmd::Show { name } => out.object(&client.get(&format!("/v1/users/{}", url_encode(&name)))?),
                UserCmd::Delete { name } => out.object(&client.delete(&format!("/v1/users/{}", url_encode(&name)))?),
                UserCmd::KeyCreate { name } => {
                    out.object(&client.post(&format!("/v1/users/{}/access-keys", url_encode(&name)), &json!({}))?)
                }
                UserCmd::KeyDisable { name, key_id } => out.object(&client.patch(
                    &format!("/v1/users/{}/access-keys/{key_id}", url_encode(&name)),
                    &json!({"enabled": false}),
                )?),
                UserCmd::KeyEnable { name, key_id } => out.object(&client.patch(
                    &format!("/v1/users/{}/access-keys/{key_id}", url_encode(&name)),
                    &json!({"enabled": true}),
                )?),
                UserCmd::KeyDelete { name, key_id } => {
                    out.object(&client.delete(&format!("/v1/users/{}/access-keys/{key_id}", url_encode(&name)))?)
                }
            }
        }
        Command::Policy(cmd) => match cmd {
            PolicyCmd::Put { name, file } => {
                let text = read_file(&file)?;
                let document: Value = serde_json::from_str(&text)
                    .map_err(|e| ClientError::Config(format!("{} is not JSON: {e}", file.display())))?;
                out.object(&client.call(
                    "PUT",
                    &format!("/v1/policies/{}", url_encode(&name)),
                    Some(&json!({"document": document})),
                )?)
            }
            PolicyCmd::List => out.list(&client.get("/v1/policies")?, &[("ID", "/id"), ("NAME", "/name")]),
            PolicyCmd::Delete { name } => out.object(&client.delete(&format!("/v1/policies/{}", url_encode(&name)))?),
            PolicyCmd::Attach { user, policy } => out.object(
                &client
                    .post(&format!("/v1/users/{}/policies/{}", url_encode(&user), url_encode(&policy)), &json!({}))?,
            ),
            PolicyCmd::Detach { user, policy } => out.object(&client.delete(&format!(
                "/v1/users/{}/policies/{}",
                url_encode(&user),
                url_encode(&policy)
            ))?),
            PolicyCmd::Simulate { user, action, resource } => {
                let answer = client
                    .post("/v1/policy-simulation", &json!({"user": user, "action": action, "resource": resource}))?;
                if out.json {
                    out.object(&answer);
                } else {
                    let verdict = if answer["allowed"] == json!(true) { "allowed" } else { "denied" };
                    match (answer["policy"].as_str(), answer["statement"].as_str()) {
                        (Some(policy), Some(statement)) => {
                            println!("{verdict}: policy {policy}, statement {statement} ({})", cell(&answer["reason"]))
                        }
                        _ => println!("{verdict}: {}", cell(&answer["reason"])),
                    }
                    return Ok(if verdict == "allowed" { ExitCode::SUCCESS } else { ExitCode::FAILURE });
                }
            }
        },
        Command::Audit(AuditCmd::List { user, outcome, action }) => {
            let q = query(&[("user", user), ("outcome", outcome), ("action", action), ("limit", Some("1000".into()))]);
            out.list(
                &client.get(&format!("/v1/audit-log{q}"))?,
                &[
                    ("AT", "/at"),
                    ("DIALECT", "/dialect"),
                    ("USER", "/user"),
                    ("KEY", "/key_id"),
                    ("ACTION", "/action"),
                    ("OUTCOME", "/outcome"),
                    ("CODE", "/error_code"),
                    ("SOURCE", "/source"),
                    ("REQUEST", "/request_id"),
                ],
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn submit(client: &Client, out: &Output, path: &str, body: Value, flags: &JobFlags) -> Result<ExitCode, ClientError> {
    let answer = client.post(path, &body)?;
    if out.json || !flags.dry_run {
        out.object(&answer);
    } else {
        println!("dry run: {} listener change(s), nothing changed", answer["target_count"]);
        print_table(
            answer["targets"].as_array().map(Vec::as_slice).unwrap_or_default(),
            &[
                ("LISTENER", "/listener_id"),
                ("ACTION", "/action"),
                ("OLD", "/old_certificate_id"),
                ("NEW", "/new_certificate_id"),
            ],
        );
        let uncovered = answer["uncovered_hosts"].as_array().cloned().unwrap_or_default();
        if !uncovered.is_empty() {
            println!("\nhost names that would no longer be covered:");
            print_table(&uncovered, &[("LISTENER", "/listener_id"), ("HOST NAMES", "/host_names")]);
        }
    }
    match (flags.wait, answer["job_id"].as_str()) {
        (true, Some(job)) => wait_job(client, out, job, Duration::from_secs(600)),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Polls a job until it ends, with a progress bar on stderr. Exit status 0 only if it
/// succeeded.
fn wait_job(client: &Client, out: &Output, id: &str, timeout: Duration) -> Result<ExitCode, ClientError> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg:>10} [{bar:40}] {pos}/{len} targets ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    if out.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = Instant::now();
    loop {
        let job = client.get(&format!("/v1/jobs/{id}"))?;
        let counts = &job["counts"];
        bar.set_length(counts["total"].as_u64().unwrap_or(0));
        bar.set_position(counts["succeeded"].as_u64().unwrap_or(0) + counts["failed"].as_u64().unwrap_or(0));
        let state = job["state"].as_str().unwrap_or("unknown").to_string();
        bar.set_message(state.clone());
        if state == "succeeded" || state == "failed" {
            bar.finish();
            out.object(&job);
            return Ok(if state == "succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        if started.elapsed() > timeout {
            bar.abandon_with_message("timed out");
            return Err(ClientError::Config(format!("job {id} still {state} after {}s", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
