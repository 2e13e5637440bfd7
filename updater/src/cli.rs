//! The `zbot-updater` command line: clap parsing, then the library. Exit codes: 0 done,
//! 1 a problem found (`inspect`) or a refusal, 2 usage.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// Exit code: a refusal or a problem found.
pub const EXIT_REFUSED: i32 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: i32 = 2;
/// `update`: SWUpdate refused the package.
pub const EXIT_SWUPDATE_REFUSED: i32 = 3;
/// `update`: installed, but the robot rolled back.
pub const EXIT_ROLLED_BACK: i32 = 4;
/// `update`: unreachable or timed out.
pub const EXIT_UNREACHABLE: i32 = 5;
/// `update`: the agent refused (secret).
pub const EXIT_AGENT_REFUSED: i32 = 6;
/// `update`: SWUpdate's web server refused the credentials (digest authentication), or wants
/// some and none were given.
pub const EXIT_AUTH: i32 = 7;

/// ZBot updates: signed SWUpdate packages (see updater/README.md).
#[derive(Debug, Parser)]
#[command(name = "zbot-updater", version)]
pub struct Cli {
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// Compression of the image in the package.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressArg {
    /// gzip (SWUpdate's "zlib"), in parallel chunks
    Gzip,
    /// zstd, multithreaded
    Zstd,
    /// stored as is
    None,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Make a signed .swu from a root filesystem image
    #[cfg(feature = "pack")]
    Pack(PackArgs),
    /// Pack a directory already holding sw-description (the seed tool's verb)
    #[cfg(feature = "pack")]
    Create {
        /// The directory
        dir: PathBuf,
        /// The .swu to write
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Private key (PEM) to sign with
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// Its certificate (PEM)
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
    },
    /// The robot's agent: status for anyone, reboot into recovery for a client holding the
    /// robot's secret (challenge-response; see updater/README.md)
    Agent(AgentArgs),
    /// Push a package to robots: reboot each into recovery through its agent if needed,
    /// upload to SWUpdate, follow it, wait for the robot to come back (several robots: a
    /// bounded number at a time, one summary row each)
    Update(UpdateArgs),
    /// List a .swu's members, check every hash (and the signature with --cert), print
    /// sw-description
    Inspect {
        /// The package
        file: PathBuf,
        /// Certificate to verify the signature with (as swupdate -k)
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
    },
}

/// The arguments of `pack`.
#[cfg(feature = "pack")]
#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// The raw root filesystem image (e.g. rootfs.ext4)
    pub image: PathBuf,
    /// The package's version (dotted numbers, at most 4 fields)
    #[arg(long)]
    pub version: String,
    /// The version the robots run now: refuse a version SWUpdate would not see as newer
    #[arg(long, value_name = "VERSION")]
    pub previous_version: Option<String>,
    /// A hardware revision the package installs on (repeat for several)
    #[arg(long = "hardware", value_name = "REV", required = true)]
    pub hardware: Vec<String>,
    /// sw-description's description [default: "ZBot SLOT VERSION"]
    #[arg(long)]
    pub description: Option<String>,
    /// Slot file (bootcount's) [default: with --layout, the layout's slots (`partctl emit
    /// slots`); else /etc/bootcount/slots.toml if present, else built in]
    #[arg(long, value_name = "FILE")]
    pub slots: Option<PathBuf>,
    /// Slot to install [default: the slot file's only primary slot]
    #[arg(long, value_name = "NAME")]
    pub slot: Option<String>,
    /// Card layout (partctl's TOML) giving the slot's partition size
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "slot_size",
        conflicts_with = "slot_size"
    )]
    pub layout: Option<PathBuf>,
    /// The slot's partition size (e.g. 275M) when no layout describes it
    #[arg(long, value_name = "SIZE")]
    pub slot_size: Option<String>,
    /// Private key (PEM) to sign with
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Its certificate (PEM); the robots verify with it (swupdate -k)
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Compression
    #[arg(long, value_enum, default_value = "gzip")]
    pub compress: CompressArg,
    /// Compression level [default: gzip 6, zstd 3]
    #[arg(long)]
    pub level: Option<u32>,
    /// Worker threads [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// The .swu to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Also migrate the robot's U-Boot env to the raw redundant copies after the image is
    /// written: the new U-Boot (fip.bin) the package carries (with --migrate-layout)
    #[arg(long, value_name = "FILE", requires = "migrate_layout")]
    pub migrate_fip: Option<PathBuf>,
    /// The migration's target layout (e.g. partctl/layouts/zbot-duos-redund.toml)
    #[arg(long, value_name = "FILE", requires = "migrate_fip")]
    pub migrate_layout: Option<PathBuf>,
    /// The new policy's variables (mkenvimage text) the migration sets on top of the field
    /// env (zbot-migrate-env --env-file)
    #[arg(long, value_name = "FILE", requires = "migrate_fip")]
    pub migrate_env_file: Option<PathBuf>,
}

/// The arguments of `agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0:10000")]
    pub listen: String,
    /// The robot's secret (mode 600, at least 16 bytes); on /data, which updates never
    /// write (a file in rootfs's /etc would be replaced by the next update)
    #[arg(long, value_name = "FILE", default_value = "/data/zbot/agent.secret")]
    pub secret: PathBuf,
    /// fw_env.config describing where the U-Boot environment is [default: /etc/fw_env.config]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// U-Boot's default environment [default: /etc/u-boot-initial-env if present]
    #[arg(short = 'f', long = "defaults", value_name = "FILE")]
    pub defaults: Option<PathBuf>,
    /// Slot file [default: /etc/bootcount/slots.toml if present, else built in]
    #[arg(long, value_name = "FILE")]
    pub slots: Option<PathBuf>,
    /// Kernel command line to read the running slot from
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// File whose first line is the image version
    #[arg(long, value_name = "FILE", default_value = "/etc/zbot-version")]
    pub version_file: PathBuf,
    /// Seconds a challenge nonce stays valid
    #[arg(long, default_value_t = 30)]
    pub nonce_ttl: u64,
    /// Seconds a read or write may block (a connection gets twice this in all)
    #[arg(long, default_value_t = 5)]
    pub io_timeout: u64,
}

/// The arguments of `update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The robots: HOST or HOST:PORT (the port of its agent and SWUpdate)
    #[arg(value_name = "HOST", required = true, num_args = 1..)]
    pub host: Vec<String>,
    /// The package
    pub file: PathBuf,
    /// Port of the agent and of SWUpdate's web server (both 10000 on the robot)
    #[arg(long, default_value_t = 10000)]
    pub port: u16,
    /// SWUpdate's port if it differs from the agent's
    #[arg(long)]
    pub swupdate_port: Option<u16>,
    /// The robot's secret (needed when it runs rootfs); with several robots, one secret
    /// shared by all
    #[arg(long, value_name = "FILE", conflicts_with = "secret_dir")]
    pub secret: Option<PathBuf>,
    /// A directory of per-robot secrets: HOST.secret (HOST:PORT.secret first when the
    /// robot is given with a port)
    #[arg(long, value_name = "DIR")]
    pub secret_dir: Option<PathBuf>,
    /// Robots updated at the same time
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Seconds for the upload and install
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Seconds for each reboot (into recovery, back into the new rootfs and its checks)
    #[arg(long, default_value_t = 600)]
    pub boot_timeout: u64,
    /// User for SWUpdate's web server (digest authentication, its htdigest file)
    #[arg(long, value_name = "USER", requires = "http_password_file")]
    pub http_user: Option<String>,
    /// File whose first line is that user's password (never on the command line)
    #[arg(long, value_name = "FILE", requires = "http_user")]
    pub http_password_file: Option<PathBuf>,
    /// Stop once SWUpdate reports success (do not wait for the robot to come back)
    #[arg(long)]
    pub no_wait: bool,
    /// JSON on stdout (one object for one robot, an array for several), no progress
    #[arg(long)]
    pub json: bool,
}

/// A failed command: the message and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// One line, the whole chain.
    pub message: String,
}

fn fail(code: i32, e: impl std::fmt::Display) -> Failure {
    Failure {
        code,
        message: e.to_string(),
    }
}

#[cfg(feature = "pack")]
fn parse_size(s: &str) -> Result<u64, Failure> {
    partctl::layout::Size::parse(s).map(|s| s.0).ok_or_else(|| {
        fail(
            EXIT_USAGE,
            format!("--slot-size {s:?}: use bytes or 128M, 275M, 1G"),
        )
    })
}

/// Run one parsed command, writing to `out` and `err`.
#[cfg_attr(not(feature = "pack"), allow(unused_variables))]
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, Failure> {
    match cli.command {
        #[cfg(feature = "pack")]
        Command::Pack(a) => pack_command(a, out),
        #[cfg(feature = "pack")]
        Command::Create {
            dir,
            output,
            key,
            cert,
        } => {
            let signer = match (key, cert) {
                (Some(k), Some(c)) => {
                    Some(crate::sign::Signer::load(&k, &c).map_err(|e| fail(EXIT_REFUSED, e))?)
                }
                _ => None,
            };
            let (len, warnings) = crate::pack::create(&dir, &output, signer.as_ref())
                .map_err(|e| fail(EXIT_REFUSED, e))?;
            for w in warnings {
                let _ = writeln!(err, "zbot-updater: warning: {w}");
            }
            let _ = writeln!(out, "{}: {len} bytes", output.display());
            Ok(0)
        }
        Command::Agent(a) => agent_command(a, err),
        Command::Update(a) => update_command(a, out),
        Command::Inspect { file, cert } => inspect(&file, cert.as_deref(), out),
    }
}

/// `pack`: make the signed package and say what went into it.
#[cfg(feature = "pack")]
fn pack_command(a: PackArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let PackArgs {
        image,
        version,
        previous_version,
        hardware,
        description,
        slots,
        slot,
        layout,
        slot_size,
        key,
        cert,
        compress,
        level,
        threads,
        output,
        migrate_fip,
        migrate_layout,
        migrate_env_file,
    } = a;
    use crate::pack::{pack, Migrate, PackOptions, SlotSize};
    use crate::swdesc::Compression;
    let size = match (layout, slot_size) {
        (Some(l), _) => SlotSize::Layout(l),
        (None, Some(s)) => SlotSize::Bytes(parse_size(&s)?),
        (None, None) => return Err(fail(EXIT_USAGE, "give --layout FILE or --slot-size SIZE")),
    };
    // The layout is the card's one description: its slots, unless a slot file is named.
    let cfg = match (&slots, &size) {
        (None, SlotSize::Layout(l)) => {
            crate::pack::slots_from_layout(l).map_err(|e| fail(EXIT_REFUSED, e))?
        }
        _ => bootcount::cli::load_slots(slots.as_deref()).map_err(|e| fail(EXIT_REFUSED, e))?,
    };
    let o = PackOptions {
        image,
        version,
        previous: previous_version,
        hardware,
        description,
        slots: cfg,
        slot,
        size,
        key,
        cert,
        compression: match compress {
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::Zstd => Compression::Zstd,
            CompressArg::None => Compression::None,
        },
        level,
        threads: threads.unwrap_or_else(crate::compress::default_threads),
        output: output.clone(),
        migrate: migrate_fip
            .zip(migrate_layout)
            .map(|(fip, layout)| Migrate {
                fip,
                layout,
                env_file: migrate_env_file,
            }),
    };
    let p = pack(&o).map_err(|e| fail(EXIT_REFUSED, e))?;
    let _ = writeln!(
        out,
        "{}: {} -> {} ({} bytes stored of {}, sha256 {}), slot {} {} ({} bytes, {}); package {} bytes",
        output.display(),
        o.image.display(),
        p.filename,
        p.stored.len,
        p.stored.input_len,
        p.stored.sha256,
        p.target.slot,
        p.target.device,
        p.target.size,
        p.target.size_from,
        p.swu_len
    );
    if o.migrate.is_some() {
        let _ = writeln!(
            out,
            "  with the env migration: {} runs zbot-migrate-env on fip.bin, layout.toml{} (in {}) after the image",
            crate::pack::MIGRATE_SCRIPT_NAME,
            if o.migrate.as_ref().is_some_and(|m| m.env_file.is_some()) {
                ", policy.env"
            } else {
                ""
            },
            crate::pack::MIGRATE_STAGE
        );
    }
    Ok(0)
}

/// `agent`: load the secret, bind, and serve until killed.
fn agent_command(a: AgentArgs, err: &mut dyn Write) -> Result<i32, Failure> {
    let AgentArgs {
        listen,
        secret,
        config,
        defaults,
        slots,
        cmdline,
        version_file,
        nonce_ttl,
        io_timeout,
    } = a;
    use crate::agent::{default_reboot, load_secret, Agent, Config};
    let secret = load_secret(&secret).map_err(|e| fail(EXIT_REFUSED, e))?;
    let cfg = Config {
        env_config: config,
        defaults,
        slots,
        cmdline,
        version_file,
        reboot: default_reboot(),
        nonce_ttl: std::time::Duration::from_secs(nonce_ttl),
        io_timeout: std::time::Duration::from_secs(io_timeout.max(1)),
    };
    let listener = std::net::TcpListener::bind(&listen)
        .map_err(|e| fail(EXIT_REFUSED, format!("listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| fail(EXIT_REFUSED, e))?;
    let _ = writeln!(err, "zbot-updater agent: listening on {addr}");
    let _ = err.flush();
    Agent::new(secret, cfg).run(listener, err)
}

/// `update`: check the inputs once, push to every robot, print the report.
fn update_command(a: UpdateArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let UpdateArgs {
        host,
        file,
        port,
        swupdate_port,
        secret,
        secret_dir,
        jobs,
        timeout,
        boot_timeout,
        http_user,
        http_password_file,
        no_wait,
        json,
    } = a;
    use crate::update::{parse_target, Options, Secrets};
    let who = match (http_user, http_password_file) {
        (Some(user), Some(f)) => match std::fs::read_to_string(&f) {
            Ok(t) => Some(crate::digest::Credentials {
                user,
                password: t.lines().next().unwrap_or("").to_string(),
            }),
            Err(e) => return Err(fail(EXIT_USAGE, format!("{}: {e}", f.display()))),
        },
        _ => None,
    };
    // Checked once, before any robot is touched.
    if let Err(e) = std::fs::File::open(&file).and_then(|f| f.metadata()) {
        return Err(fail(EXIT_USAGE, format!("{}: {e}", file.display())));
    }
    if !file.is_file() {
        return Err(fail(EXIT_USAGE, format!("{}: not a file", file.display())));
    }
    let targets = host
        .iter()
        .map(|h| parse_target(h, port))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(EXIT_USAGE, e))?;
    let secrets = match (secret, secret_dir) {
        (Some(f), _) => Secrets::File(f),
        (None, Some(d)) if !d.is_dir() => {
            return Err(fail(
                EXIT_USAGE,
                format!("--secret-dir {}: not a directory", d.display()),
            ))
        }
        (None, Some(d)) => Secrets::Dir(d),
        (None, None) => Secrets::None,
    };
    let o = Options {
        swupdate_port,
        secrets,
        timeout: std::time::Duration::from_secs(timeout),
        boot_timeout: std::time::Duration::from_secs(boot_timeout),
        done_grace: std::time::Duration::from_secs(15),
        who,
        no_wait,
    };
    let fleet = targets.len() > 1;
    let ui = crate::progress::choose(json);
    let reports = if fleet {
        crate::update::update_fleet(&targets, &file, &o, usize::from(jobs), ui.as_ref())
    } else {
        vec![crate::update::update_one(
            &targets[0],
            &file,
            &o,
            ui.as_ref(),
        )]
    };
    drop(ui);
    crate::report::print(&reports, json, fleet, out);
    Ok(crate::report::overall_exit(&reports))
}

fn inspect(
    file: &std::path::Path,
    cert: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let f = std::fs::File::open(file)
        .map_err(|e| fail(EXIT_USAGE, format!("{}: {e}", file.display())))?;
    let a = crate::inspect::read(std::io::BufReader::with_capacity(1 << 20, f))
        .map_err(|e| fail(EXIT_REFUSED, format!("{}: {e}", file.display())))?;
    let mut problems = a.problems();
    let _ = writeln!(out, "{}: {} members", file.display(), a.members.len());
    for m in &a.members {
        let _ = writeln!(out, "  {:>12}  {}  {}", m.size, m.sha256, m.name);
    }
    let sig = match (&a.signature, cert) {
        (None, _) => {
            problems.push("no sw-description.sig after sw-description: unsigned".into());
            "none".to_string()
        }
        (Some(_), None) => "present, not verified (give --cert CERT)".to_string(),
        (Some(s), Some(c)) => verify_sig(c, a.description.as_bytes(), s, &mut problems),
    };
    let _ = writeln!(out, "signature: {sig}");
    let _ = writeln!(out, "--- sw-description");
    let _ = write!(out, "{}", a.description);
    if !a.description.ends_with('\n') {
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "---");
    if problems.is_empty() {
        let _ = writeln!(out, "ok: every hash matches");
        Ok(0)
    } else {
        for p in &problems {
            let _ = writeln!(out, "problem: {p}");
        }
        Err(fail(
            EXIT_REFUSED,
            format!(
                "{}: {} problem(s): {}",
                file.display(),
                problems.len(),
                problems.join("; ")
            ),
        ))
    }
}

#[cfg(feature = "pack")]
fn verify_sig(
    cert: &std::path::Path,
    data: &[u8],
    sig: &[u8],
    problems: &mut Vec<String>,
) -> String {
    match crate::sign::load_cert(cert).and_then(|c| crate::sign::verify(&c, data, sig)) {
        Ok(()) => format!("verified with {}", cert.display()),
        Err(e) => {
            problems.push(format!("signature: {e}"));
            "INVALID".into()
        }
    }
}

#[cfg(not(feature = "pack"))]
fn verify_sig(
    _cert: &std::path::Path,
    _data: &[u8],
    _sig: &[u8],
    problems: &mut Vec<String>,
) -> String {
    problems.push("this build has no signature check (built without the `pack` feature)".into());
    "not checked".into()
}

/// The binary's whole life: parse, run, print the error. Returns the exit code.
pub fn main_with(args: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.exit_code() == 0 { 0 } else { EXIT_USAGE };
        }
    };
    // stderr unlocked: a fleet's worker threads print progress to it while run() waits.
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    match run(cli, &mut out, &mut err) {
        Ok(c) => c,
        Err(f) => {
            let _ = writeln!(err, "zbot-updater: error: {}", f.message);
            f.code
        }
    }
}
