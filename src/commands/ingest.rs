//! `domain-actions ingest PATH…`: put files and directory trees into a collection over
//! NATS, with live progress, and say per file what became of it.
//!
//! Each file is read here and checked with [`DocumentKind::detect`], then handed to
//! [`submit_file`] (the original goes to the object store, the workers do the rest), and
//! its task is followed with `Tasks::watch` until it completes, fails or `--wait-timeout`
//! passes. At most `--in-flight` files are between submission and a final state at once,
//! so a tree of thousands of files never holds thousands of watches. The ingestion,
//! embedding and query workers must be running (`domain-actions dev`, or `domain-actions
//! worker ingestion embedding query`); the command checks that they answer first.
//!
//! Files found in a directory that no reader supports are listed as skipped; a file named
//! on the command line that no reader supports is a failure. Hidden files and directories
//! (names starting with `.`) are not walked into. `--include`/`--exclude` globs match the
//! path below the directory given, or the file name alone. Exit 0 when no file failed,
//! 1 when any did (each named with its reason), 2 for bad flags or when nothing matched.
//!
//! `bench --suite ingest` drives the same [`Submitter`] over a corpus.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingestion::extract::DocumentKind;
use ingestion::submit::{Accepted, NewFile, submit_file};
use ingestion::task::{StageTimings, TaskState, TaskStatus};
use ingestion::{IngestionConfig, IngestionService};
use serde::Serialize;
use serde_json::{Map, Value};
use shared::{Domain, Publisher, Settings, TenantId};
use walkdir::WalkDir;

use crate::exit::{Failure, Outcome, connect};

/// Files submitted and followed at once by default: enough to keep the embedding worker
/// busy while one file is being extracted, few enough that watches stay cheap.
pub(crate) const IN_FLIGHT: usize = 8;

/// The services every document passes through; all must answer before anything is sent,
/// or the files would sit in the streams until `--wait-timeout`.
pub(crate) const PIPELINE: &[&str] = &["ingestion", "embedding", "query"];

/// What `skipped` and unsupported-file failures say, so both read the same.
const UNSUPPORTED: &str = "unsupported document type (supported: text, markdown, html, pdf, docx)";

/// Flags of `ingest`.
#[derive(clap::Args)]
pub struct Args {
    /// Files and directories (walked recursively) to ingest.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The collection the documents go into.
    #[arg(long, short)]
    pub collection: String,
    /// The tenant (one token of [A-Za-z0-9_-]).
    #[arg(long, short)]
    pub tenant: String,
    /// Only files matching one of these globs (repeatable), e.g. '*.md' or 'guide/**'.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and directories matching one of these globs (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// The document's title; only with a single file (otherwise each document's own title,
    /// or its file name, is used).
    #[arg(long)]
    pub title: Option<String>,
    /// How long to follow each file's task before reporting it as unfinished.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,
    /// Files submitted and followed at once.
    #[arg(long, default_value_t = IN_FLIGHT)]
    pub in_flight: usize,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ingest`.
pub async fn run(url: &str, args: Args) -> Outcome {
    // Everything the user typed is checked before connecting, so a typo exits 2 even with
    // NATS or the workers down.
    let tenant = TenantId::new(&args.tenant).map_err(Failure::usage)?;
    query::actions::check_name("collection", &args.collection)
        .map_err(|err| Failure::usage(format!("--collection: {}", err.message)))?;
    if args.in_flight == 0 {
        return Err(Failure::usage("--in-flight must be at least 1"));
    }
    let filter = Filter::new(&args.include, &args.exclude)?;
    let found = find_files(&args.paths, &filter)?;
    if found.files.is_empty() && found.unreadable.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::usage(format!(
            "no files matched in {} (check --include/--exclude; hidden files are not walked)",
            paths.join(", ")
        )));
    }
    if args.title.is_some() && found.files.len() > 1 {
        return Err(Failure::usage(format!(
            "--title names one document, but {} files matched",
            found.files.len()
        )));
    }

    let settings = Settings::from_env().map_err(Failure::usage)?;
    let client = connect(url).await?;
    require_workers(&client, url).await?;
    let service = open_service(&settings, &client).await?;
    let publisher = Publisher::new(client);
    let submitter = Submitter {
        service: &service,
        publisher: &publisher,
        tenant: &tenant,
        collection: &args.collection,
        title: args.title.as_deref(),
        wait_timeout: args.wait_timeout,
        in_flight: args.in_flight,
    };

    let progress = Progress::new(
        found.files.len() + found.unreadable.len(),
        Progress::interactive(),
    );
    let started = Instant::now();
    let mut reports = found.unreadable;
    for report in &reports {
        progress.file_done(report);
    }
    reports.extend(submitter.ingest_all(found.files, &progress).await);
    progress.finish();
    let totals = Totals::of(&reports, started.elapsed());

    if args.json {
        let summary = serde_json::json!({ "files": reports, "totals": totals });
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|err| Failure::runtime(format!("writing the summary as JSON: {err}")))?;
        println!("{text}");
    } else {
        print_table(&reports, &totals);
    }
    failed_files(&reports)
}

/// Waits briefly for each pipeline service's rpc endpoint; names the missing ones.
pub(crate) async fn require_workers(client: &async_nats::Client, url: &str) -> Outcome {
    let mut missing = Vec::new();
    for name in PIPELINE {
        let domain = Domain::new(name).map_err(Failure::runtime)?;
        if !shared::worker::wait_until_serving(client, &domain, Duration::from_secs(3)).await {
            missing.push(*name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::runtime(format!(
        "no {} worker answers at {url} (run `domain-actions dev`, or `domain-actions worker ingestion embedding query`)",
        missing.join(", ")
    )))
}

/// The ingestion service's buckets and limits, as the workers see them.
pub(crate) async fn open_service(
    settings: &Settings,
    client: &async_nats::Client,
) -> Result<IngestionService, Failure> {
    let js = async_nats::jetstream::new(client.clone());
    IngestionConfig::from_settings(settings)
        .map_err(Failure::usage)?
        .build(&js)
        .await
        .map_err(|err| {
            Failure::runtime(format!(
                "opening the ingestion buckets and tokenizer: {err}"
            ))
        })
}

/// Exit 1 naming every failed file and why, or Ok.
fn failed_files(reports: &[FileReport]) -> Outcome {
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.status == FileStatus::Failed)
        .map(|r| {
            format!(
                "  {}: {}",
                r.file,
                r.error.as_deref().unwrap_or("failed without a reason")
            )
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure::runtime(format!(
        "{} of {} files failed:\n{}",
        failed.len(),
        reports.len(),
        failed.join("\n")
    )))
}

/// A file to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Where it is, as given or as found below a directory given.
    pub path: PathBuf,
    /// Named on the command line: an unsupported format is then a failure, not a skip.
    pub explicit: bool,
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// The files to ingest, in the order given, each directory's in path order.
    pub files: Vec<Candidate>,
    /// Entries that could not be read (a directory without permission, a symlink loop).
    pub unreadable: Vec<FileReport>,
}

/// The `--include` and `--exclude` globs.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    /// Compiles the globs; a bad one is a usage error naming its flag.
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, Failure> {
        Ok(Self {
            include: glob_set("include", include)?,
            exclude: glob_set("exclude", exclude)?,
        })
    }

    /// Whether a file at `relative` (below its root, or as given) is ingested.
    fn keeps_file(&self, relative: &Path) -> bool {
        let included = self
            .include
            .as_ref()
            .is_none_or(|set| matches(set, relative));
        included && !self.prunes(relative)
    }

    /// Whether `relative` is excluded (a directory is then not walked into at all).
    fn prunes(&self, relative: &Path) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|set| matches(set, relative))
    }
}

fn glob_set(flag: &str, globs: &[String]) -> Result<Option<GlobSet>, Failure> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let compiled =
            Glob::new(glob).map_err(|err| Failure::usage(format!("--{flag} {glob:?}: {err}")))?;
        builder.add(compiled);
    }
    builder
        .build()
        .map(Some)
        .map_err(|err| Failure::usage(format!("--{flag}: {err}")))
}

/// A glob matches the whole relative path or just the file name, so `*.md` and
/// `guide/**` both do what they look like.
fn matches(set: &GlobSet, relative: &Path) -> bool {
    set.is_match(relative) || relative.file_name().is_some_and(|name| set.is_match(name))
}

/// The files under `paths` that pass `filter`. A path that does not exist, or is neither a
/// file nor a directory, is a usage error: the user mistyped it.
pub(crate) fn find_files(paths: &[PathBuf], filter: &Filter) -> Result<Found, Failure> {
    let mut found = Found::default();
    let mut seen = HashSet::new();
    for root in paths {
        let meta = std::fs::metadata(root)
            .map_err(|err| Failure::usage(format!("{}: {err}", root.display())))?;
        if meta.is_file() {
            if filter.keeps_file(root) && seen.insert(root.clone()) {
                found.files.push(Candidate {
                    path: root.clone(),
                    explicit: true,
                });
            }
            continue;
        }
        if !meta.is_dir() {
            return Err(Failure::usage(format!(
                "{}: neither a file nor a directory",
                root.display()
            )));
        }
        let below = |path: &Path| path.strip_prefix(root).unwrap_or(path).to_path_buf();
        let walk = WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                entry.depth() == 0 || !(hidden || filter.prunes(&below(entry.path())))
            });
        for entry in walk {
            match entry {
                Ok(entry) if entry.file_type().is_file() => {
                    let path = entry.into_path();
                    if filter.keeps_file(&below(&path)) && seen.insert(path.clone()) {
                        found.files.push(Candidate {
                            path,
                            explicit: false,
                        });
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    let path = err.path().unwrap_or(root).display().to_string();
                    found.unreadable.push(
                        FileReport::new(&path, FileStatus::Failed).with_error(err.to_string()),
                    );
                }
            }
        }
    }
    Ok(found)
}

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FileStatus {
    /// Every chunk is searchable.
    Completed,
    /// The same content is already in the collection; nothing new was indexed.
    Duplicate,
    /// Found in a directory but in a format no reader supports.
    Skipped,
    /// It could not be read, submitted or processed, or did not finish in time.
    Failed,
}

impl FileStatus {
    /// The word the table prints (the JSON's value).
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Duplicate => "duplicate",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// One row of the summary (and of `--json`'s `files`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileReport {
    /// The file, as given or found.
    pub file: String,
    /// What became of it.
    pub status: FileStatus,
    /// Chunks indexed.
    pub chunks: usize,
    /// The document (for a duplicate, the one already holding this content).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// Its task, to follow with `ingestion.get_status` after a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From reading the file to the task's final state, as this command saw it.
    pub seconds: f64,
    /// The workers' time per stage, for the benchmark's breakdown.
    pub timings: StageTimings,
}

impl FileReport {
    fn new(file: &str, status: FileStatus) -> Self {
        Self {
            file: file.to_owned(),
            status,
            chunks: 0,
            document_id: None,
            task_id: None,
            error: None,
            seconds: 0.0,
            timings: StageTimings::default(),
        }
    }

    fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Takes the outcome from a task that reached a final state.
    fn finished(&mut self, task: TaskState) {
        self.timings = task.timings;
        self.chunks = task.chunks_done;
        match (task.status, task.duplicate_of) {
            (TaskStatus::Completed, Some(existing)) => {
                self.status = FileStatus::Duplicate;
                self.document_id = Some(existing);
            }
            (TaskStatus::Completed, None) => self.status = FileStatus::Completed,
            _ => {
                self.status = FileStatus::Failed;
                self.error = Some(
                    task.error
                        .unwrap_or_else(|| format!("the task ended as {:?}", task.status)),
                );
            }
        }
    }
}

/// What every file's submission shares; `ingest` and `bench --suite ingest` both run files
/// through it.
pub(crate) struct Submitter<'a> {
    /// Buckets, object store and limits.
    pub service: &'a IngestionService,
    /// Enqueues the `ingestion.ingest_document` actions.
    pub publisher: &'a Publisher,
    /// Whose documents these are.
    pub tenant: &'a TenantId,
    /// Where they go.
    pub collection: &'a str,
    /// `--title`, for a single file.
    pub title: Option<&'a str>,
    /// How long each task is followed.
    pub wait_timeout: Duration,
    /// Files between submission and a final state at once.
    pub in_flight: usize,
}

/// A submission that needs no watching (a skip, a duplicate) or a task to follow.
enum Submitted {
    Done(FileReport),
    Task(Accepted),
}

impl Submitter<'_> {
    /// Ingests every file, at most `in_flight` at a time; the reports come back in the
    /// files' order whatever order they finished in.
    pub(crate) async fn ingest_all(
        &self,
        files: Vec<Candidate>,
        progress: &Progress,
    ) -> Vec<FileReport> {
        let mut reports: Vec<(usize, FileReport)> =
            futures::stream::iter(files.into_iter().enumerate())
                .map(|(index, file)| async move { (index, self.ingest(file, progress).await) })
                .buffer_unordered(self.in_flight.max(1))
                .collect()
                .await;
        reports.sort_by_key(|(index, _)| *index);
        reports.into_iter().map(|(_, report)| report).collect()
    }

    /// One file, from reading it to its task's final state; never an error, a report.
    async fn ingest(&self, file: Candidate, progress: &Progress) -> FileReport {
        let started = Instant::now();
        let shown = file.path.display().to_string();
        let mut report = match self.submit(&file, &shown).await {
            Ok(Submitted::Done(report)) => report,
            Ok(Submitted::Task(accepted)) => {
                let mut report = FileReport::new(&shown, FileStatus::Failed);
                report.document_id = Some(accepted.document_id);
                report.task_id = Some(accepted.task_id.clone());
                let bar = progress.file_started(&shown);
                match self.follow(&accepted.task_id, &bar).await {
                    Ok(task) => report.finished(task),
                    Err(reason) => report.error = Some(reason),
                }
                progress.file_finished(&bar);
                report
            }
            Err(reason) => FileReport::new(&shown, FileStatus::Failed).with_error(reason),
        };
        report.seconds = started.elapsed().as_secs_f64();
        progress.file_done(&report);
        report
    }

    /// Reads and checks the file, then submits it.
    async fn submit(&self, file: &Candidate, shown: &str) -> Result<Submitted, String> {
        let limit = self.service.limits.max_bytes;
        let size = tokio::fs::metadata(&file.path)
            .await
            .map_err(|err| format!("cannot read it: {err}"))?
            .len();
        if size > limit as u64 {
            return Err(format!(
                "it has {size} bytes; the limit is {limit} (DA_INGEST_MAX_BYTES)"
            ));
        }
        let bytes = tokio::fs::read(&file.path)
            .await
            .map_err(|err| format!("cannot read it: {err}"))?;
        let file_name = file
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        if DocumentKind::detect(file_name.as_deref(), None, &bytes).is_none() {
            if file.explicit {
                return Err(UNSUPPORTED.to_owned());
            }
            let skipped = FileReport::new(shown, FileStatus::Skipped).with_error(UNSUPPORTED);
            return Ok(Submitted::Done(skipped));
        }
        // Kept with every chunk, so a search hit says which file it came from.
        let mut metadata = Map::new();
        metadata.insert("path".to_owned(), Value::String(shown.to_owned()));
        let new_file = NewFile {
            collection: self.collection.to_owned(),
            bytes: bytes.into(),
            file_name,
            content_type: None,
            title: self.title.map(str::to_owned),
            metadata,
        };
        let accepted = submit_file(self.service, self.publisher, self.tenant, new_file)
            .await
            .map_err(|err| format!("submitting it: {err}"))?;
        if let Some(existing) = accepted.duplicate_of {
            let mut report = FileReport::new(shown, FileStatus::Duplicate);
            report.document_id = Some(existing);
            report.task_id = Some(accepted.task_id).filter(|id| !id.is_empty());
            return Ok(Submitted::Done(report));
        }
        Ok(Submitted::Task(accepted))
    }

    /// Follows the task until it is final, showing its percentage on `bar`.
    async fn follow(&self, task_id: &str, bar: &ProgressBar) -> Result<TaskState, String> {
        let watch = self
            .service
            .tasks
            .watch(self.tenant, task_id)
            .await
            .map_err(|err| format!("cannot watch task {task_id}: {err}"))?;
        let mut watch = std::pin::pin!(watch);
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        let mut last: Option<TaskState> = None;
        loop {
            match tokio::time::timeout_at(deadline, watch.next()).await {
                Ok(Some(task)) => {
                    bar.set_position(task.percentage.into());
                    bar.set_message(status_word(task.status));
                    if task.status.is_final() {
                        return Ok(task);
                    }
                    last = Some(task);
                }
                Ok(None) => {
                    return Err(format!(
                        "the watch of task {task_id} ended before the task did (connection lost?)"
                    ));
                }
                Err(_) => {
                    let state = last.map_or("pending (no worker took it?)".to_owned(), |t| {
                        format!("{} at {}%", status_word(t.status), t.percentage)
                    });
                    return Err(format!(
                        "not finished after {}: task {task_id} is {state}; it goes on in the background",
                        humantime::format_duration(self.wait_timeout)
                    ));
                }
            }
        }
    }
}

/// A task status as one lowercase word, as the API spells it.
fn status_word(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Pending => "pending",
        TaskStatus::Processing => "processing",
        TaskStatus::Chunking => "chunking",
        TaskStatus::Embedding => "embedding",
        TaskStatus::Storing => "storing",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
    }
}

/// Live progress on stderr: one bar per file being processed, one for all files.
pub(crate) struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    file_style: ProgressStyle,
    failed: AtomicUsize,
}

impl Progress {
    /// Whether bars help: only when a person watches both outputs. Piped or redirected
    /// (tests, CI, `> summary.txt`), they would only fill logs with redraws.
    pub(crate) fn interactive() -> bool {
        std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
    }

    /// Bars for `files` files, drawn only when `show`.
    pub(crate) fn new(files: usize, show: bool) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(files as u64).with_style(style(
            "{bar:40.green/white} {pos}/{len} files  {elapsed}  {msg}",
        )));
        if show {
            overall.enable_steady_tick(Duration::from_millis(250));
        }
        Self {
            multi,
            overall,
            file_style: style("  {bar:24.cyan/blue} {pos:>3}% {msg:<10} {prefix}"),
            failed: AtomicUsize::new(0),
        }
    }

    fn file_started(&self, file: &str) -> ProgressBar {
        let bar = ProgressBar::new(100)
            .with_style(self.file_style.clone())
            .with_prefix(tail(file, 60))
            .with_message("pending");
        self.multi.insert_before(&self.overall, bar)
    }

    fn file_finished(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    fn file_done(&self, report: &FileReport) {
        self.overall.inc(1);
        if report.status == FileStatus::Failed {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.overall.set_message(format!("{failed} failed"));
            // Above the bars, so a failure is seen while the rest go on; hidden bars print nothing.
            let _ = self.multi.println(format!(
                "failed: {}: {}",
                report.file,
                report.error.as_deref().unwrap_or_default()
            ));
        }
    }

    /// Takes the bars off the screen before the summary is printed.
    pub(crate) fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// A bar style; our templates are constants, but a bad one must not cost the run.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The last `max` characters of `text`, so long paths keep their informative end.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().skip(count - max + 1).collect();
    format!("…{kept}")
}

/// The run's totals (`--json`'s `totals`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Totals {
    /// Files considered (including skipped and failed ones).
    pub files: usize,
    /// Documents newly indexed.
    pub documents: usize,
    /// Files whose content was already in the collection.
    pub duplicates: usize,
    /// Files in formats no reader supports.
    pub skipped: usize,
    /// Files that failed.
    pub failed: usize,
    /// Chunks indexed.
    pub chunks: usize,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Documents newly indexed per second of wall time.
    pub documents_per_s: f64,
    /// Chunks indexed per second of wall time.
    pub chunks_per_s: f64,
}

impl Totals {
    /// Counts `reports` over `elapsed`.
    pub(crate) fn of(reports: &[FileReport], elapsed: Duration) -> Self {
        let count = |status| reports.iter().filter(|r| r.status == status).count();
        let documents = count(FileStatus::Completed);
        let chunks = reports
            .iter()
            .filter(|r| r.status == FileStatus::Completed)
            .map(|r| r.chunks)
            .sum();
        let seconds = elapsed.as_secs_f64();
        let per_s = |n: usize| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        Self {
            files: reports.len(),
            documents,
            duplicates: count(FileStatus::Duplicate),
            skipped: count(FileStatus::Skipped),
            failed: count(FileStatus::Failed),
            chunks,
            seconds,
            documents_per_s: per_s(documents),
            chunks_per_s: per_s(chunks),
        }
    }

    /// One line for people.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} documents, {} chunks in {:.1}s: {:.2} documents/s, {:.1} chunks/s ({} duplicates, {} skipped, {} failed)",
            self.documents,
            self.chunks,
            self.seconds,
            self.documents_per_s,
            self.chunks_per_s,
            self.duplicates,
            self.skipped,
            self.failed
        )
    }
}

/// The summary table: one row per file, then the totals.
fn print_table(reports: &[FileReport], totals: &Totals) {
    let width = reports
        .iter()
        .map(|r| r.file.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    println!(
        "{:<width$}  {:<9}  {:>6}  document_id or error",
        "file", "status", "chunks"
    );
    for report in reports {
        let detail = match report.status {
            FileStatus::Completed => report.document_id.clone().unwrap_or_default(),
            FileStatus::Duplicate => format!(
                "already there as {}",
                report.document_id.as_deref().unwrap_or("?")
            ),
            FileStatus::Skipped | FileStatus::Failed => report.error.clone().unwrap_or_default(),
        };
        println!(
            "{:<width$}  {:<9}  {:>6}  {detail}",
            tail(&report.file, width),
            report.status.as_str(),
            report.chunks
        );
    }
    println!();
    println!("{}", totals.line());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in [
            ("a.md", "# A"),
            ("b.txt", "b"),
            ("guide/c.md", "# C"),
            ("guide/drafts/d.md", "# D"),
            (".git/config", "x"),
        ] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn names(found: &Found, root: &Path) -> Vec<String> {
        found
            .files
            .iter()
            .map(|c| {
                c.path
                    .strip_prefix(root)
                    .expect("below root")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn walks_sorted_skips_hidden_and_applies_globs() {
        let dir = tree();
        let root = dir.path().to_path_buf();
        let all = find_files(std::slice::from_ref(&root), &Filter::default()).expect("walk");
        assert_eq!(
            names(&all, &root),
            ["a.md", "b.txt", "guide/c.md", "guide/drafts/d.md"]
        );
        assert!(all.files.iter().all(|c| !c.explicit));

        let filter = Filter::new(&["*.md".into()], &["drafts".into()]).expect("globs");
        let some = find_files(std::slice::from_ref(&root), &filter).expect("walk");
        assert_eq!(names(&some, &root), ["a.md", "guide/c.md"]);

        let filter = Filter::new(&["guide/**".into()], &[]).expect("globs");
        let guide = find_files(std::slice::from_ref(&root), &filter).expect("walk");
        assert_eq!(names(&guide, &root), ["guide/c.md", "guide/drafts/d.md"]);
    }

    #[test]
    fn named_files_are_explicit_and_counted_once() {
        let dir = tree();
        let file = dir.path().join("a.md");
        let found = find_files(
            &[file.clone(), dir.path().to_path_buf()],
            &Filter::default(),
        )
        .expect("walk");
        assert_eq!(
            found.files[0],
            Candidate {
                path: file,
                explicit: true
            }
        );
        assert_eq!(found.files.len(), 4, "{:?}", found.files);
    }

    #[test]
    fn missing_paths_and_bad_globs_are_usage_errors() {
        let missing = find_files(&[PathBuf::from("/no/such/path")], &Filter::default());
        assert!(missing.is_err());
        assert!(Filter::new(&["a[".into()], &[]).is_err());
    }

    #[test]
    fn totals_count_only_new_documents_and_their_chunks() {
        let mut done = FileReport::new("a", FileStatus::Completed);
        done.chunks = 10;
        let reports = [
            done,
            FileReport::new("b", FileStatus::Duplicate),
            FileReport::new("c", FileStatus::Skipped),
            FileReport::new("d", FileStatus::Failed),
        ];
        let totals = Totals::of(&reports, Duration::from_secs(2));
        assert_eq!(
            (
                totals.documents,
                totals.chunks,
                totals.duplicates,
                totals.skipped,
                totals.failed
            ),
            (1, 10, 1, 1, 1)
        );
        assert!((totals.chunks_per_s - 5.0).abs() < 1e-9);
        assert!(failed_files(&reports).is_err());
    }

    #[test]
    fn long_paths_keep_their_end() {
        assert_eq!(tail("abcdef", 4), "…def");
        assert_eq!(tail("abc", 4), "abc");
    }
}
